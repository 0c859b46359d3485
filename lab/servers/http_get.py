"""An HTTP/1.x client for the thread-pool server: requests on one connection, each response read whole.

Usage::

    python3 -m lab.servers.http_get IP PORT [--path /index.html] [--version HTTP/1.1] [--keep-alive]
                                    [--repeat 1] [--rcvbuf BYTES] [--read-after SECONDS] [--timeout 10]

Each request waits for its response (read by its ``Content-Length``); without ``--keep-alive`` the
client then reads to the server's EOF. ``--rcvbuf`` and ``--read-after`` make a slow reader: a small
receive buffer, and a wait before the first read, so the server's writes fill its socket buffer.

Output lines::

    connected local=IP:PORT
    response status=CODE length=BYTES keep=keep-alive|close
    eof                                  (the server closed the connection)
"""

from __future__ import annotations

import argparse
import socket
import time

from lab.servers._common import add_endpoint, add_timeout, fmt_addr, out, positive_float, run


def read_response(sock: socket.socket, pending: bytearray) -> tuple[int, int, str] | None:
    """One response from the stream (headers, then Content-Length bytes); None at EOF before one."""
    while b"\r\n\r\n" not in pending:
        data = sock.recv(65536)
        if not data:
            return None
        pending += data
    end = pending.find(b"\r\n\r\n") + 4
    head = pending[:end].decode("latin-1").split("\r\n")
    fields = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
    length = int(fields.get("content-length", "0"))
    while len(pending) < end + length:
        data = sock.recv(65536)
        if not data:
            break
        pending += data
    del pending[:end + length]
    return int(head[0].split()[1]), length, fields.get("connection", "")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="http_get", description="HTTP requests on one connection.")
    add_endpoint(p, server=False)
    p.add_argument("--path", default="/index.html")
    p.add_argument("--version", default="HTTP/1.1")
    p.add_argument("--keep-alive", action="store_true", help="send Connection: keep-alive")
    p.add_argument("--repeat", type=int, default=1, help="requests, one after another (1)")
    p.add_argument("--rcvbuf", type=int, help="SO_RCVBUF before connect: a slow reader's small buffer")
    p.add_argument("--read-after", type=positive_float, default=0.0, help="wait before reading the first response")
    add_timeout(p)
    return p


def main(args: argparse.Namespace) -> int:
    sock = socket.socket(socket.AF_INET6 if ":" in args.ip else socket.AF_INET, socket.SOCK_STREAM)
    if args.rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
    sock.settimeout(args.timeout)
    sock.connect((args.ip, args.port))
    out(f"connected local={fmt_addr(sock.getsockname())}")
    headers = "Connection: keep-alive\r\n" if args.keep_alive else ""
    pending = bytearray()
    for number in range(args.repeat):
        sock.sendall(f"GET {args.path} {args.version}\r\nHost: lab\r\n{headers}\r\n".encode())
        if number == 0 and args.read_after:
            time.sleep(args.read_after)
        got = read_response(sock, pending)
        if got is None:
            out("eof")
            return 0
        status, length, keep = got
        out(f"response status={status} length={length} keep={keep}")
        if keep != "keep-alive":
            break
    if not args.keep_alive:
        while sock.recv(65536):
            pass
        out("eof")
    sock.close()
    return 0


if __name__ == "__main__":
    run(main, parser())
