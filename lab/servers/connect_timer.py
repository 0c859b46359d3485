"""Time one connect() (§3.3.3 connect timeout, §3.5.1 RST to a closed port).

The kernel decides when a connect fails: after ``tcp_syn_retries`` (or the
per-socket ``--syncnt``, TCP_SYNCNT) unanswered SYNs it gives ETIMEDOUT;
an RST gives ECONNREFUSED at once; an ICMP error gives EHOSTUNREACH and the
like. ``--timeout`` is only a safety net and defaults to 150 s, above the
131 s a 6.x kernel needs with default settings, so with defaults the error
printed is always the kernel's.

Usage::

    python3 -m lab.servers.connect_timer IP PORT [--syncnt N] [--bind IP] [--hold S] [--timeout 150]

Output lines (one of):

    connected elapsed=0.001 local=IP:PORT           (exit 0; closed after --hold seconds)
    elapsed=7.102 errno=ETIMEDOUT(110)              (exit 1; the kernel gave up)
    elapsed=0.000 errno=ECONNREFUSED(111)           (exit 1; RST)
    elapsed=150.001 timeout step=connect after=150  (exit 1; our safety net fired first)
"""

from __future__ import annotations

import argparse
import socket
import time

from lab.servers._common import (
    add_endpoint,
    add_timeout,
    errno_tag,
    fmt_addr,
    is_local_timeout,
    out,
    positive_float,
    run,
    tcp_socket,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="connect_timer", description="Time a connect() and print its errno.")
    add_endpoint(p, server=False)
    p.add_argument("--syncnt", type=int, default=None, help="TCP_SYNCNT: SYN retransmissions for this socket")
    p.add_argument("--bind", default=None, help="local address to bind before connecting")
    p.add_argument("--hold", type=positive_float, default=0.0,
                   help="after connecting, stay open this long (0)")
    add_timeout(p, 150.0, "connect() (a safety net; the kernel's own timeout should fire first)")
    return p


def main(args: argparse.Namespace) -> int:
    with tcp_socket(args.ip) as sock:
        if args.syncnt is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, args.syncnt)
        if args.bind:
            sock.bind((args.bind, 0))
        sock.settimeout(args.timeout)
        started = time.monotonic()
        try:
            sock.connect((args.ip, args.port))
        except OSError as exc:
            elapsed = time.monotonic() - started
            if is_local_timeout(exc):
                out(f"elapsed={elapsed:.3f} timeout step=connect after={args.timeout:g}")
            else:
                out(f"elapsed={elapsed:.3f} errno={errno_tag(exc.errno)}")
            return 1
        out(f"connected elapsed={time.monotonic() - started:.3f} local={fmt_addr(sock.getsockname())}")
        time.sleep(args.hold)
    return 0


if __name__ == "__main__":
    run(main, parser())
