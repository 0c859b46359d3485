"""Book 9-5 ``unblockconnect``: a non-blocking connect, then select() for writability, then SO_ERROR.

connect() on a non-blocking socket returns at once with EINPROGRESS; the handshake goes on in the
kernel. select() reports the socket writable when it ends, either way: SO_ERROR then says how
(0: connected; ECONNREFUSED: an RST came back). If no answer comes, select() times out.

Usage::

    python3 -m lab.servers.unblock_connect IP PORT [--timeout 10]

Output lines:

    connect errno=EINPROGRESS(115)
    select returned 1 (writable)      or: select returned 0 (timeout)
    so_error=0                         or: so_error=ECONNREFUSED(111)
"""

from __future__ import annotations

import argparse
import select
import socket

from lab.servers._common import add_endpoint, errno_tag, out, run, tcp_socket


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="unblock_connect", description="Book 9-5: non-blocking connect + select.")
    add_endpoint(p, server=False)
    p.add_argument("--timeout", type=float, default=10.0, help="select()'s timeout, seconds (10, as the book)")
    return p


def main(args: argparse.Namespace) -> int:
    sock = tcp_socket(args.ip)
    sock.setblocking(False)
    code = sock.connect_ex((args.ip, args.port))
    out(f"connect errno={errno_tag(code)}" if code else "connect returned 0 (connected at once)")
    _, writable, _ = select.select([], [sock], [], args.timeout)
    out(f"select returned {len(writable)} ({'writable' if writable else 'timeout'})")
    if writable:
        error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        out(f"so_error={errno_tag(error) if error else 0}")
    sock.close()
    return 0


if __name__ == "__main__":
    run(main, parser())
