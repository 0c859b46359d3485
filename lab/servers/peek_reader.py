"""Accept one connection, wait, peek at what is queued, then read it in one call (§3.1, §5.8.1).

TCP is a byte stream: several sends that arrived before the reader's first call come back from one
``recv`` together. ``MSG_PEEK`` returns the same bytes and leaves them queued. The experiment reads
the calls' results from strace; these lines are the program's own account.

Usage::

    python3 -m lab.servers.peek_reader IP PORT [--wait 0.5] [--size 4096]

Output lines:

    listening on IP:PORT
    peek returned N
    recv returned N
    eof
"""

from __future__ import annotations

import argparse
import socket
import time

from lab.servers._common import accept_within, add_endpoint, listen_tcp, out, run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="peek_reader", description="Wait, MSG_PEEK, then one recv.")
    add_endpoint(p, server=True)
    p.add_argument("--wait", type=float, default=0.5, help="seconds between accept and the first read (0.5)")
    p.add_argument("--size", type=int, default=4096, help="buffer size of each read (4096)")
    return p


def main(args: argparse.Namespace) -> int:
    with listen_tcp(args.ip, args.port) as listener:
        conn, _ = accept_within(listener, 30)
    with conn:
        time.sleep(args.wait)
        out(f"peek returned {len(conn.recv(args.size, socket.MSG_PEEK))}")
        out(f"recv returned {len(conn.recv(args.size))}")
        conn.settimeout(10)
        while conn.recv(args.size):
            pass
    out("eof")
    return 0


if __name__ == "__main__":
    run(main, parser())
