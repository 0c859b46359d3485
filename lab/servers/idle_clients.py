"""Three clients of an idle-kicking server (book 11-3): one silent, one steady, one that speaks once.

Usage::

    python3 -m lab.servers.idle_clients IP PORT [--every 1.5] [--once-at 1.5] [--for 8]

The connections open one after another, in the order silent, steady, once. ``steady`` sends a line
every ``--every`` seconds; ``once`` sends one line ``--once-at`` seconds after connecting; ``silent``
sends nothing. A connection the server closes is read to EOF and closed; after ``--for`` seconds the
rest are closed and the program exits 0.

Output lines::

    connected role=ROLE local=IP:PORT
    sent role=ROLE at=EPOCH
    eof role=ROLE after=SECONDS        (the server closed it, SECONDS after connecting)
"""

from __future__ import annotations

import argparse
import selectors
import time

from lab.servers._common import add_endpoint, connect_within, fmt_addr, out, positive_float, run

ROLES = ("silent", "steady", "once")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="idle_clients", description="A silent, a steady and a once-speaking client.")
    add_endpoint(p, server=False)
    p.add_argument("--every", type=positive_float, default=1.5, help="steady: seconds between lines (1.5)")
    p.add_argument("--once-at", type=positive_float, default=1.5, help="once: when its one line goes (1.5)")
    p.add_argument("--for", dest="lasting", type=positive_float, default=8.0, help="then close all and exit (8)")
    return p


def main(args: argparse.Namespace) -> int:
    conns = {role: connect_within(args.ip, args.port, 5.0) for role in ROLES}
    started = time.monotonic()
    for role, conn in conns.items():
        out(f"connected role={role} local={fmt_addr(conn.getsockname())}")
    plan = {"steady": started + args.every, "once": started + args.once_at}
    watch = selectors.DefaultSelector()
    for role, conn in conns.items():
        watch.register(conn, selectors.EVENT_READ, role)
    end = started + args.lasting
    while conns and time.monotonic() < end:
        due = min([end, *plan.values()])
        for key, _ in watch.select(max(0.0, due - time.monotonic())):
            role = key.data
            if not conns[role].recv(1024):
                out(f"eof role={role} after={time.monotonic() - started:.3f}")
                watch.unregister(conns[role])
                conns.pop(role).close()
                plan.pop(role, None)
        for role, at in list(plan.items()):
            if time.monotonic() >= at and role in conns:
                conns[role].sendall(f"{role}\n".encode())
                out(f"sent role={role} at={time.time():.3f}")
                if role == "steady":
                    plan[role] = at + args.every
                else:
                    del plan[role]
    for conn in conns.values():
        conn.close()
    return 0


if __name__ == "__main__":
    run(main, parser())
