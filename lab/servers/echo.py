"""Echo server (RFC 862), TCP by default, UDP with ``--udp``.

The book's interactive-data experiment (§3.6) and its ARP example (telnet to
port 7) need a peer that sends every byte straight back. Each TCP connection
gets its own thread, so several clients can be served at once.

Usage::

    python3 -m lab.servers.echo IP PORT [--udp] [--duration S] [--idle-timeout S]

Output lines:

    listening on IP:PORT
    accepted IP:PORT                        (TCP, per connection; the peer)
    closed IP:PORT bytes=N reason=eof|idle|errno=NAME(n)
    echoed N bytes to IP:PORT               (UDP, per datagram)
    stopped reason=duration|signal

The server stops by itself after ``--duration`` seconds (default 600), exit 0.
"""

from __future__ import annotations

import argparse
import socket

from lab.servers._common import (
    Deadline,
    add_endpoint,
    add_service_times,
    errno_tag,
    family_of,
    fmt_addr,
    is_local_timeout,
    listen_tcp,
    out,
    run,
    serve_threads,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="echo", description="TCP (or UDP) echo server.")
    add_endpoint(p, server=True)
    p.add_argument("--udp", action="store_true", help="echo UDP datagrams instead of a TCP stream")
    add_service_times(p)
    p.add_argument("--backlog", type=int, default=128, help="listen backlog (128)")
    return p


def serve_connection(conn: socket.socket, peer: str, idle: float) -> None:
    """Echo until EOF, an error or ``idle`` seconds of silence; then close and report."""
    total, reason = 0, "eof"
    conn.settimeout(idle)
    with conn:
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(data)
                total += len(data)
        except OSError as exc:
            reason = "idle" if is_local_timeout(exc) else f"errno={errno_tag(exc.errno)}"
    out(f"closed {peer} bytes={total} reason={reason}")


def serve_tcp(args: argparse.Namespace) -> None:
    with listen_tcp(args.ip, args.port, args.backlog) as listener:
        def handle(conn: socket.socket, peer: str) -> None:
            serve_connection(conn, peer, args.idle_timeout)

        serve_threads(listener, args.duration, handle)


def serve_udp(args: argparse.Namespace) -> None:
    deadline = Deadline(args.duration)
    with socket.socket(family_of(args.ip), socket.SOCK_DGRAM) as sock:
        sock.bind((args.ip, args.port))
        out(f"listening on {fmt_addr(sock.getsockname())}")
        while not deadline.expired():
            sock.settimeout(max(deadline.left(), 0.001))
            try:
                data, addr = sock.recvfrom(65536)
            except TimeoutError as exc:
                if is_local_timeout(exc):
                    break
                raise
            sock.sendto(data, addr)
            out(f"echoed {len(data)} bytes to {fmt_addr(addr)}")
    out("stopped reason=duration")


def main(args: argparse.Namespace) -> int:
    if args.udp:
        serve_udp(args)
    else:
        serve_tcp(args)
    return 0


if __name__ == "__main__":
    run(main, parser())
