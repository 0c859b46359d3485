"""Book 16-4, done right: a load generator that holds many HTTP connections, a request in flight on each.

Usage::

    python3 -m lab.servers.stress_client IP PORT [--connections 1000] [--pace 0] [--duration 10]
                                         [--think 0] [--path /index.html] [--connect-timeout 15]

Opens ``--connections`` non-blocking connections from one process, all at once (a burst, as the
book's ``start_conn``) or ``--pace`` per second, and on each keeps one keep-alive request in flight:
send, read the whole response, wait ``--think`` seconds, send the next, for ``--duration`` seconds.
Then it stops sending, waits for the responses still due (``--connect-timeout`` at most), closes every
connection and exits 0. Bounded by its arguments: at most 20,000 connections and 300 s.

The book's 16-4 writes and reads with fixed sizes and never checks a response; this one parses each
(headers and Content-Length), records each connection's connect latency, and counts what failed.

Output lines (after ``--duration``)::

    established all=N after=SECONDS        (once, when every connection is up)
    connections opened=N established=N failed=N reset=N
    connect_ms p50=… p90=… p99=… max=…
    connect_seconds 0:N 1:N 2:N 3:N 4+:N   (latency rounded to whole seconds: SYN retransmissions)
    requests sent=N responses=N per_second=R
"""

from __future__ import annotations

import argparse
import errno
import heapq
import resource
import select
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from lab.servers._common import add_endpoint, errno_tag, family_of, out, run

MAX_CONNECTIONS, MAX_SECONDS = 20_000, 300.0
Number = TypeVar("Number", int, float)


@dataclass
class Client:
    sock: socket.socket
    started: float
    connected: float | None = None
    pending: bytearray = field(default_factory=bytearray)
    in_flight: bool = False


def responses_in(pending: bytearray) -> int:
    """Cut every whole response (headers and Content-Length bytes) off the front of ``pending``."""
    done = 0
    while (end := pending.find(b"\r\n\r\n")) >= 0:
        head = pending[:end].decode("latin-1").lower()
        length = 0
        for line in head.split("\r\n"):
            if line.startswith("content-length:"):
                length = int(line.partition(":")[2])
        if len(pending) < end + 4 + length:
            break
        del pending[:end + 4 + length]
        done += 1
    return done


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


class Load:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.request = f"GET {args.path} HTTP/1.1\r\nHost: lab\r\nConnection: keep-alive\r\n\r\n".encode()
        self.poller = select.epoll()
        self.clients: dict[int, Client] = {}
        self.failed: Counter[str] = Counter()
        self.resets = self.sent = self.answered = self.opened = 0
        self.latencies: list[float] = []
        self.thinking: list[tuple[float, int]] = []
        self.all_up_reported = False

    def open_one(self) -> None:
        sock = socket.socket(family_of(self.args.ip), socket.SOCK_STREAM)
        sock.setblocking(False)
        code = sock.connect_ex((self.args.ip, self.args.port))
        self.opened += 1
        if code not in (0, errno.EINPROGRESS):
            self.failed[errno_tag(code)] += 1
            sock.close()
            return
        self.clients[sock.fileno()] = Client(sock, time.monotonic())
        self.poller.register(sock.fileno(), select.EPOLLOUT)

    def send(self, fd: int, client: Client) -> None:
        try:
            client.sock.send(self.request)
        except OSError as exc:
            self.drop(fd, client, exc.errno)
            return
        client.in_flight = True
        self.sent += 1

    def drop(self, fd: int, client: Client, code: int | None) -> None:
        if code == errno.ECONNRESET:
            self.resets += 1
        elif client.connected is None:
            self.failed[errno_tag(code)] += 1
        self.poller.unregister(fd)
        client.sock.close()
        del self.clients[fd]

    def on_event(self, fd: int, sending: bool) -> None:
        client = self.clients[fd]
        if client.connected is None:
            code = client.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                self.drop(fd, client, code)
                return
            client.connected = time.monotonic()
            self.latencies.append(client.connected - client.started)
            self.poller.modify(fd, select.EPOLLIN)
            if sending:
                self.send(fd, client)
            return
        try:
            data = client.sock.recv(65536)
        except OSError as exc:
            self.drop(fd, client, exc.errno)
            return
        if not data:
            self.drop(fd, client, None)
            return
        client.pending += data
        if (got := responses_in(client.pending)) and client.in_flight:
            self.answered += got
            client.in_flight = False
            if sending:
                heapq.heappush(self.thinking, (time.monotonic() + self.args.think, fd))

    def run(self) -> None:
        started = time.monotonic()
        end = started + self.args.duration
        pace = self.args.pace
        while (now := time.monotonic()) < end:
            due = self.args.connections if not pace else min(self.args.connections, int((now - started) * pace) + 1)
            while self.opened < due:
                self.open_one()
            self.wake_thinkers(now)
            wait = min(end, self.thinking[0][0] if self.thinking else end) - now
            for fd, _ in self.poller.poll(max(0.0, min(wait, 0.05 if pace else wait))):
                if fd in self.clients:
                    self.on_event(fd, sending=True)
            self.report_all_up(started)
        settle = time.monotonic() + self.args.connect_timeout
        while any(c.in_flight for c in self.clients.values()) and time.monotonic() < settle:
            for fd, _ in self.poller.poll(0.2):
                if fd in self.clients:
                    self.on_event(fd, sending=False)

    def wake_thinkers(self, now: float) -> None:
        while self.thinking and self.thinking[0][0] <= now:
            _, fd = heapq.heappop(self.thinking)
            if fd in self.clients:
                self.send(fd, self.clients[fd])

    def report_all_up(self, started: float) -> None:
        if not self.all_up_reported and len(self.latencies) == self.args.connections:
            self.all_up_reported = True
            out(f"established all={len(self.latencies)} after={time.monotonic() - started:.3f}")

    def summary(self) -> None:
        ms = [x * 1000 for x in self.latencies]
        seconds = Counter(min(4, round(x)) for x in self.latencies)
        failed = sum(self.failed.values())
        out(f"connections opened={self.opened} established={len(self.latencies)} failed={failed} reset={self.resets}"
            + "".join(f" {name}={n}" for name, n in sorted(self.failed.items())))
        out(f"connect_ms p50={percentile(ms, 0.5):.1f} p90={percentile(ms, 0.9):.1f} "
            f"p99={percentile(ms, 0.99):.1f} max={max(ms, default=0):.1f}")
        out("connect_seconds " + " ".join(f"{k if k < 4 else '4+'}:{seconds.get(k, 0)}" for k in range(5)))
        out(f"requests sent={self.sent} responses={self.answered} "
            f"per_second={self.answered / self.args.duration:.0f}")

    def close(self) -> None:
        for client in self.clients.values():
            client.sock.close()
        self.poller.close()


def bounded(limit: float, kind: Callable[[str], Number], low: float = 0) -> Callable[[str], Number]:
    """An argparse type: ``kind`` of the text, from ``low`` to ``limit`` (a load is bounded by its arguments)."""
    def parse(text: str) -> Number:
        value = kind(text)
        if not low <= value <= limit:
            raise argparse.ArgumentTypeError(f"{value} is outside {low:g}..{limit:g}")
        return value
    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stress_client", description="Hold many HTTP connections, a request in flight "
                                "on each (book 16-4).")
    add_endpoint(p, server=False)
    p.add_argument("--connections", type=bounded(MAX_CONNECTIONS, int, low=1), default=1000)
    p.add_argument("--pace", type=bounded(MAX_CONNECTIONS, float), default=0.0,
                   help="connections opened per second (0: all at once)")
    p.add_argument("--duration", type=bounded(MAX_SECONDS, float, low=0.1), default=10.0,
                   help="seconds of load (10)")
    p.add_argument("--think", type=bounded(60, float), default=0.0,
                   help="seconds between a response and the next request")
    p.add_argument("--path", default="/index.html")
    p.add_argument("--connect-timeout", type=bounded(60, float), default=15.0,
                   help="after the load, how long to wait for the responses still due")
    return p


def main(args: argparse.Namespace) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if args.connections + 64 > hard:
        raise SystemExit(f"stress_client: {args.connections} connections need {args.connections + 64} open files; "
                         f"the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    load = Load(args)
    try:
        load.run()
        load.summary()
    finally:
        load.close()
    return 0


if __name__ == "__main__":
    run(main, parser())
