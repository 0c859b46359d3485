"""Connect with TCP keepalive on (§11.2.2), then wait in recv: the kernel probes the idle connection.

SO_KEEPALIVE with TCP_KEEPIDLE (seconds of silence before the first probe), TCP_KEEPINTVL (seconds
between unanswered probes) and TCP_KEEPCNT (unanswered probes before the kernel gives up). When it
gives up, it resets the connection and the blocked recv fails with ETIMEDOUT.

Usage::

    python3 -m lab.servers.keepalive_client IP PORT [--idle 2] [--interval 1] [--count 3]

Output lines:

    connected local=IP:PORT
    errno=ETIMEDOUT(110)          (recv failed; printed by the house's error path)
"""

from __future__ import annotations

import argparse
import socket
from collections.abc import Callable

from lab.servers._common import add_endpoint, add_timeout, connect_within, fmt_addr, out, run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="keepalive_client", description="TCP keepalive on an idle connection.")
    add_endpoint(p, server=False)
    p.add_argument("--idle", type=int, default=2, help="TCP_KEEPIDLE, seconds (2)")
    p.add_argument("--interval", type=int, default=1, help="TCP_KEEPINTVL, seconds (1)")
    p.add_argument("--count", type=int, default=3, help="TCP_KEEPCNT, probes (3)")
    add_timeout(p, 120.0, "the wait in recv")
    return p


def keepalive(args: argparse.Namespace) -> Callable[[socket.socket], None]:
    def configure(sock: socket.socket) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, args.idle)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, args.interval)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, args.count)
    return configure


def main(args: argparse.Namespace) -> int:
    sock = connect_within(args.ip, args.port, 10, before_connect=keepalive(args))
    out(f"connected local={fmt_addr(sock.getsockname())}")
    sock.settimeout(args.timeout)  # blocked in recv until the kernel gives up on the peer (or our own bound)
    data = sock.recv(1)
    out(f"recv returned {len(data)}")
    return 0


if __name__ == "__main__":
    run(main, parser())
