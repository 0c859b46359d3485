"""Book 9-4 ``oneshot``: an edge-triggered epoll server that hands each event to a worker thread, with or
without EPOLLONESHOT (§9.3.4).

Without EPOLLONESHOT every segment that arrives raises a new event, so a second worker starts on the
same socket while the first is still busy: two threads on one connection. With it, the socket is
reported once, until the worker re-arms it with EPOLL_CTL_MOD; data that came meanwhile makes the
next epoll_wait return at once (MOD re-evaluates readiness). A worker reads to EAGAIN, then stays
busy ``--hold`` seconds (the book's sleep(5)), then re-arms (with ``--oneshot``).

Usage::

    python3 -m lab.servers.oneshot IP PORT [--oneshot] [--hold 1] [--duration 10]

Output lines:

    listening on IP:PORT
    start new thread to receive data on fd: N
    get content: N bytes
    end thread receiving data on fd: N
    foreiner closed the connection
"""

from __future__ import annotations

import argparse
import select
import socket
import threading
import time

from lab.servers._common import add_endpoint, add_service_times, listen_tcp, out, run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oneshot", description="Book 9-4: ET epoll, a worker per event.")
    add_endpoint(p, server=True)
    p.add_argument("--oneshot", action="store_true", help="register connections with EPOLLONESHOT")
    p.add_argument("--hold", type=float, default=1.0, help="seconds a worker stays busy after reading (1)")
    add_service_times(p, idle=False)
    return p


def main(args: argparse.Namespace) -> int:
    listener = listen_tcp(args.ip, args.port)
    listener.setblocking(False)
    epoll = select.epoll()
    epoll.register(listener.fileno(), select.EPOLLIN)
    mask = select.EPOLLIN | select.EPOLLET | (select.EPOLLONESHOT if args.oneshot else 0)
    conns: dict[int, socket.socket] = {}
    done = threading.Event()

    def worker(conn: socket.socket) -> None:
        fd = conn.fileno()
        out(f"start new thread to receive data on fd: {fd}")
        while True:
            try:
                data = conn.recv(1024)
            except BlockingIOError:
                break
            if not data:
                out("foreiner closed the connection")
                done.set()
                return
            out(f"get content: {len(data)} bytes")
        time.sleep(args.hold)
        if args.oneshot:
            epoll.modify(fd, mask)
        out(f"end thread receiving data on fd: {fd}")

    deadline = time.monotonic() + args.duration
    while time.monotonic() < deadline and not done.is_set():
        for fd, _ in epoll.poll(0.5):
            if fd == listener.fileno():
                conn, _ = listener.accept()
                conn.setblocking(False)
                conns[conn.fileno()] = conn
                epoll.register(conn.fileno(), mask)
            else:
                threading.Thread(target=worker, args=(conns[fd],), daemon=True).start()
    time.sleep(0.2)
    return 0


if __name__ == "__main__":
    run(main, parser())
