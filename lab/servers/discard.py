"""Discard server (RFC 863): reads and drops everything, reports the byte count at EOF.

It stands in for the book's ``iperf -s`` in the retransmission experiment
(§3.9) and is the simplest peer that closes as soon as it reads EOF, which
is what the connection-close experiment (§3.3.1) needs. Each connection gets
its own thread.

Usage::

    python3 -m lab.servers.discard IP PORT [--duration S] [--idle-timeout S]

Output lines:

    listening on IP:PORT
    accepted IP:PORT
    eof IP:PORT bytes=N                      (peer closed; we close too)
    closed IP:PORT bytes=N reason=idle|errno=NAME(n)
    stopped reason=duration|signal
"""

from __future__ import annotations

import argparse
import socket

from lab.servers._common import (
    add_endpoint,
    add_service_times,
    errno_tag,
    is_local_timeout,
    listen_tcp,
    out,
    run,
    serve_threads,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="discard", description="TCP discard server.")
    add_endpoint(p, server=True)
    add_service_times(p)
    p.add_argument("--backlog", type=int, default=128, help="listen backlog (128)")
    return p


def drain(conn: socket.socket, peer: str, idle: float) -> None:
    total = 0
    conn.settimeout(idle)
    with conn:
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    out(f"eof {peer} bytes={total}")
                    return
                total += len(data)
        except OSError as exc:
            reason = "idle" if is_local_timeout(exc) else f"errno={errno_tag(exc.errno)}"
            out(f"closed {peer} bytes={total} reason={reason}")


def main(args: argparse.Namespace) -> int:
    with listen_tcp(args.ip, args.port, args.backlog) as listener:
        serve_threads(listener, args.duration, lambda conn, peer: drain(conn, peer, args.idle_timeout))
    return 0


if __name__ == "__main__":
    run(main, parser())
