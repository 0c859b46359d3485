"""Accept one connection, fork, and let the parent close() or shutdown() it while the child still holds it
(§5.7, §13.1, book 6-1's dup flavour).

close() only drops the process's reference: the connection ends when the last descriptor goes, so
the child can still send and the FIN waits for the child's close. shutdown(SHUT_WR) acts on the
connection itself: the FIN leaves at once, and the child's later send fails EPIPE.

Usage::

    python3 -m lab.servers.fork_close_server IP PORT [--how close|shutdown] [--at 0.3] [--child-send 1.0]
                                                     [--child-close 1.5]

Output lines:

    listening on IP:PORT
    parent close|shutdown at 0.3
    child send returned 10          or: child send errno=EPIPE(32)
    child closed
"""

from __future__ import annotations

import argparse
import os
import socket
import time

from lab.servers._common import accept_within, add_endpoint, errno_tag, listen_tcp, out, run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fork_close_server", description="fork; the parent closes or shuts down.")
    add_endpoint(p, server=True)
    p.add_argument("--how", choices=("close", "shutdown"), default="close")
    p.add_argument("--at", type=float, default=0.3, help="when the parent acts, seconds after accept (0.3)")
    p.add_argument("--child-send", type=float, default=1.0, help="when the child sends (1.0)")
    p.add_argument("--child-close", type=float, default=1.5, help="when the child closes (1.5)")
    return p


def main(args: argparse.Namespace) -> int:
    with listen_tcp(args.ip, args.port) as listener:
        conn, _ = accept_within(listener, 30)
    start = time.monotonic()
    child = os.fork()
    if child == 0:
        time.sleep(max(0.0, start + args.child_send - time.monotonic()))
        try:
            out(f"child send returned {conn.send(b'from-child')}")
        except OSError as exc:
            out(f"child send errno={errno_tag(exc.errno)}")
        time.sleep(max(0.0, start + args.child_close - time.monotonic()))
        conn.close()
        out("child closed")
        os._exit(0)
    time.sleep(args.at)
    if args.how == "close":
        conn.close()
    else:
        conn.shutdown(socket.SHUT_WR)
    out(f"parent {args.how} at {args.at:g}")
    os.waitpid(child, 0)
    if args.how == "shutdown":
        conn.close()
    return 0


if __name__ == "__main__":
    run(main, parser())
