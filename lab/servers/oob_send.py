"""Book 5-6 ``testoobsend``: send "123", then "abc" with MSG_OOB, then "123".

Only the last byte of the MSG_OOB send ('c') becomes urgent data: the segment
carries the URG flag with ``urg 3`` and the receiver's normal reads stop at
the urgent mark. Small pauses between the sends (``--pause``) put each one in
its own segment, like the book's capture (``Flags [P.U], seq 4:7, urg 3``).

Usage::

    python3 -m lab.servers.oob_send IP PORT [--normal 123] [--oob abc] [--pause 0.1] [--timeout 10]

Output lines:

    connected local=IP:PORT
    sent 3 bytes of normal data '123'
    sent 3 bytes of oob data 'abc'
    sent 3 bytes of normal data '123'
    closed
"""

from __future__ import annotations

import argparse
import socket
import time

from lab.servers._common import (
    add_endpoint,
    add_timeout,
    connect_within,
    fmt_addr,
    out,
    positive_float,
    run,
    show_bytes,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oob_send", description="Book 5-6: send normal, urgent, normal data.")
    add_endpoint(p, server=False)
    p.add_argument("--normal", default="123", help="the normal data sent before and after ('123')")
    p.add_argument("--oob", default="abc", help="the data sent with MSG_OOB ('abc')")
    p.add_argument("--pause", type=positive_float, default=0.1, help="seconds between the three sends (0.1)")
    add_timeout(p, 10.0, "connect and each send")
    return p


def main(args: argparse.Namespace) -> int:
    normal, oob = args.normal.encode(), args.oob.encode()
    with connect_within(args.ip, args.port, args.timeout) as sock:
        sock.settimeout(args.timeout)
        out(f"connected local={fmt_addr(sock.getsockname())}")
        for i, (data, flags, kind) in enumerate(
            [(normal, 0, "normal"), (oob, socket.MSG_OOB, "oob"), (normal, 0, "normal")]
        ):
            if i:
                time.sleep(args.pause)
            sent = sock.send(data, flags)
            out(f"sent {sent} bytes of {kind} data '{show_bytes(data[:sent])}'")
    out("closed")
    return 0


if __name__ == "__main__":
    run(main, parser())
