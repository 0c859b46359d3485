"""An epoll (level-triggered) accept loop that runs out of file descriptors (§16.1, §7.4).

With RLIMIT_NOFILE reached, accept() fails EMFILE (24) and leaves the connection in the listener's
queue; the listener stays readable, so a level-triggered loop spins, calling accept() as fast as it
can. ``--spare`` is the usual remedy: keep a spare descriptor open; on EMFILE close it, accept the
connection, close that at once (the client gets a FIN instead of waiting forever), and take the
spare again. The limit comes from outside (``prlimit --nofile=N``, as ``ulimit -n`` in the book), or
``--nofile``. It ends by itself after ``--duration`` seconds.

Usage::

    python3 -m lab.servers.accept_storm IP PORT [--nofile N] [--spare] [--duration 5]

Output lines:

    listening on IP:PORT
    summary accepted=N emfile=M shed=K
"""

from __future__ import annotations

import argparse
import errno
import os
import resource
import select
import time

from lab.servers._common import add_endpoint, listen_tcp, out, run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="accept_storm", description="LT accept loop out of file descriptors.")
    add_endpoint(p, server=True)
    p.add_argument("--nofile", type=int, default=0, help="set RLIMIT_NOFILE first (0: as inherited)")
    p.add_argument("--spare", action="store_true", help="keep a spare fd to shed connections on EMFILE")
    p.add_argument("--duration", type=float, default=5.0, help="seconds to run (5)")
    return p


def main(args: argparse.Namespace) -> int:
    if args.nofile:
        resource.setrlimit(resource.RLIMIT_NOFILE, (args.nofile, args.nofile))
    epoll = select.epoll()  # every descriptor of its own first: "listening on" means the count is final
    spare = os.open("/dev/null", os.O_RDONLY) if args.spare else None
    listener = listen_tcp(args.ip, args.port, backlog=128)
    listener.setblocking(False)
    epoll.register(listener.fileno(), select.EPOLLIN)
    held, emfile, shed = [], 0, 0
    deadline = time.monotonic() + args.duration
    while time.monotonic() < deadline:
        for _fd, _events in epoll.poll(0.5):
            try:
                conn, _ = listener.accept()
                held.append(conn)
            except OSError as exc:
                if exc.errno not in (errno.EMFILE, errno.ENFILE):
                    raise
                emfile += 1
                if spare is not None:
                    os.close(spare)
                    try:
                        listener.accept()[0].close()
                        shed += 1
                    except BlockingIOError:
                        pass
                    spare = os.open("/dev/null", os.O_RDONLY)
            except BlockingIOError:
                pass
    out(f"summary accepted={len(held)} emfile={emfile} shed={shed}")
    return 0


if __name__ == "__main__":
    run(main, parser())
