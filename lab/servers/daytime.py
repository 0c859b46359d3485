"""Daytime server (RFC 867): on each connection, send the local time as one text line and close.

The book's 5-12 client looks the port up in /etc/services and connects to a
daytime service; modern systems have no inetd to provide one, so this is it.

Usage::

    python3 -m lab.servers.daytime IP [PORT] [--duration S]     # PORT defaults to 13

Output lines:

    listening on IP:PORT
    accepted IP:PORT
    served IP:PORT 'Thu Nov 19 10:00:00 2026'
    stopped reason=duration|signal
"""

from __future__ import annotations

import argparse
import socket
import time

from lab.servers._common import add_endpoint, add_service_times, listen_tcp, out, run, serve_threads


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="daytime", description="TCP daytime server (RFC 867).")
    add_endpoint(p, server=True, default_port=13)
    add_service_times(p, idle=False)
    return p


def serve(conn: socket.socket, peer: str) -> None:
    now = time.ctime()
    with conn:
        conn.settimeout(5.0)
        try:
            conn.sendall(now.encode() + b"\r\n")
        except OSError:
            return
    out(f"served {peer} '{now}'")


def main(args: argparse.Namespace) -> int:
    with listen_tcp(args.ip, args.port) as listener:
        serve_threads(listener, args.duration, serve, threaded=False)
    return 0


if __name__ == "__main__":
    run(main, parser())
