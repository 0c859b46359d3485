"""Nagle meets delayed ACK (§3.6, TCP_NODELAY in §5.11): rounds of send 10 B, send 10 B, recv 1 B.

With Nagle on, the second small send may not leave while the first is
unacknowledged, and the server delays that ACK (it has nothing to reply
yet), so each round costs about one delayed-ACK timer (~40 ms). With
TCP_NODELAY both segments leave back to back and a round costs one RTT.
Each mode runs on its own connection to ``nagle_server`` (reply per 20 B).

Usage::

    python3 -m lab.servers.nagle_client IP PORT [--rounds 20] [--mode nagle|nodelay|both] [--size 10]
        [--timeout 5]

Output lines:

    connected mode=nagle local=IP:PORT
    round mode=nagle n=1 ms=44.012          (one per round)
    median mode=nagle ms=43.950 rounds=20
    (then the same three kinds of line for mode=nodelay with --mode both)
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time

from lab.servers._common import add_endpoint, add_timeout, connect_within, fmt_addr, out, recv_within, run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nagle_client", description="Two small sends, one small reply, timed.")
    add_endpoint(p, server=False)
    p.add_argument("--rounds", type=int, default=20, help="rounds per mode (20)")
    p.add_argument("--mode", choices=["nagle", "nodelay", "both"], default="both",
                   help="nagle (TCP_NODELAY=0), nodelay (TCP_NODELAY=1) or both, one connection each (both)")
    p.add_argument("--size", type=int, default=10, help="bytes per send (10); the server replies per 2*size")
    add_timeout(p, 5.0, "connect and each reply")
    return p


def run_mode(args: argparse.Namespace, mode: str) -> int:
    def set_nodelay(sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if mode == "nodelay" else 0)

    payload = b"n" * args.size
    times: list[float] = []
    with connect_within(args.ip, args.port, args.timeout, before_connect=set_nodelay) as sock:
        out(f"connected mode={mode} local={fmt_addr(sock.getsockname())}")
        for n in range(1, args.rounds + 1):
            started = time.monotonic()
            sock.sendall(payload)
            sock.sendall(payload)
            if not recv_within(sock, 1, args.timeout, step=f"reply{n}"):
                out(f"eof before reply mode={mode} n={n}")
                return 1
            ms = (time.monotonic() - started) * 1000
            times.append(ms)
            out(f"round mode={mode} n={n} ms={ms:.3f}")
    out(f"median mode={mode} ms={statistics.median(times):.3f} rounds={len(times)}")
    return 0


def main(args: argparse.Namespace) -> int:
    for mode in (["nagle", "nodelay"] if args.mode == "both" else [args.mode]):
        if run_mode(args, mode):
            return 1
    return 0


if __name__ == "__main__":
    run(main, parser())
