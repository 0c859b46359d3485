"""Book 5-5 ``testaccept``: listen, sleep, then accept one connection and print the peer.

It shows that accept() only takes a connection off the queue, whatever became
of the client meanwhile: a client whose cable was pulled is still ESTABLISHED,
one that exited is CLOSE-WAIT, and accept succeeds for both. The book sleeps
20 s; ``--sleep`` scales that. After accepting, the connection is held open
for ``--hold`` seconds so ``ss`` can look at it, then closed.

Usage::

    python3 -m lab.servers.testaccept IP PORT [--sleep 20] [--backlog 5] [--hold 10] [--timeout 30]

Output lines:

    listening on IP:PORT
    connected with ip: IP and port: PORT     (the book's line; exit 0)
    closed
    timeout step=accept after=S              (nobody connected; exit 1)
"""

from __future__ import annotations

import argparse
import time

from lab.servers._common import accept_within, add_endpoint, add_timeout, listen_tcp, out, positive_float, run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="testaccept", description="Book 5-5: sleep, then accept one connection.")
    add_endpoint(p, server=True)
    p.add_argument("--sleep", type=positive_float, default=20.0, help="seconds from listen to accept (20)")
    p.add_argument("--backlog", type=int, default=5, help="listen backlog (5)")
    p.add_argument("--hold", type=positive_float, default=10.0,
                   help="keep the accepted connection open this long before closing (10)")
    add_timeout(p, 30.0, "accept() after the sleep")
    return p


def main(args: argparse.Namespace) -> int:
    with listen_tcp(args.ip, args.port, args.backlog) as listener:
        time.sleep(args.sleep)
        conn, peer = accept_within(listener, args.timeout)
        with conn:
            out(f"connected with ip: {peer[0]} and port: {peer[1]}")
            time.sleep(args.hold)
        out("closed")
    return 0


if __name__ == "__main__":
    run(main, parser())
