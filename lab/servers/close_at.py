"""One end of a connection that closes at an agreed moment (§3.4.1): run one with ``--listen`` and one
with ``--connect``, the same ``--at``, and both FINs leave together (the nodes share the machine's clock).

Usage::

    python3 -m lab.servers.close_at IP PORT (--listen | --connect) --at EPOCH_SECONDS [--timeout 10]

Output lines:

    listening on IP:PORT          (--listen)
    connected local=IP:PORT
    closed at EPOCH
"""

from __future__ import annotations

import argparse
import time

from lab.servers._common import accept_within, add_endpoint, connect_within, fmt_addr, listen_tcp, out, run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="close_at", description="Close a connection at an agreed moment.")
    add_endpoint(p, server=True)
    side = p.add_mutually_exclusive_group(required=True)
    side.add_argument("--listen", action="store_true")
    side.add_argument("--connect", action="store_true")
    p.add_argument("--at", type=float, required=True, help="when to close(), seconds since the epoch")
    p.add_argument("--timeout", type=float, default=10.0)
    return p


def main(args: argparse.Namespace) -> int:
    if args.listen:
        with listen_tcp(args.ip, args.port) as listener:
            conn, peer = accept_within(listener, args.timeout)
    else:
        conn = connect_within(args.ip, args.port, args.timeout)
    out(f"connected local={fmt_addr(conn.getsockname())}")
    time.sleep(max(0.0, args.at - time.time()))
    conn.close()
    out(f"closed at {time.time():.3f}")
    return 0


if __name__ == "__main__":
    run(main, parser())
