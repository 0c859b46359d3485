"""Book 11-1's socket timeouts: SO_SNDTIMEO on connect, SO_RCVTIMEO on recv (§11.1).

``--connect-timeout T`` sets SO_SNDTIMEO before a blocking connect: if no answer comes, connect
returns -1 with EINPROGRESS after T (the book's 11-1 checks for exactly that errno). ``--recv-timeout
T`` sets SO_RCVTIMEO on a connected socket: a recv with nothing to read fails EAGAIN after T.

Usage::

    python3 -m lab.servers.timeo_client IP PORT (--connect-timeout T | --recv-timeout T)

Output lines:

    connect errno=EINPROGRESS(115) after 2.00    (or: connected)
    recv errno=EAGAIN(11) after 1.00
"""

from __future__ import annotations

import argparse
import socket
import struct
import time

from lab.servers._common import add_endpoint, errno_tag, out, run, tcp_socket


def timeval(seconds: float) -> bytes:
    return struct.pack("ll", int(seconds), int((seconds % 1) * 1_000_000))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="timeo_client", description="Book 11-1: SO_SNDTIMEO / SO_RCVTIMEO.")
    add_endpoint(p, server=False)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--connect-timeout", type=float, help="SO_SNDTIMEO before connect, seconds")
    which.add_argument("--recv-timeout", type=float, help="SO_RCVTIMEO before recv, seconds")
    return p


def main(args: argparse.Namespace) -> int:
    sock = tcp_socket(args.ip)
    if args.connect_timeout is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval(args.connect_timeout))
    started = time.monotonic()
    code = sock.connect_ex((args.ip, args.port))  # a blocking socket: the kernel's timeout, not Python's
    if code:
        out(f"connect errno={errno_tag(code)} after {time.monotonic() - started:.2f}")
        return 0
    out("connected")
    if args.recv_timeout is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval(args.recv_timeout))
        started = time.monotonic()
        try:
            out(f"recv returned {len(sock.recv(1))}")
        except OSError as exc:
            out(f"recv errno={errno_tag(exc.errno)} after {time.monotonic() - started:.2f}")
    return 0


if __name__ == "__main__":
    run(main, parser())
