"""Read ``ss -tanoiH`` output: each socket's state, queues, ends, timer and RTO (pure: unit-tested).

The experiments about TIME_WAIT, FIN-WAIT-1 and retransmission ask the
kernel what it holds, the way the book runs ``netstat -nat``. ``ss`` prints one
line per socket (``-H``: no header) and, with ``-i``, an indented line of TCP
internals (``rto:204`` in milliseconds); ``-o`` adds ``timer:(NAME,TIME,N)``
where TIME reads like ``59sec``, ``1min30sec``, ``116ms`` or ``1.5sec``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TIMER = re.compile(r"timer:\((\w+),([^,)]*)")
_RTO = re.compile(r"\brto:([\d.]+)")
_RTT = re.compile(r"\brtt:([\d.]+)/([\d.]+)")
_DURATION = re.compile(r"(?:(\d+)min)?(?:([\d.]+)sec)?(?:([\d.]+)ms)?$")


@dataclass
class SsSocket:
    """One socket as ``ss`` lists it; ``timer_left`` and ``rto`` in seconds, ``rtt`` (the smoothed RTT)
    and ``rttvar`` (its mean deviation) in milliseconds, as ``rtt:80.2/0.4`` shows them."""

    state: str
    recv_q: int
    send_q: int
    local: str
    peer: str
    timer: str | None = None
    timer_left: float | None = None
    rto: float | None = None
    rtt: float | None = None
    rttvar: float | None = None

    @property
    def local_port(self) -> int:
        return int(self.local.rsplit(":", 1)[1])


def duration(text: str) -> float | None:
    """``59sec`` → 59.0, ``1min30sec`` → 90.0, ``116ms`` → 0.116; None if it is not a duration."""
    found = _DURATION.match(text.strip())
    if not found or not any(found.groups()):
        return None
    minutes, seconds, millis = found.groups()
    return int(minutes or 0) * 60 + float(seconds or 0) + float(millis or 0) / 1000


def parse(text: str) -> list[SsSocket]:
    """Sockets from ``ss -tanH`` (optionally ``-o`` and ``-i``) output; the State column is required."""
    sockets: list[SsSocket] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line[0].isspace():  # the -i line belongs to the socket above
            if sockets:
                _internals(sockets[-1], line)
            continue
        fields = line.split()
        if len(fields) < 5 or not fields[1].isdigit() or not fields[2].isdigit():
            continue
        sock = SsSocket(fields[0], int(fields[1]), int(fields[2]), fields[3], fields[4])
        timer = _TIMER.search(line)
        if timer:
            sock.timer, sock.timer_left = timer.group(1), duration(timer.group(2))
        _internals(sock, line)
        sockets.append(sock)
    return sockets


def _internals(sock: SsSocket, line: str) -> None:
    """``rto:`` and ``rtt:`` of ``-i``, wherever ss put them (the same line, or the indented one below)."""
    found = _RTO.search(line)
    if found:
        sock.rto = float(found.group(1)) / 1000
    rtt = _RTT.search(line)
    if rtt:
        sock.rtt, sock.rttvar = float(rtt.group(1)), float(rtt.group(2))


def in_state(sockets: list[SsSocket], state: str, local_port: int | None = None) -> list[SsSocket]:
    """Sockets in ``state`` (as ss spells it: TIME-WAIT, FIN-WAIT-1, ESTAB), optionally on one local port."""
    return [s for s in sockets if s.state == state and (local_port is None or s.local_port == local_port)]
