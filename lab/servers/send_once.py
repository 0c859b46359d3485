"""Connect, write N bytes in one ``send``, wait, close: the peer of the second half's readiness experiments.

Usage::

    python3 -m lab.servers.send_once IP PORT [--bytes 100] [--times 1] [--gap 0.3] [--hold 1]

``--times`` sends are ``--gap`` seconds apart (one segment each: TCP_NODELAY); then it waits ``--hold``
seconds and closes.

Output lines:

    connected local=IP:PORT
    sent N bytes
    closed
"""

from __future__ import annotations

import argparse
import socket
import time

from lab.servers._common import add_endpoint, add_timeout, connect_within, fmt_addr, out, run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="send_once", description="Connect, send N bytes at once, wait, close.")
    add_endpoint(p, server=False)
    p.add_argument("--bytes", type=int, default=100, help="bytes per send (100)")
    p.add_argument("--times", type=int, default=1, help="how many sends (1)")
    p.add_argument("--gap", type=float, default=0.3, help="seconds between sends (0.3)")
    p.add_argument("--hold", type=float, default=1.0, help="seconds to wait before closing (1)")
    add_timeout(p)
    return p


def main(args: argparse.Namespace) -> int:
    sock = connect_within(args.ip, args.port, args.timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out(f"connected local={fmt_addr(sock.getsockname())}")
    for i in range(args.times):
        if i:
            time.sleep(args.gap)
        sent = sock.send(b"x" * args.bytes)
        out(f"sent {sent} bytes")
    time.sleep(args.hold)
    sock.close()
    out("closed")
    return 0


if __name__ == "__main__":
    run(main, parser())
