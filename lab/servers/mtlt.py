"""Book 9-3 ``mtlt``: an epoll server that reads a connection level-triggered (LT) or edge-triggered (ET).

LT: one ``recv`` of ``--chunk`` bytes per EPOLLIN, so data left in the buffer makes the next
``epoll_wait`` return at once: ⌈n/chunk⌉ events for n bytes, and one more for EOF. ET: each EPOLLIN is
read to EAGAIN ("read later"), and the kernel reports the connection again only when new data (or the
FIN) arrives: 2 events for one segment and the EOF. The listening socket is registered ET, as in the
book. The book's BUFFER_SIZE is 10 and it reads ``BUFFER_SIZE - 1``: ``--chunk 9``.

Each event and each read goes through the kernel as one ``epoll_wait`` and one ``recvfrom``: the
experiment counts them with strace, not from these lines. It ends after ``--connections`` closed
connections (so a trace of it ends too), or at ``--duration``.

Usage::

    python3 -m lab.servers.mtlt IP PORT [--mode lt|et] [--chunk 9] [--connections 1] [--duration S]

Output lines:

    listening on IP:PORT
    event trigger once                      (every EPOLLIN on a connection, the book's line)
    get N bytes of content: TEXT
    read later                              (ET: EAGAIN)
    closed fd=N
"""

from __future__ import annotations

import argparse
import select
import time

from lab.servers._common import add_endpoint, add_service_times, listen_tcp, out, run, show_bytes


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mtlt", description="Book 9-3: epoll LT or ET, one chunk per read.")
    add_endpoint(p, server=True)
    p.add_argument("--mode", choices=("lt", "et"), default="lt", help="how connections are registered (lt)")
    p.add_argument("--chunk", type=int, default=9, help="bytes per recv (the book's BUFFER_SIZE - 1 = 9)")
    p.add_argument("--connections", type=int, default=1, help="end after this many connections closed (1)")
    add_service_times(p, idle=False)
    return p


def main(args: argparse.Namespace) -> int:
    listener = listen_tcp(args.ip, args.port)
    listener.setblocking(False)
    epoll = select.epoll()
    epoll.register(listener.fileno(), select.EPOLLIN | select.EPOLLET)
    conns = {}
    closed = 0
    deadline = time.monotonic() + args.duration
    while closed < args.connections and time.monotonic() < deadline:
        for fd, _events in epoll.poll(1.0):
            if fd == listener.fileno():
                while True:
                    try:
                        conn, _ = listener.accept()
                    except BlockingIOError:
                        break
                    conn.setblocking(False)
                    conns[conn.fileno()] = conn
                    epoll.register(conn.fileno(), select.EPOLLIN | (select.EPOLLET if args.mode == "et" else 0))
                continue
            out("event trigger once")
            conn = conns[fd]
            while True:
                try:
                    data = conn.recv(args.chunk)
                except BlockingIOError:
                    out("read later")
                    break
                if not data:
                    epoll.unregister(fd)
                    conn.close()
                    del conns[fd]
                    out(f"closed fd={fd}")
                    closed += 1
                    break
                out(f"get {len(data)} bytes of content: {show_bytes(data)}")
                if args.mode == "lt":
                    break
    return 0


if __name__ == "__main__":
    run(main, parser())
