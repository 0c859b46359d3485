"""Send UDP datagrams of the given sizes, back to back (§5.8.2): each ``sendto`` is one datagram.

Usage::

    python3 -m lab.servers.udp_burst IP PORT [--sizes 100,200,300,400,500] [--broadcast]

Output lines:

    sent N bytes                     (one per datagram)
"""

from __future__ import annotations

import argparse
import socket

from lab.servers._common import add_endpoint, family_of, out, run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="udp_burst", description="Send UDP datagrams of given sizes.")
    add_endpoint(p, server=False)
    p.add_argument("--sizes", default="100,200,300,400,500", help="comma-separated datagram sizes")
    p.add_argument("--broadcast", action="store_true", help="set SO_BROADCAST first (to send to a broadcast address)")
    return p


def main(args: argparse.Namespace) -> int:
    sock = socket.socket(family_of(args.ip), socket.SOCK_DGRAM)
    if args.broadcast:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    for size in (int(s) for s in args.sizes.split(",")):
        sent = sock.sendto(bytes(48 + i % 10 for i in range(size)), (args.ip, args.port))
        out(f"sent {sent} bytes")
    return 0


if __name__ == "__main__":
    run(main, parser())
