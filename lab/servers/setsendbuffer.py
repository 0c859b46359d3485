"""Book 5-10 ``set_send_buffer``: set SO_SNDBUF before connect, print what the kernel kept, send data.

The kernel doubles the value asked for (room for its bookkeeping), never
goes below SOCK_MIN_SNDBUF (4608 on x86_64 with 6.x; 2048 in the book) and
caps it at 2 x net.core.wmem_max. Setting it turns send-buffer autotuning off.

Usage::

    python3 -m lab.servers.setsendbuffer IP PORT SIZE [--bytes 512] [--timeout 10]

Output lines:

    the tcp send buffer size after setting is N     (the book's line)
    connected local=IP:PORT
    sent N bytes
    closed
"""

from __future__ import annotations

import argparse
import socket

from lab.servers._common import add_endpoint, add_timeout, connect_within, fmt_addr, out, run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="setsendbuffer", description="Book 5-10: SO_SNDBUF before connect.")
    add_endpoint(p, server=False)
    p.add_argument("size", type=int, help="value passed to setsockopt(SO_SNDBUF)")
    p.add_argument("--bytes", type=int, default=512, help="bytes of 'a' to send after connecting (512)")
    add_timeout(p, 10.0, "connect and the whole send")
    return p


def main(args: argparse.Namespace) -> int:
    def set_sndbuf(sock: socket.socket) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, args.size)
        value = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        out(f"the tcp send buffer size after setting is {value}")

    with connect_within(args.ip, args.port, args.timeout, before_connect=set_sndbuf) as sock:
        out(f"connected local={fmt_addr(sock.getsockname())}")
        sock.settimeout(args.timeout)
        sock.sendall(b"a" * args.bytes)
        out(f"sent {args.bytes} bytes")
    out("closed")
    return 0


if __name__ == "__main__":
    run(main, parser())
