"""Book 9-8: one server, one port, TCP and UDP: a TCP listener and a UDP socket bound to the same port
number, both in one epoll, each echoing (§9.7).

TCP and UDP have port spaces of their own, so both binds succeed. The book's UDP echo sends its whole
1024-byte buffer back whatever came in; this one echoes what it received (``--book-bug`` sends the
1023 bytes the book's does).

Usage::

    python3 -m lab.servers.multi_port IP PORT [--duration 30] [--book-bug]

Output lines:

    listening on IP:PORT
    tcp echoed N bytes
    udp echoed N bytes
"""

from __future__ import annotations

import argparse
import select
import socket
import time

from lab.servers._common import add_endpoint, add_service_times, family_of, listen_tcp, out, run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="multi_port", description="Book 9-8: TCP and UDP echo on one port.")
    add_endpoint(p, server=True)
    p.add_argument("--book-bug", action="store_true", help="reply to UDP with 1023 bytes, as the book's does")
    add_service_times(p, idle=False)
    return p


def main(args: argparse.Namespace) -> int:
    udp = socket.socket(family_of(args.ip), socket.SOCK_DGRAM)
    udp.bind((args.ip, args.port))
    listener = listen_tcp(args.ip, args.port)
    epoll = select.epoll()
    for sock in (listener, udp):
        epoll.register(sock.fileno(), select.EPOLLIN)
    conns: dict[int, socket.socket] = {}
    deadline = time.monotonic() + args.duration
    while time.monotonic() < deadline:
        for fd, _ in epoll.poll(0.5):
            if fd == listener.fileno():
                conn, _ = listener.accept()
                conns[conn.fileno()] = conn
                epoll.register(conn.fileno(), select.EPOLLIN)
            elif fd == udp.fileno():
                data, peer = udp.recvfrom(1024)
                reply = data.ljust(1023, b"\0")[:1023] if args.book_bug else data
                udp.sendto(reply, peer)
                out(f"udp echoed {len(reply)} bytes")
            else:
                conn = conns[fd]
                data = conn.recv(1024)
                if not data:
                    epoll.unregister(fd)
                    conn.close()
                    del conns[fd]
                    continue
                conn.sendall(data)
                out(f"tcp echoed {len(data)} bytes")
    return 0


if __name__ == "__main__":
    run(main, parser())
