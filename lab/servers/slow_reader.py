"""A client that reads late (§3.5.2 RST experiment): small SO_RCVBUF, connect, sleep, then read to the end.

SO_RCVBUF is set before connect so the handshake already advertises a small
window (and window scale 0). While we sleep, the server's data fills our
buffer and the rest waits on the server's side; if the server then aborts
(SO_LINGER {1,0}), our reads return what had arrived and then ECONNRESET.

Usage::

    python3 -m lab.servers.slow_reader IP PORT [--rcvbuf 2048] [--sleep 1.0] [--timeout 10]

Output lines:

    rcvbuf=N                              (value read back; absent with --rcvbuf 0)
    connected local=IP:PORT
    received N bytes eof                  (exit 0)
    received N bytes errno=NAME(n)        (e.g. ECONNRESET(104); exit 1)
"""

from __future__ import annotations

import argparse
import socket
import time

from lab.servers._common import (
    add_endpoint,
    add_timeout,
    connect_within,
    errno_tag,
    fmt_addr,
    is_local_timeout,
    out,
    positive_float,
    recv_within,
    run,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="slow_reader", description="Small rcvbuf, sleep, then read to the end.")
    add_endpoint(p, server=False)
    p.add_argument("--rcvbuf", type=int, default=2048,
                   help="SO_RCVBUF set before connect; 0 = leave it (2048)")
    p.add_argument("--sleep", type=positive_float, default=1.0,
                   help="seconds to wait before the first read (1.0)")
    p.add_argument("--read-size", type=int, default=4096, help="bytes asked for per recv (4096)")
    add_timeout(p, 10.0, "connect and each wait for data")
    return p


def main(args: argparse.Namespace) -> int:
    def set_rcvbuf(sock: socket.socket) -> None:
        if args.rcvbuf > 0:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
            out(f"rcvbuf={sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)}")

    total = 0
    with connect_within(args.ip, args.port, args.timeout, before_connect=set_rcvbuf) as sock:
        out(f"connected local={fmt_addr(sock.getsockname())}")
        time.sleep(args.sleep)
        try:
            while data := recv_within(sock, args.read_size, args.timeout):
                total += len(data)
        except OSError as exc:
            if is_local_timeout(exc):
                raise
            out(f"received {total} bytes errno={errno_tag(exc.errno)}")
            return 1
    out(f"received {total} bytes eof")
    return 0


if __name__ == "__main__":
    run(main, parser())
