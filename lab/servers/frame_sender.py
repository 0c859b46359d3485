"""Send messages framed by a 4-byte big-endian length (the study notes' cure for 粘包), one of them split
across two writes so it crosses a segment boundary.

Usage::

    python3 -m lab.servers.frame_sender IP PORT [--sizes 100,200,300] [--split 1] [--pause 0.05]

Output lines:

    sent message N: SIZE bytes          (one per message)
"""

from __future__ import annotations

import argparse
import socket
import struct
import time

from lab.servers._common import add_endpoint, connect_within, out, run


def body(index: int, size: int) -> bytes:
    """Message ``index``'s bytes: known to both ends, so a reader can tell it got them right."""
    return bytes((65 + (index + i) % 26) for i in range(size))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="frame_sender", description="Length-prefixed messages, one split.")
    add_endpoint(p, server=False)
    p.add_argument("--sizes", default="100,200,300", help="message sizes, comma-separated")
    p.add_argument("--split", type=int, default=1, help="which message (0-based) goes out in two writes (1)")
    p.add_argument("--pause", type=float, default=0.05, help="seconds between its two halves (0.05)")
    return p


def main(args: argparse.Namespace) -> int:
    sock = connect_within(args.ip, args.port, 10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for index, size in enumerate(int(s) for s in args.sizes.split(",")):
        message = struct.pack("!I", size) + body(index, size)
        if index == args.split:
            half = len(message) // 2
            sock.sendall(message[:half])
            time.sleep(args.pause)
            sock.sendall(message[half:])
        else:
            sock.sendall(message)
        out(f"sent message {index}: {size} bytes")
    time.sleep(0.3)
    sock.close()
    return 0


if __name__ == "__main__":
    run(main, parser())
