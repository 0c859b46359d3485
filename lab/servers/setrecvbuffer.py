"""Book 5-11 ``set_recv_buffer``: set SO_RCVBUF before listen, print what the kernel kept, read to EOF.

The kernel doubles the value asked for, never goes below SOCK_MIN_RCVBUF
(2304 on x86_64 with 6.x; 256 in the book) and caps it at 2 x
net.core.rmem_max. Set before listen(), it is inherited by accepted sockets
and shapes the handshake: window scale 0 and a SYN-ACK window of at most half
the buffer, which is what the experiment reads from the capture.

Usage::

    python3 -m lab.servers.setrecvbuffer IP PORT SIZE [--timeout 10]

Output lines:

    the tcp receive buffer size after setting is N     (the book's line)
    listening on IP:PORT
    accepted IP:PORT
    received N bytes                                   (at EOF)
"""

from __future__ import annotations

import argparse
import socket

from lab.servers._common import (
    accept_within,
    add_endpoint,
    add_timeout,
    fmt_addr,
    listen_tcp,
    out,
    read_to_eof,
    run,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="setrecvbuffer", description="Book 5-11: SO_RCVBUF before listen.")
    add_endpoint(p, server=True)
    p.add_argument("size", type=int, help="value passed to setsockopt(SO_RCVBUF)")
    add_timeout(p, 10.0, "accept and each wait for data")
    return p


def main(args: argparse.Namespace) -> int:
    def set_rcvbuf(sock: socket.socket) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.size)
        value = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        out(f"the tcp receive buffer size after setting is {value}")

    with listen_tcp(args.ip, args.port, before_bind=set_rcvbuf) as listener:
        conn, peer = accept_within(listener, args.timeout)
    with conn:
        out(f"accepted {fmt_addr(peer)}")
        total, _ = read_to_eof(conn, args.timeout)
        out(f"received {total} bytes")
    return 0


if __name__ == "__main__":
    run(main, parser())
