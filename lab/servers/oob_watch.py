"""Book 9-1 and 10-3: urgent data noticed by select()'s exceptfds, or by SIGURG.

Usage::

    python3 -m lab.servers.oob_watch IP PORT --via select|sigurg [--oobinline] [--timeout 10]

Accepts one connection and reads it to EOF:

- ``select`` (9-1): ``select(readfds, exceptfds)``; readable: ``recv`` normal data; else, in
  exceptfds: ``recv(MSG_OOB)`` (the listing's ``if … else if``);
- ``sigurg`` (10-3): ``fcntl(F_SETOWN, getpid())`` makes this process the socket's owner, so the
  kernel sends it SIGURG when urgent data arrives; the handler does the ``recv(MSG_OOB)``, the main
  loop only normal reads.

``--oobinline`` sets SO_OOBINLINE (one published copy of 9-1 does, by mistake): the urgent byte
stays in the stream and ``recv(MSG_OOB)`` fails EINVAL (use it with ``--via sigurg``: SIGURG still
comes, and the handler's recv shows the EINVAL).

Output lines (the listings')::

    listening on IP:PORT
    get N bytes of normal data: TEXT
    get N bytes of oob data: TEXT          (or: oob errno=EINVAL(22))
"""

from __future__ import annotations

import argparse
import fcntl
import os
import select
import signal
import socket

from lab.servers._common import accept_within, add_endpoint, add_timeout, errno_tag, listen_tcp, out, run


def read_oob(conn: socket.socket) -> None:
    try:
        data = conn.recv(1024, socket.MSG_OOB)
        out(f"get {len(data)} bytes of oob data: {data.decode(errors='replace')}")
    except OSError as exc:
        out(f"oob errno={errno_tag(exc.errno)}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oob_watch", description="Urgent data by select() exceptfds or SIGURG.")
    add_endpoint(p, server=True)
    p.add_argument("--via", choices=("select", "sigurg"), required=True)
    p.add_argument("--oobinline", action="store_true", help="set SO_OOBINLINE")
    add_timeout(p)
    return p


def main(args: argparse.Namespace) -> int:
    with listen_tcp(args.ip, args.port) as listener:
        conn, _ = accept_within(listener, args.timeout)
    conn.settimeout(None)
    if args.oobinline:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
    if args.via == "sigurg":
        signal.signal(signal.SIGURG, lambda number, frame: read_oob(conn))
        fcntl.fcntl(conn.fileno(), fcntl.F_SETOWN, os.getpid())
    while True:
        if args.via == "select":
            readable, _, urgent = select.select([conn], [], [conn], args.timeout)
            if not readable and urgent:
                read_oob(conn)
                continue
            if not readable:
                return 0
        data = conn.recv(1024)
        if not data:
            return 0
        out(f"get {len(data)} bytes of normal data: {data.decode(errors='replace')}")


if __name__ == "__main__":
    run(main, parser())
