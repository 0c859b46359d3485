"""Bulk sender (§3.7 windows, §3.10 congestion control): send N bytes, report time and TCP_INFO.

By default it connects to a receiver (``bulk_recv``); with ``--listen`` it
accepts one connection instead and sends on that, for experiments where the
receiver must be the one that connects (its SO_RCVBUF set before connect).
``--cc`` sets TCP_CONGESTION on this socket only: a network namespace cannot
change its default to an algorithm the machine does not allow, but a
privileged socket can. After the last byte we shut down our side and wait
for the receiver's EOF, so the time covers delivery, not just buffering.

Usage::

    python3 -m lab.servers.bulk_send IP PORT [--listen] [--bytes 1000000] [--cc cubic] [--sndbuf N]
        [--info] [--chunk 65536] [--timeout 10]

``--timeout`` bounds connect/accept and each wait for progress (a send that
moves no byte, or the wait for EOF), not the whole transfer.

Output lines:

    cc=cubic                                   (with --cc: the value read back)
    sndbuf=N                                   (with --sndbuf: the value read back)
    listening on IP:PORT                       (with --listen)
    connected local=IP:PORT peer=IP:PORT
    tcp_info when=start cc=... state=ESTAB ca_state=open cwnd=10 ssthresh=inf retrans=0/0 rto_ms=...
        rtt_ms=.../... mss=... rcv_mss=... advmss=... pmtu=... wscale=S,R options=ts,sack,wscale
        unacked=... lost=... sacked=... bytes_sent=... bytes_retrans=... ...   (with --info; one line)
    tcp_info when=sent ...                     (with --info: after the last send returned)
    sent N bytes secs=S mbit_per_s=R           (after the receiver's EOF)
    tcp_info when=end ...                      (with --info)
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
    read_to_eof,
    run,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bulk_send", description="Send N bytes; report time and TCP_INFO.")
    add_endpoint(p, server=False)
    p.add_argument("--listen", action="store_true", help="listen on IP PORT; send on the accepted connection")
    p.add_argument("--bytes", type=int, default=1_000_000, help="bytes to send (1000000)")
    p.add_argument("--cc", default=None, help="TCP_CONGESTION for this socket, e.g. cubic, reno, bbr")
    p.add_argument("--sndbuf", type=int, default=0, help="SO_SNDBUF before connect/listen; 0 = autotuning")
    p.add_argument("--info", action="store_true", help="print TCP_INFO at start, after sending, at the end")
    p.add_argument("--chunk", type=int, default=65536, help="bytes per send() (65536)")
    add_timeout(p, 10.0, "connect/accept and each wait for progress")
    return p


def configure(sock: socket.socket, args: argparse.Namespace) -> None:
    """Options that must be in place before the handshake."""
    if args.cc:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, args.cc.encode())
        out(f"cc={tcpinfo.congestion(sock)}")
    if args.sndbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, args.sndbuf)
        out(f"sndbuf={sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)}")


def open_connection(args: argparse.Namespace) -> socket.socket:
    if not args.listen:
        return connect_within(args.ip, args.port, args.timeout, before_connect=lambda s: configure(s, args))
    with listen_tcp(args.ip, args.port, before_bind=lambda s: configure(s, args)) as listener:
        conn, _ = accept_within(listener, args.timeout)
    return conn


def main(args: argparse.Namespace) -> int:
    with open_connection(args) as sock:
        out(f"connected local={fmt_addr(sock.getsockname())} peer={fmt_addr(sock.getpeername())}")
        if args.info:
            out(tcpinfo.line(sock, "start"))
        started = time.monotonic()
        chunk = b"b" * args.chunk
        sock.settimeout(args.timeout)
        sent = 0
        while sent < args.bytes:
            sent += sock.send(chunk[: min(args.chunk, args.bytes - sent)])
        if args.info:
            out(tcpinfo.line(sock, "sent"))
        sock.shutdown(socket.SHUT_WR)
        read_to_eof(sock, args.timeout, step="eof")
        secs = time.monotonic() - started
        out(f"sent {sent} bytes secs={secs:.3f} mbit_per_s={sent * 8 / 1e6 / max(secs, 1e-9):.1f}")
        if args.info:
            out(tcpinfo.line(sock, "end"))
    return 0


if __name__ == "__main__":
    run(main, parser())
