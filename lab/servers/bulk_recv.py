"""Bulk receiver: read to EOF and report the byte count, optionally with a small SO_RCVBUF and TCP_INFO.

By default it listens and accepts one connection; with ``--connect`` it
connects to a ``bulk_send --listen``. ``--rcvbuf`` is set before listen or
connect, so it already shapes the handshake (window scale 0, a small window)
and the sender's segment size (at most half the largest window it saw).

Usage::

    python3 -m lab.servers.bulk_recv IP PORT [--connect] [--rcvbuf N] [--info] [--read-size 65536]
        [--timeout 10]

Output lines:

    rcvbuf=N                                  (with --rcvbuf: the value read back)
    listening on IP:PORT                      (without --connect)
    connected local=IP:PORT peer=IP:PORT
    tcp_info when=start cc=... state=ESTAB ...   (with --info; see bulk_send for the fields)
    received N bytes secs=S
    tcp_info when=end ...                     (with --info)
"""

from __future__ import annotations

import argparse
import socket
import time

from lab.servers import tcpinfo
from lab.servers._common import (
    accept_within,
    add_endpoint,
    add_timeout,
    connect_within,
    fmt_addr,
    listen_tcp,
    out,
    recv_within,
    run,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bulk_recv", description="Read to EOF; report bytes and TCP_INFO.")
    add_endpoint(p, server=True)
    p.add_argument("--connect", action="store_true", help="connect to IP PORT instead of listening there")
    p.add_argument("--rcvbuf", type=int, default=0, help="SO_RCVBUF before listen/connect; 0 = autotuning")
    p.add_argument("--info", action="store_true", help="print TCP_INFO after the handshake and at EOF")
    p.add_argument("--read-size", type=int, default=65536, help="bytes asked for per recv (65536)")
    add_timeout(p, 10.0, "connect/accept and each wait for data")
    return p


def open_connection(args: argparse.Namespace) -> socket.socket:
    def configure(sock: socket.socket) -> None:
        if args.rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
            out(f"rcvbuf={sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)}")

    if args.connect:
        return connect_within(args.ip, args.port, args.timeout, before_connect=configure)
    with listen_tcp(args.ip, args.port, before_bind=configure) as listener:
        conn, _ = accept_within(listener, args.timeout)
    return conn


def main(args: argparse.Namespace) -> int:
    with open_connection(args) as sock:
        out(f"connected local={fmt_addr(sock.getsockname())} peer={fmt_addr(sock.getpeername())}")
        if args.info:
            out(tcpinfo.line(sock, "start"))
        started = time.monotonic()
        total = 0
        while data := recv_within(sock, args.read_size, args.timeout):
            total += len(data)
        out(f"received {total} bytes secs={time.monotonic() - started:.3f}")
        if args.info:
            out(tcpinfo.line(sock, "end"))
    return 0


if __name__ == "__main__":
    run(main, parser())
