"""Accept one connection, never close it, and send a line later (§3.4.1): the peer that closed first
may have forgotten the connection by then.

Usage::

    python3 -m lab.servers.late_reply IP PORT [--at 7] [--text late] [--hold 2]

Output lines:

    listening on IP:PORT
    sent N bytes at T               (or: send errno=...)
"""

from __future__ import annotations

import argparse
import time

from lab.servers._common import accept_within, add_endpoint, errno_tag, listen_tcp, out, run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="late_reply", description="Accept, keep the connection, send late.")
    add_endpoint(p, server=True)
    p.add_argument("--at", type=float, default=7.0, help="seconds after accept to send (7)")
    p.add_argument("--text", default="late")
    p.add_argument("--hold", type=float, default=2.0, help="seconds to stay after sending (2)")
    return p


def main(args: argparse.Namespace) -> int:
    with listen_tcp(args.ip, args.port) as listener:
        conn, _ = accept_within(listener, 30)
    start = time.monotonic()
    time.sleep(args.at)
    try:
        out(f"sent {conn.send(args.text.encode())} bytes at {time.monotonic() - start:.2f}")
    except OSError as exc:
        out(f"send errno={errno_tag(exc.errno)}")
    time.sleep(args.hold)
    conn.close()
    return 0


if __name__ == "__main__":
    run(main, parser())
