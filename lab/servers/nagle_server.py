"""Server for the Nagle / delayed-ACK experiment: reply 1 byte after every ``--every`` bytes received.

With the client's two 10-byte sends per round, the server has nothing to
say after the first segment, so its ACK is delayed (about 40 ms); with Nagle
on, the client's second segment waits for exactly that ACK.

Usage::

    python3 -m lab.servers.nagle_server IP PORT [--every 20] [--duration S] [--idle-timeout S]

Output lines:

    listening on IP:PORT
    accepted IP:PORT
    closed IP:PORT bytes=N replies=M reason=eof|idle|errno=NAME(n)
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
    p = argparse.ArgumentParser(prog="nagle_server", description="Reply 1 byte per N bytes received.")
    add_endpoint(p, server=True)
    p.add_argument("--every", type=int, default=20, help="bytes to receive per 1-byte reply (20)")
    add_service_times(p)
    return p


def serve(conn: socket.socket, peer: str, every: int, idle: float) -> None:
    total, replies, reason = 0, 0, "eof"
    conn.settimeout(idle)
    with conn:
        try:
            while data := conn.recv(65536):
                total += len(data)
                while total // every > replies:
                    conn.sendall(b"!")
                    replies += 1
        except OSError as exc:
            reason = "idle" if is_local_timeout(exc) else f"errno={errno_tag(exc.errno)}"
    out(f"closed {peer} bytes={total} replies={replies} reason={reason}")


def main(args: argparse.Namespace) -> int:
    with listen_tcp(args.ip, args.port) as listener:
        def handle(conn: socket.socket, peer: str) -> None:
            serve(conn, peer, args.every, args.idle_timeout)

        serve_threads(listener, args.duration, handle)
    return 0


if __name__ == "__main__":
    run(main, parser())
