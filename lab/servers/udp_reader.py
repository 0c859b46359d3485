"""Wait until datagrams are queued, then read one per call, each with a planned buffer or flag (§5.8.2).

The plan cycles through ``full`` (``recv(1024)``), ``short`` (``recv(50)``: the rest of a longer
datagram is discarded), ``recvmsg`` (``recvmsg`` with a 50-byte buffer: ``MSG_TRUNC`` in msg_flags when
it did not fit) and ``trunc`` (``recv(10, MSG_TRUNC)``: Linux returns the datagram's real length). What
each call returned is the kernel's answer, which the experiment reads from strace; the lines here
are the program's own account.

Usage::

    python3 -m lab.servers.udp_reader IP PORT [--count 5] [--wait 1] [--plan full,short,recvmsg,trunc]

Output lines:

    listening on IP:PORT
    full returned N
    recvmsg returned N flags=MSG_TRUNC
"""

from __future__ import annotations

import argparse
import socket
import time

from lab.servers._common import add_endpoint, family_of, fmt_addr, out, run

CALLS = {"full": (1024, 0), "short": (50, 0), "trunc": (10, socket.MSG_TRUNC)}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="udp_reader", description="Read queued datagrams, one per call.")
    add_endpoint(p, server=True)
    p.add_argument("--count", type=int, default=5, help="datagrams to read (5)")
    p.add_argument("--wait", type=float, default=1.0, help="seconds before the first read (1)")
    p.add_argument("--plan", default="full,short,recvmsg,trunc", help="the calls, cycled")
    return p


def main(args: argparse.Namespace) -> int:
    sock = socket.socket(family_of(args.ip), socket.SOCK_DGRAM)
    sock.bind((args.ip, args.port))
    out(f"listening on {fmt_addr(sock.getsockname())}")
    time.sleep(args.wait)
    plan = args.plan.split(",")
    sock.settimeout(10)
    for i in range(args.count):
        kind = plan[i % len(plan)]
        if kind == "recvmsg":
            data, _anc, flags, _addr = sock.recvmsg(50)
            out(f"recvmsg returned {len(data)} flags={'MSG_TRUNC' if flags & socket.MSG_TRUNC else 0}")
        else:
            size, flags = CALLS[kind]
            got = sock.recv(size, flags)
            out(f"{kind} returned {len(got)}")
    return 0


if __name__ == "__main__":
    run(main, parser())
