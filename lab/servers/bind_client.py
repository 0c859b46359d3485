"""A client on a fixed local port (§3.4.2 TIME_WAIT): bind, connect, and close first.

Closing first makes this side the active closer, so its (IP, port) sits in
TIME_WAIT for 60 s. Run it again at once and bind() fails with EADDRINUSE,
like the book's ``nc -p 12345``. On Linux even ``--reuseaddr`` on the new
socket does not help if the socket in TIME_WAIT did not have it: the check
uses the old socket's flag too.

Usage::

    python3 -m lab.servers.bind_client IP PORT --local-port P [--local-ip A] [--reuseaddr] [--hold S]
        [--timeout 10]

Output lines:

    bind ok
    connected local=IP:PORT peer=IP:PORT
    closed                                            (we closed first)
  or
    bind failed: [Errno 98] Address already in use
    errno=EADDRINUSE(98)                              (exit 1)
"""

from __future__ import annotations

import argparse
import socket
import time

from lab.servers._common import (
    LocalTimeout,
    add_endpoint,
    add_timeout,
    errno_tag,
    fmt_addr,
    is_local_timeout,
    out,
    port_number,
    positive_float,
    run,
    tcp_socket,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bind_client", description="Fixed local port; close first.")
    add_endpoint(p, server=False)
    p.add_argument("--local-port", type=port_number, required=True, help="local port to bind")
    p.add_argument("--local-ip", default=None, help="local address to bind (default: any)")
    p.add_argument("--reuseaddr", action="store_true", help="set SO_REUSEADDR before bind")
    p.add_argument("--hold", type=positive_float, default=0.0,
                   help="seconds to stay connected before closing (0)")
    add_timeout(p, 10.0, "connect()")
    return p


def main(args: argparse.Namespace) -> int:
    with tcp_socket(args.ip) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1 if args.reuseaddr else 0)
        local_ip = args.local_ip or ("::" if sock.family == socket.AF_INET6 else "0.0.0.0")
        try:
            sock.bind((local_ip, args.local_port))
        except OSError as exc:
            out(f"bind failed: {exc}")
            out(f"errno={errno_tag(exc.errno)}")
            return 1
        out("bind ok")
        sock.settimeout(args.timeout)
        try:
            sock.connect((args.ip, args.port))
        except OSError as exc:
            if is_local_timeout(exc):
                raise LocalTimeout("connect", args.timeout) from None
            raise
        out(f"connected local={fmt_addr(sock.getsockname())} peer={fmt_addr(sock.getpeername())}")
        time.sleep(args.hold)
    out("closed")
    return 0


if __name__ == "__main__":
    run(main, parser())
