"""Book 5-3 ``testlisten``: listen with a given backlog and never accept.

Connections the kernel completes pile up in the accept queue; once it holds
backlog + 1 of them, new SYNs are dropped (``ListenOverflows``), so clients
beyond that stay in SYN-SENT. ``ss -ltn`` then shows ``Recv-Q`` = queued
connections and ``Send-Q`` = the effective backlog, min(backlog, somaxconn).
The book loops until SIGTERM; here ``--duration`` bounds that too.

Usage::

    python3 -m lab.servers.testlisten IP PORT BACKLOG [--duration S]

Output lines:

    listening on IP:PORT
    stopped reason=duration|signal
"""

from __future__ import annotations

import argparse
import time

from lab.servers._common import add_endpoint, add_service_times, listen_tcp, out, run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="testlisten", description="Book 5-3: listen(backlog) and never accept.")
    add_endpoint(p, server=True)
    p.add_argument("backlog", type=int, help="the backlog argument of listen()")
    add_service_times(p, idle=False)
    return p


def main(args: argparse.Namespace) -> int:
    with listen_tcp(args.ip, args.port, args.backlog):
        time.sleep(args.duration)
    out("stopped reason=duration")
    return 0


if __name__ == "__main__":
    run(main, parser())
