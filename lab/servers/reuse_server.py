"""A server that closes first (§5.11.1 SO_REUSEADDR): listen, accept one connection, close it first.

Closing first leaves the *server's* end of that connection in TIME_WAIT on
the listening port. Starting the server again at once shows what
SO_REUSEADDR buys. On 6.x bind() succeeds only when both the old and the new
socket set it; any other combination gives EADDRINUSE.

Usage::

    python3 -m lab.servers.reuse_server IP PORT [--reuseaddr] [--bind-only] [--hold S] [--timeout 10]

Output lines:

    bind ok
    listening on IP:PORT
    accepted IP:PORT
    closed first                                     (we closed before the client)
  (with --bind-only the program stops after ``listening on``, exit 0)
  or
    bind failed: [Errno 98] Address already in use
    errno=EADDRINUSE(98)                             (exit 1)
"""

from __future__ import annotations

import argparse
import socket
import time

from lab.servers._common import (
    accept_within,
    add_endpoint,
    add_timeout,
    errno_tag,
    fmt_addr,
    out,
    positive_float,
    run,
    tcp_socket,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reuse_server", description="Accept one connection and close first.")
    add_endpoint(p, server=True)
    p.add_argument("--reuseaddr", action="store_true", help="set SO_REUSEADDR before bind")
    p.add_argument("--hold", type=positive_float, default=0.0,
                   help="seconds between accept and closing the connection (0)")
    p.add_argument("--bind-only", action="store_true",
                   help="stop after listen() succeeds (exit 0): just test whether the port can be bound")
    add_timeout(p, 10.0, "accept()")
    return p


def main(args: argparse.Namespace) -> int:
    with tcp_socket(args.ip) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1 if args.reuseaddr else 0)
        try:
            listener.bind((args.ip, args.port))
        except OSError as exc:
            out(f"bind failed: {exc}")
            out(f"errno={errno_tag(exc.errno)}")
            return 1
        out("bind ok")
        listener.listen(5)
        out(f"listening on {fmt_addr(listener.getsockname())}")
        if args.bind_only:
            return 0
        conn, peer = accept_within(listener, args.timeout)
        out(f"accepted {fmt_addr(peer)}")
        time.sleep(args.hold)
        conn.close()
        out("closed first")
    return 0


if __name__ == "__main__":
    run(main, parser())
