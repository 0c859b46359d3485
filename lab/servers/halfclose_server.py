"""Half-close server (§3.3.2): read until EOF, reply ``bye:`` + what was read, then close.

It accepts one connection and exits. Its reply travels on a connection the
client has already half-closed, which is the point of the experiment.

Usage::

    python3 -m lab.servers.halfclose_server IP PORT [--prefix bye:] [--timeout 10]

Output lines:

    listening on IP:PORT
    accepted IP:PORT
    eof after 5 bytes 'hello'
    sent 9 bytes 'bye:hello'
    closed
"""

from __future__ import annotations

import argparse

from lab.servers._common import (
    accept_within,
    add_endpoint,
    add_timeout,
    fmt_addr,
    listen_tcp,
    out,
    read_to_eof,
    run,
    show_bytes,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="halfclose_server", description="Read to EOF, reply bye:+data, close.")
    add_endpoint(p, server=True)
    p.add_argument("--prefix", default="bye:", help="text put before the echoed data (bye:)")
    add_timeout(p, 10.0, "accept, each wait for data and the reply")
    return p


def main(args: argparse.Namespace) -> int:
    with listen_tcp(args.ip, args.port) as listener:
        conn, peer = accept_within(listener, args.timeout)
    with conn:
        out(f"accepted {fmt_addr(peer)}")
        total, data = read_to_eof(conn, args.timeout, keep=True)
        out(f"eof after {total} bytes '{show_bytes(data)}'")
        reply = args.prefix.encode() + data
        conn.settimeout(args.timeout)
        conn.sendall(reply)
        out(f"sent {len(reply)} bytes '{show_bytes(reply)}'")
    out("closed")
    return 0


if __name__ == "__main__":
    run(main, parser())
