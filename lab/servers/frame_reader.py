"""Read length-prefixed messages (4-byte big-endian length, then the body) from one connection, however
the bytes arrive: each recv returns what has come, so the reader loops until a message is whole.

Usage::

    python3 -m lab.servers.frame_reader IP PORT [--count 3] [--chunk 64]

Output lines:

    listening on IP:PORT
    message N: SIZE bytes intact|damaged
"""

from __future__ import annotations

import argparse
import socket
import struct

from lab.servers._common import accept_within, add_endpoint, listen_tcp, out, run
from lab.servers.frame_sender import body


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="frame_reader", description="Read length-prefixed messages.")
    add_endpoint(p, server=True)
    p.add_argument("--count", type=int, default=3, help="messages to read (3)")
    p.add_argument("--chunk", type=int, default=64, help="bytes asked of each recv (64)")
    return p


def exactly(conn: socket.socket, size: int, chunk: int) -> bytes:
    got = b""
    while len(got) < size:
        part = conn.recv(min(chunk, size - len(got)))
        if not part:
            raise ConnectionError("EOF inside a message")
        got += part
    return got


def main(args: argparse.Namespace) -> int:
    with listen_tcp(args.ip, args.port) as listener:
        conn, _ = accept_within(listener, 30)
    conn.settimeout(10)
    for index in range(args.count):
        (size,) = struct.unpack("!I", exactly(conn, 4, args.chunk))
        data = exactly(conn, size, args.chunk)
        out(f"message {index}: {size} bytes {'intact' if data == body(index, size) else 'damaged'}")
    conn.close()
    return 0


if __name__ == "__main__":
    run(main, parser())
