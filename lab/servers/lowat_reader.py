"""Accept, set SO_RCVLOWAT, and wait in epoll for the socket to be readable (§5.11.3, §9.1.2).

With SO_RCVLOWAT n, a socket is readable only once n bytes are queued (or at EOF): epoll, poll and
select all wait. It also tries SO_SNDLOWAT, which Linux does not let a program set (ENOPROTOOPT).

Usage::

    python3 -m lab.servers.lowat_reader IP PORT [--lowat 100] [--timeout 10]

Output lines:

    listening on IP:PORT
    sndlowat errno=ENOPROTOOPT(92)
    readable after S s
    read N bytes
"""

from __future__ import annotations

import argparse
import select
import socket
import time

from lab.servers._common import accept_within, add_endpoint, errno_tag, listen_tcp, out, run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lowat_reader", description="SO_RCVLOWAT, then wait for readability.")
    add_endpoint(p, server=True)
    p.add_argument("--lowat", type=int, default=100, help="SO_RCVLOWAT, bytes (100)")
    p.add_argument("--timeout", type=float, default=10.0, help="the longest wait in epoll (10)")
    return p


def main(args: argparse.Namespace) -> int:
    with listen_tcp(args.ip, args.port) as listener:
        conn, _ = accept_within(listener, 30)
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDLOWAT, args.lowat)
        out("sndlowat set")
    except OSError as exc:
        out(f"sndlowat errno={errno_tag(exc.errno)}")
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, args.lowat)
    epoll = select.epoll()
    epoll.register(conn.fileno(), select.EPOLLIN)
    started = time.monotonic()
    ready = epoll.poll(args.timeout)
    out(f"readable after {time.monotonic() - started:.2f} s" if ready else "not readable (timeout)")
    conn.setblocking(False)
    try:
        out(f"read {len(conn.recv(65536))} bytes")
    except BlockingIOError:
        out("read errno=EAGAIN(11)")
    conn.close()
    return 0


if __name__ == "__main__":
    run(main, parser())
