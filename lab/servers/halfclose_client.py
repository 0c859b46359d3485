"""Half-close client (§3.3.2): send a message, shutdown(SHUT_WR), keep reading until the server's EOF.

After shutdown(SHUT_WR) our FIN goes out but the connection can still carry
data the other way: the server sees EOF, answers, and only then closes. The
capture shows our ``[F.]`` before the server's data, the data ACKed, then the
server's FIN.

Usage::

    python3 -m lab.servers.halfclose_client IP PORT [--message hello] [--timeout 10]

Output lines:

    connected local=IP:PORT
    sent 5 bytes 'hello'
    shutdown SHUT_WR
    received 9 bytes 'bye:hello'        (everything read before EOF)
    closed
"""

from __future__ import annotations

import argparse
import socket

from lab.servers._common import (
    add_endpoint,
    add_timeout,
    connect_within,
    fmt_addr,
    out,
    read_to_eof,
    run,
    show_bytes,
    unescape,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="halfclose_client", description="Send, shutdown(SHUT_WR), read to EOF.")
    add_endpoint(p, server=False)
    p.add_argument("--message", default="hello", help=r"data to send; escapes like \r\n work (hello)")
    add_timeout(p, 10.0, "connect, send and each wait for data")
    return p


def main(args: argparse.Namespace) -> int:
    message = unescape(args.message)
    with connect_within(args.ip, args.port, args.timeout) as sock:
        out(f"connected local={fmt_addr(sock.getsockname())}")
        sock.settimeout(args.timeout)
        sock.sendall(message)
        out(f"sent {len(message)} bytes '{show_bytes(message)}'")
        sock.shutdown(socket.SHUT_WR)
        out("shutdown SHUT_WR")
        total, reply = read_to_eof(sock, args.timeout, keep=True)
        out(f"received {total} bytes '{show_bytes(reply)}'")
    out("closed")
    return 0


if __name__ == "__main__":
    run(main, parser())
