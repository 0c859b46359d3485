"""Book 5-7 ``testoobrecv``: accept, then recv normal data, urgent (MSG_OOB) data, normal data.

With the book's sender the three reads print exactly::

    got 5 bytes of normal data '123ab'
    got 1 bytes of oob data 'c'
    got 3 bytes of normal data '123'

The first read stops at the urgent mark, so '123ab' and the later '123' never
come back in one read; only 'c' is out-of-band (SO_OOBINLINE is off and
tcp_stdurg=0). The book reads straight after accept(), which races the
sender: if only "123" has arrived, the lines become '123' / 'c' / 'ab'. We wait
``--wait`` seconds (default 0.5) before the first read so all three sends are in.

The MSG_OOB read never blocks in Linux (it returns EAGAIN if the urgent byte
has not arrived, EINVAL if there is none), so a failure there is reported
as ``errno=...`` and exit 1.

Usage::

    python3 -m lab.servers.oob_recv IP PORT [--wait 0.5] [--timeout 10]

Output lines:

    listening on IP:PORT
    got N bytes of normal data '...'
    got N bytes of oob data '...'
    got N bytes of normal data '...'
"""

from __future__ import annotations

import argparse
import socket
import time

from lab.servers._common import (
    accept_within,
    add_endpoint,
    add_timeout,
    listen_tcp,
    out,
    positive_float,
    recv_within,
    run,
    show_bytes,
)

BUF_SIZE = 1023  # the book's BUF_SIZE - 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oob_recv", description="Book 5-7: receive normal and urgent data.")
    add_endpoint(p, server=True)
    p.add_argument("--wait", type=positive_float, default=0.5,
                   help="seconds between accept and the first recv, so the sender is done (0.5)")
    add_timeout(p, 10.0, "accept and each recv")
    return p


def main(args: argparse.Namespace) -> int:
    with listen_tcp(args.ip, args.port) as listener:
        conn, _ = accept_within(listener, args.timeout)
    with conn:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 0)
        time.sleep(args.wait)
        data = recv_within(conn, BUF_SIZE, args.timeout)
        out(f"got {len(data)} bytes of normal data '{show_bytes(data)}'")
        conn.settimeout(None)  # MSG_OOB never blocks; a poll() for POLLIN would wrongly wait for normal data
        data = conn.recv(BUF_SIZE, socket.MSG_OOB)
        out(f"got {len(data)} bytes of oob data '{show_bytes(data)}'")
        data = recv_within(conn, BUF_SIZE, args.timeout)
        out(f"got {len(data)} bytes of normal data '{show_bytes(data)}'")
    return 0


if __name__ == "__main__":
    run(main, parser())
