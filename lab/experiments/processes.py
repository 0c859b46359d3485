"""Which process did what: the processes (and threads) of a traced program, from its strace -f records.

A fork server or a pool is one trace with many pids; a sequence diagram of its packets says nothing of
which process accepted which connection or ran which program. This module turns the trace into one
row per process (pid, parent, program, the calls that decide an experiment's claims), pure and
unit-tested; the runner puts the rows in the report.
"""

from __future__ import annotations

import re

from lab.experiments.syscalls import Syscall
from lab.report.model import ProcessRecord

SHOWN = 12  # calls listed per process; the rest are counted
PEER = re.compile(r'sin6?_port=htons\((\d+)\).*?(?:inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)")')
EXECUTED = re.compile(r'^"([^"]+)", \[(.*?)\]')


def describe(call: Syscall) -> str | None:
    """One line for a call that tells what a process did with a connection or a child, else None."""
    name, ret = call.name, call.ret
    if name in ("accept", "accept4") and ret is not None and ret >= 0:
        peer = PEER.search(call.args)
        where = f" from {peer.group(2) or peer.group(3)}:{peer.group(1)}" if peer else ""
        return f"accepted fd {ret}{where}"
    if name in ("clone", "clone3", "fork", "vfork") and ret:
        return f"started thread {ret}" if "CLONE_THREAD" in call.args else f"forked pid {ret}"
    if name in ("dup2", "dup3") and ret is not None and ret >= 0:
        onto = ": its standard output" if ret == 1 else ""
        return f"dup2({call.args.split(',')[0].strip()}, {ret}){onto}"
    if name == "execve" and ret == 0 and (program := EXECUTED.match(call.args)):
        return f"exec {program.group(1)}"
    if name.startswith("SIG"):
        return f"got {name}"
    if name == "wait4" and ret is not None and ret > 0:
        return f"reaped pid {ret}"
    if call.errno is not None and name in ("recvfrom", "epoll_wait", "poll", "ppoll", "connect", "writev"):
        return f"{name} → {call.errno}"
    return None


def process_table(calls: list[Syscall], node: str, program: str) -> list[ProcessRecord]:
    """A row per pid in the trace, in order of first appearance: its parent (from the fork that made it),
    its program (``program`` for the traced root, else the last exec, else its parent's), what it did."""
    rows: dict[int, ProcessRecord] = {}
    for call in calls:
        row = rows.get(call.pid)
        if row is None:
            row = rows[call.pid] = ProcessRecord(node, call.pid, None, program if not rows else "")
        if call.name in ("clone", "clone3", "fork", "vfork") and call.ret and call.ret > 0:
            child = rows.setdefault(call.ret, ProcessRecord(node, call.ret, call.pid, row.program))
            child.parent = call.pid  # the child's own first call may come first in the trace
            thread = " (thread)" if "CLONE_THREAD" in call.args else ""
            child.program = (child.program or row.program.removesuffix(" (thread)")) + thread
        if call.name == "execve" and call.ret == 0 and (executed := EXECUTED.match(call.args)) and row.parent:
            row.program = " ".join(executed.group(2).replace('"', "").split(", ")) or executed.group(1)
            # (the traced root's own exec is the command strace started: it keeps the program's name)
        if (line := describe(call)) is not None:
            row.calls += 1
            if len(row.did) < SHOWN:
                row.did.append(line)
    return list(rows.values())
