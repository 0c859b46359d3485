"""What a program asked the kernel and what the kernel answered: ``strace -f`` output, parsed.

The book's second half is about readiness, signals and timers: how many events ``epoll_wait``
returned, what ``recvfrom`` returned, which call failed with EAGAIN. A program's own printout of that
is a weak witness; strace's record of the system calls is the kernel's answer. :meth:`Run.strace`
(``lab.experiments.context``) starts a program under ``strace -f -qq -e trace=… -o FILE``, and the
file's text is read back as an observation, so ``lab check`` replays the same calls.

A line looks like ``1234  recvfrom(5, "abc"..., 9, 0, NULL, NULL) = 9`` or ``= -1 EAGAIN (Resource
temporarily unavailable)``; a call another thread or a signal interrupted is split into ``<unfinished
...>`` and ``<... recvfrom resumed>``, which :func:`parse` joins again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LINE = re.compile(r"^(?P<pid>\d+)\s+(?:(?P<at>\d+\.\d+)\s+)?(?P<rest>.*)$")  # strace -ttt: a start time
DONE = re.compile(r"^(?P<name>\w+)\((?P<args>.*)\)\s+=\s+(?P<ret>-?\d+|\?|0x[0-9a-f]+)"
                  r"(?:\s+(?P<errno>E[A-Z0-9]+)\s+\((?P<text>[^)]*)\))?(?P<after>.*)$")
UNFINISHED = re.compile(r"^(?P<name>\w+)\((?P<args>.*)\s+<unfinished \.\.\.>$")
SPENT = re.compile(r"<(\d+\.\d+)>$")  # strace -T: the time spent in the call
DELIVERED = re.compile(r"^--- (?P<name>SIG[A-Z0-9]+) (?P<info>\{.*\}) ---$")  # a signal strace saw delivered
RESUMED = re.compile(r"^<\.\.\. (?P<name>\w+) resumed>(?P<tail>.*)$")


@dataclass(frozen=True)
class Syscall:
    pid: int
    name: str
    args: str  # as strace printed them (strings abbreviated)
    ret: int | None  # None: ``?`` (the process ended inside the call)
    errno: str | None = None  # EAGAIN, ETIMEDOUT, ... when ret is -1
    seconds: float | None = None  # time spent in the call (strace -T), where the trace has it
    at: float | None = None  # when the call began, seconds since the epoch (strace -ttt)
    after: str = ""  # what strace printed after the return value: poll's revents, `(Timeout)`, -T's <time>

    @property
    def ended(self) -> float | None:
        return self.at + self.seconds if self.at is not None and self.seconds is not None else None

    @property
    def failed(self) -> bool:
        return self.errno is not None


def parse(text: str) -> list[Syscall]:
    """Every completed call in ``strace -f`` output, in order of completion, and every signal delivered
    (traced with ``signals=`` of ``run.strace``) as a call named after it (``SIGURG``, its siginfo as
    args, no return value); exits skipped."""
    calls: list[Syscall] = []
    pending: dict[tuple[int, str], tuple[str, float | None]] = {}
    for raw in text.splitlines():
        line = LINE.match(raw.strip())
        if line is None:
            continue
        pid, rest = int(line["pid"]), line["rest"]
        at = float(line["at"]) if line["at"] else None
        if (started := UNFINISHED.match(rest)) is not None:
            pending[(pid, started["name"])] = (started["args"], at)
            continue
        if (resumed := RESUMED.match(rest)) is not None:
            name = resumed["name"]
            args, at = pending.pop((pid, name), ("", at))
            rest = f"{name}({args}{resumed['tail']}"
        if (delivered := DELIVERED.match(rest)) is not None:
            calls.append(Syscall(pid, delivered["name"], delivered["info"], None, at=at))
            continue
        done = DONE.match(rest)
        if done is None:  # +++ exited with 0 +++
            continue
        ret = done["ret"]
        spent = SPENT.search(rest)
        calls.append(Syscall(pid, done["name"], done["args"],
                             None if ret == "?" else int(ret, 16) if ret.startswith("0x") else int(ret),
                             done["errno"], float(spent.group(1)) if spent else None, at, done["after"].strip()))
    return calls


def named(calls: list[Syscall], *names: str) -> list[Syscall]:
    return [c for c in calls if c.name in names]


def epoll_fds(call: Syscall) -> list[int]:
    """The fds an ``epoll_wait`` returned as ready (``data={u32=FD, …}``, as the servers register them)."""
    return [int(fd) for fd in re.findall(r"u32=(\d+)", call.args)]
