"""Read ``ss -tanoiH`` output: each socket's state, queues, ends, timer and RTO (pure: unit-tested).

The experiments about TIME_WAIT, FIN-WAIT-1 and retransmission ask the
kernel what it holds, the way the book runs ``netstat -nat``. ``ss`` prints one
line per socket (``-H``: no header) and, with ``-i``, an indented line of TCP
internals (``rto:204`` in milliseconds); ``-o`` adds ``timer:(NAME,TIME,N)``
where TIME reads like ``116ms``, ``4.700ms`` (4.7 s: see ``duration``), ``59sec``,
``1min30sec`` or ``11min``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TIMER = re.compile(r"timer:\((\w+),([^,)]*)")
_RTO = re.compile(r"\brto:([\d.]+)")
_RTT = re.compile(r"\brtt:([\d.]+)/([\d.]+)")
_DURATION = re.compile(
    r"(?:(?P<min>\d+)min)?"
    r"(?:(?P<sec>\d+(?:\.\d+)?)sec|(?P<sec_ms>\d+\.\d+)ms|(?P<ms>\d+)ms)?"
)


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
    """Seconds left on an ``ss -o`` timer, from the TIME of ``timer:(NAME,TIME,N)``; None if it is not one.

    ss writes TIME with ``print_ms_timer()`` in iproute2's misc/ss.c, from the milliseconds
    the kernel reports (``idiag_expires``). With ``T`` those milliseconds, it prints:

    * ``T == 0``: nothing at all, ``timer:(on,,0)`` (due or overdue) → 0.0;
    * ``T < 1 s``: the milliseconds on three digits, ``692ms``, ``050ms`` → 0.692, 0.05;
    * ``1 s <= T < 10 s``: whole seconds as ``4sec`` when the milliseconds are 0, otherwise
      ``4.700ms`` → 4.7, and ``9.001ms`` → 9.001. The function prints the seconds and ``.``, then
      the milliseconds with the ``%03dms`` meant for ``T < 1 s``, so the unit ``ms`` is wrong:
      this is 4 s 700 ms, not 4.7 ms (seen with iproute2 6.1: a keepalive timer set to 5 s
      reads ``4.692ms`` 0.3 s later). iproute2's patch "ss: fix expired time format of
      timer" (netdev, July 2024) makes it print ``4.700sec`` instead; both read 4.7 here;
    * ``10 s <= T < 1 min``: whole seconds, the milliseconds dropped, ``59sec`` → 59.0;
    * ``1 min <= T < 10 min``: ``1min`` or ``1min39sec`` (milliseconds dropped) → 60.0, 99.0;
    * ``T >= 10 min``: whole minutes only, ``11min``, ``119min`` → 660.0, 7140.0.

    So a number with a fraction is always seconds, whatever unit follows it; ss never prints a
    fraction of a millisecond, nor a fraction from 10 s on. ``1.5sec`` is read as 1.5 too.
    """
    text = text.strip()
    if not text:
        return 0.0
    found = _DURATION.fullmatch(text)
    if not found or not any(found.groups()):
        return None
    minutes, seconds, seconds_ms, millis = found.group("min", "sec", "sec_ms", "ms")
    return int(minutes or 0) * 60 + float(seconds or seconds_ms or 0) + int(millis or 0) / 1000


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
