"""Small writes without waiting (§3.6 Nagle over a WAN): one byte every few milliseconds, no reads.

With Nagle on, at most one small segment may be unacknowledged, so over a path
with a real RTT the bytes written meanwhile wait and leave together when the
ACK comes back: about one segment per RTT. With ``--nodelay`` (TCP_NODELAY)
every write leaves at once as its own segment. Against an echo server the ACK
rides on the echo, so no delayed-ACK timer is involved.

Usage::

    python3 -m lab.servers.trickle_client IP PORT [--count 200] [--interval-ms 5] [--nodelay] [--linger 1]
        [--timeout 5]

Output lines:

    connected nodelay=0|1 local=IP:PORT
    wrote n=200 secs=1.003                  (after the last write returned)
    closed                                  (after --linger seconds, for the last bytes to leave)
"""

from __future__ import annotations

import argparse
import socket
import time

from lab.servers._common import add_endpoint, add_timeout, connect_within, fmt_addr, out, positive_float, run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trickle_client", description="One-byte writes at an interval.")
    add_endpoint(p, server=False)
    p.add_argument("--count", type=int, default=200, help="number of one-byte writes (200)")
    p.add_argument("--interval-ms", type=positive_float, default=5.0, help="time between writes, ms (5)")
    p.add_argument("--nodelay", action="store_true", help="set TCP_NODELAY (Nagle off)")
    p.add_argument("--linger", type=positive_float, default=1.0, help="seconds to wait before close (1)")
    add_timeout(p, 5.0, "connect")
    return p


def main(args: argparse.Namespace) -> int:
    with connect_within(args.ip, args.port, args.timeout) as sock:
        if args.nodelay:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        nodelay = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        out(f"connected nodelay={1 if nodelay else 0} local={fmt_addr(sock.getsockname())}")
        started = time.monotonic()
        for n in range(args.count):
            time.sleep(max(0.0, started + n * args.interval_ms / 1000 - time.monotonic()))
            sock.sendall(b"x")
        out(f"wrote n={args.count} secs={time.monotonic() - started:.3f}")
        time.sleep(args.linger)
    out("closed")
    return 0


if __name__ == "__main__":
    run(main, parser())
