"""Book 11-2/11-3, 11-5, 11-6: a server that closes connections left idle, with one of the book's three timers.

Usage::

    python3 -m lab.servers.idle_timers IP PORT [--timer list|wheel|heap] [--timeslot 1] [--duration 30]

Every connection gets a timer that expires ``3 × timeslot`` after its last data (the book's
``3 * TIMESLOT``); when it expires the server closes the connection (``cb_func``: a FIN). The timers:

- ``list`` (11-2/11-3): an ascending list of whole-second deadlines (``time(NULL)``), checked on
  every ``alarm(TIMESLOT)``; SIGALRM reaches the epoll loop through a socketpair (the unified event
  source of §10.4) and is installed with SA_RESTART, which epoll_wait ignores (signal(7)): it fails EINTR.
- ``wheel`` (11-5): 60 slots of ``timeslot`` seconds (SI), turned once per slot; a timer lands
  ``timeout / SI`` slots ahead of the current one.
- ``heap`` (11-6): a min-heap of deadlines; epoll_wait sleeps exactly until the earliest one.

Output lines (the book's): ``get N bytes of client data ...`` per read and ``close fd N`` per kick.
"""

from __future__ import annotations

import argparse
import heapq
import math
import select
import signal
import socket
import time

from lab.servers._common import SignalPipe, add_endpoint, listen_tcp, out, positive_float, run

SLOTS = 60  # the book's time wheel: N = 60


class SortedList:
    """11-2: deadlines in whole seconds (``time(NULL) + 3 * TIMESLOT``), kept ascending; ``tick`` runs
    on each alarm and closes every connection whose deadline is not after now."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.expires: dict[int, int] = {}

    def set(self, fd: int) -> None:
        self.expires[fd] = int(time.time()) + int(self.timeout)

    def remove(self, fd: int) -> None:
        self.expires.pop(fd, None)

    def due(self) -> list[int]:
        now = int(time.time())
        return [fd for fd, at in sorted(self.expires.items(), key=lambda item: item[1]) if at <= now]

    def wait(self) -> float | None:
        return None  # the alarm wakes the loop


class Wheel:
    """11-5: ``SLOTS`` slots of ``si`` seconds; a timer sits ``ticks = timeout / si`` slots ahead with
    ``ticks // SLOTS`` rotations to wait; each turn of the wheel expires the current slot's timers."""

    def __init__(self, timeout: float, si: float) -> None:
        self.timeout, self.si = timeout, si
        self.slots: list[dict[int, int]] = [{} for _ in range(SLOTS)]
        self.current = 0
        self.next_turn = time.monotonic() + si

    def set(self, fd: int) -> None:
        self.remove(fd)
        ticks = max(1, int(self.timeout / self.si))
        self.slots[(self.current + ticks % SLOTS) % SLOTS][fd] = ticks // SLOTS

    def remove(self, fd: int) -> None:
        for slot in self.slots:
            slot.pop(fd, None)

    def due(self) -> list[int]:
        expired: list[int] = []
        while time.monotonic() >= self.next_turn:
            slot = self.slots[self.current]
            for fd, rotations in list(slot.items()):
                if rotations:
                    slot[fd] = rotations - 1
                else:
                    del slot[fd]
                    expired.append(fd)
            self.current = (self.current + 1) % SLOTS
            self.next_turn += self.si
        return expired

    def wait(self) -> float | None:
        return max(0.0, self.next_turn - time.monotonic())


class Heap:
    """11-6: a min-heap of (deadline, fd); a replaced timer stays in the heap, disowned (the book's
    ``cb_func = NULL``), and is dropped when it reaches the top."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.heap: list[tuple[float, int]] = []
        self.live: dict[int, float] = {}

    def set(self, fd: int) -> None:
        at = time.monotonic() + self.timeout
        self.live[fd] = at
        heapq.heappush(self.heap, (at, fd))

    def remove(self, fd: int) -> None:
        self.live.pop(fd, None)

    def due(self) -> list[int]:
        expired: list[int] = []
        while self.heap and self.heap[0][0] <= time.monotonic():
            at, fd = heapq.heappop(self.heap)
            if self.live.get(fd) == at:
                expired.append(fd)
                del self.live[fd]
        return expired

    def wait(self) -> float | None:
        while self.heap and self.live.get(self.heap[0][1]) != self.heap[0][0]:
            heapq.heappop(self.heap)
        return max(0.0, self.heap[0][0] - time.monotonic()) if self.heap else None


Timers = SortedList | Wheel | Heap


def make_timers(kind: str, timeslot: float) -> Timers:
    timeout = 3 * timeslot
    if kind == "list":
        return SortedList(timeout)
    return Wheel(timeout, timeslot) if kind == "wheel" else Heap(timeout)


class AlarmSource:
    """11-3's pipe: ``alarm(TIMESLOT)``, and SIGALRM reaching the loop as a byte (:class:`SignalPipe`),
    installed with SA_RESTART."""

    def __init__(self, timeslot: float) -> None:
        self.pipe = SignalPipe(signal.SIGALRM, restart=True)
        self.seconds = max(1, round(timeslot))  # alarm() takes whole seconds
        self.rearm()

    def fileno(self) -> int:
        return self.pipe.fileno()

    def rearm(self) -> None:
        signal.alarm(self.seconds)

    def drain(self) -> None:
        self.pipe.received()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="idle_timers", description="Close idle connections with a timer list, "
                                "wheel or heap (book 11-3, 11-5, 11-6).")
    add_endpoint(p, server=True)
    p.add_argument("--timer", choices=("list", "wheel", "heap"), default="list")
    p.add_argument("--timeslot", type=positive_float, default=1.0,
                   help="TIMESLOT (the alarm period; the wheel's SI), seconds; a connection idle 3 × this is closed")
    p.add_argument("--duration", type=positive_float, default=30.0, help="exit 0 after this many seconds")
    return p


def main(args: argparse.Namespace) -> int:
    listener = listen_tcp(args.ip, args.port)
    listener.setblocking(False)
    timers = make_timers(args.timer, args.timeslot)
    poller = select.epoll()
    poller.register(listener.fileno(), select.EPOLLIN)
    alarm = AlarmSource(args.timeslot) if args.timer == "list" else None
    if alarm is not None:
        poller.register(alarm.fileno(), select.EPOLLIN)
    conns: dict[int, socket.socket] = {}
    end = time.monotonic() + args.duration
    while time.monotonic() < end:
        wait = timers.wait()
        wait = min(end - time.monotonic(), wait if wait is not None else math.inf)
        for fd, _ in poller.poll(max(0.0, wait)):
            if fd == listener.fileno():
                conn, _peer = listener.accept()
                conns[conn.fileno()] = conn
                poller.register(conn.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
                timers.set(conn.fileno())
            elif alarm is not None and fd == alarm.fileno():
                alarm.drain()
                for expired in timers.due():
                    kick(expired, conns, poller, timers)
                alarm.rearm()
            elif fd in conns:
                data = conns[fd].recv(1024)
                if data:
                    out(f"get {len(data)} bytes of client data {data.decode(errors='replace').strip()!r} from {fd}")
                    timers.set(fd)  # adjust_timer: the deadline moves with the data
                else:
                    kick(fd, conns, poller, timers)
        if alarm is None:
            for expired in timers.due():
                kick(expired, conns, poller, timers)
    return 0


def kick(fd: int, conns: dict[int, socket.socket], poller: select.epoll, timers: Timers) -> None:
    """``cb_func``: forget the connection's timer, stop watching it, close it (a FIN)."""
    timers.remove(fd)
    poller.unregister(fd)
    conns.pop(fd).close()
    out(f"close fd {fd}")


if __name__ == "__main__":
    run(main, parser())
