"""Open N TCP connections to one server, ``--interval`` apart, and report which ones completed.

The listen-backlog experiments (book 5-3, §16.2) need many clients at once,
some of which never complete: their SYNs are dropped while the server's accept
queue is full. Each connect is therefore non-blocking; after the last one and
``--settle`` seconds, every socket is classified by poll() and SO_ERROR:

- ``connected``: the handshake completed (the server's queue took it);
- ``pending``: still in SYN-SENT (retransmitting its SYN);
- ``errno=NAME(n)``: the connect failed (e.g. ECONNREFUSED).

The sockets then stay open for ``--hold`` seconds so ``ss`` can see both
sides, and are closed (or torn down by SIGTERM, which a "client exited" case
can use).

Usage::

    python3 -m lab.servers.connect_many IP PORT [--count 10] [--interval 0.3] [--settle 0.5] [--hold 10]

Output lines:

    connect n=1 local=IP:PORT             (one per connect() call, as it is made)
    conn n=1 local=IP:PORT state=connected|pending|errno=NAME(n)
    summary connected=C pending=P failed=F
    closed
"""

from __future__ import annotations

import argparse
import errno
import select
import socket
import time

from lab.servers._common import add_endpoint, errno_tag, fmt_addr, out, positive_float, run, tcp_socket


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="connect_many", description="Open N connections; report each.")
    add_endpoint(p, server=False)
    p.add_argument("--count", type=int, default=10, help="number of connections (10)")
    p.add_argument("--interval", type=positive_float, default=0.3, help="seconds between connects (0.3)")
    p.add_argument("--settle", type=positive_float, default=0.5,
                   help="seconds after the last connect before classifying (0.5)")
    p.add_argument("--hold", type=positive_float, default=10.0, help="keep the sockets open this long (10)")
    return p


def classify(sock: socket.socket) -> str:
    """connected / pending / errno=... for a non-blocking socket whose connect was started."""
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    ready = poller.poll(0)
    soerr = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if soerr:
        return f"errno={errno_tag(soerr)}"
    if not ready:
        return "pending"
    try:
        sock.getpeername()
    except OSError as exc:
        return f"errno={errno_tag(exc.errno)}"
    return "connected"


def main(args: argparse.Namespace) -> int:
    socks: list[socket.socket] = []
    try:
        for n in range(1, args.count + 1):
            if n > 1:
                time.sleep(args.interval)
            sock = tcp_socket(args.ip)
            sock.setblocking(False)
            code = sock.connect_ex((args.ip, args.port))
            socks.append(sock)
            if code not in (0, errno.EINPROGRESS):
                out(f"connect n={n} errno={errno_tag(code)}")
                continue
            out(f"connect n={n} local={fmt_addr(sock.getsockname())}")
        time.sleep(args.settle)
        counts = {"connected": 0, "pending": 0, "failed": 0}
        for n, sock in enumerate(socks, start=1):
            state = classify(sock)
            counts[state if state in counts else "failed"] += 1
            out(f"conn n={n} local={fmt_addr(sock.getsockname())} state={state}")
        out(f"summary connected={counts['connected']} pending={counts['pending']} failed={counts['failed']}")
        time.sleep(args.hold)
    finally:
        for sock in socks:
            sock.close()
    out("closed")
    return 0


if __name__ == "__main__":
    run(main, parser())
