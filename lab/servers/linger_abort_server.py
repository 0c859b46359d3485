"""Abortive close (§3.5.2, §5.11.4): accept, write N bytes, set SO_LINGER {1, T}, close().

With T = 0 (the default) close() does not send a FIN: it sends an RST and
throws away whatever the peer has not yet taken, so a slow reader gets
ECONNRESET and fewer bytes than were written. With T > 0 close() waits up
to T seconds for the data to be acknowledged (on Linux it returns 0 even
when the time runs out). ``--no-linger`` closes normally, as a control.

Writing stops when N bytes are in the socket or when ``--write-stall``
seconds pass without progress (the reader is not reading), whichever is
first; the count written is reported either way.

Usage::

    python3 -m lab.servers.linger_abort_server IP PORT [--bytes 100000] [--linger 0 | --no-linger]
        [--write-stall 1.0] [--delay 0.2] [--timeout 10]

Output lines:

    listening on IP:PORT
    accepted IP:PORT
    wrote W of N bytes
    so_linger on=1 linger=T            (absent with --no-linger)
    close returned 0 after=S           (seconds close() blocked)
"""

from __future__ import annotations

import argparse
import select
import socket
import time

from lab.servers._common import (
    accept_within,
    add_endpoint,
    add_timeout,
    fmt_addr,
    listen_tcp,
    out,
    positive_float,
    run,
    set_linger,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="linger_abort_server", description="Write, then close with SO_LINGER.")
    add_endpoint(p, server=True)
    p.add_argument("--bytes", type=int, default=100_000, help="bytes to write before closing (100000)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--linger", type=int, default=0,
                       help="SO_LINGER time in seconds; 0 = abort with RST (0)")
    group.add_argument("--no-linger", action="store_true",
                       help="leave SO_LINGER off: an ordinary close (FIN)")
    p.add_argument("--write-stall", type=positive_float, default=1.0,
                   help="stop writing after this many seconds without progress (1.0)")
    p.add_argument("--delay", type=positive_float, default=0.2,
                   help="seconds between the last write and close(), so the data is on its way (0.2)")
    add_timeout(p, 10.0, "accept()")
    return p


def write_until_stalled(sock: socket.socket, total: int, stall: float) -> int:
    """Write up to ``total`` bytes without blocking longer than ``stall`` seconds at a time."""
    sock.setblocking(False)
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    chunk = b"x" * 65536
    written = 0
    while written < total:
        try:
            written += sock.send(chunk[: total - written])
            continue
        except BlockingIOError:
            pass
        if not poller.poll(stall * 1000):
            break
    sock.setblocking(True)
    return written


def main(args: argparse.Namespace) -> int:
    with listen_tcp(args.ip, args.port) as listener:
        conn, peer = accept_within(listener, args.timeout)
    out(f"accepted {fmt_addr(peer)}")
    written = write_until_stalled(conn, args.bytes, args.write_stall)
    out(f"wrote {written} of {args.bytes} bytes")
    time.sleep(args.delay)
    if not args.no_linger:
        set_linger(conn, args.linger)
        out(f"so_linger on=1 linger={args.linger}")
    started = time.monotonic()
    conn.close()
    out(f"close returned 0 after={time.monotonic() - started:.3f}")
    return 0


if __name__ == "__main__":
    run(main, parser())
