"""Processes a lab starts outside containers (daemons, captures): started, recorded, and stopped by PID.

A PID alone could be reused by an unrelated process after ours exits, so each
record also keeps the process's start time from /proc/PID/stat; we signal a
PID only when both still match. Nothing is ever killed by name or pattern.
"""

from __future__ import annotations

import os
import signal
import time


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks since boot), or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    after_comm = stat.rsplit(")", 1)[1].split()
    return int(after_comm[19])


def process_record(pid: int, what: str, netns: str | None = None) -> dict[str, object]:
    return {"kind": "process", "name": f"{what}[{pid}]", "pid": pid, "start_time": start_time(pid), "netns": netns}


def is_same_process(pid: int, recorded_start: int | None) -> bool:
    """True only when the PID still runs *and* started when we recorded (no start time: not provably ours)."""
    current = start_time(pid)
    return current is not None and recorded_start is not None and current == recorded_start


def in_namespaces(wanted: set[tuple[int, int]]) -> list[int]:
    """PIDs of processes whose network namespace is one of ``wanted`` ((st_dev, st_ino) of a namespace).

    A process inside a lab's namespace was started there by lab (a server, a capture, a
    ``lab exec``): the namespace is ours, so it is too. This finds the ones the journal could
    not name (started in the instant before their record was written, or by ``lab exec … &``),
    which would otherwise keep the namespace alive after ``down``.
    """
    if not wanted:
        return []
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in wanted:
            found.append(int(entry))
    return found


def stop(pid: int, recorded_start: int | None, grace: float = 2.0) -> bool:
    """SIGTERM, then SIGKILL after ``grace`` seconds; only if it is still the process we started."""
    if not is_same_process(pid, recorded_start):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(pid)
        if not is_same_process(pid, recorded_start) or _is_zombie(pid):
            _reap(pid)
            return True
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(pid)
    return True


def is_running(pid: int, recorded_start: int | None) -> bool:
    """The process we started still runs: not gone, not reused, not a zombie its new parent has yet to reap."""
    return is_same_process(pid, recorded_start) and not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return False


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
