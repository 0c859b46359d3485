"""A fork-per-connection echo server whose parent reaps its children on SIGCHLD (§13.3, §10.3).

The parent blocks SIGCHLD while it serves ``--children`` connections, one child each; every child
echoes until EOF and exits. Once the kernel shows all of them as zombies (state Z in
/proc/PID/stat), the parent unblocks SIGCHLD: the kernel delivers the one SIGCHLD it kept pending
(standard signals do not queue), and the handler reaps ``once`` (one ``waitpid``, as a naive handler
does) or in a ``loop`` (``while waitpid(-1, WNOHANG) > 0``). Then it stays up for ``--hold`` seconds,
so its children's states can be read from outside, and ends.

Usage::

    python3 -m lab.servers.reap_server IP PORT [--children 5] [--reap once|loop] [--hold 5] [--duration S]

Output lines:

    listening on IP:PORT
    forked pid=N                     (one per connection)
    zombies 5                        (what the parent saw before unblocking)
    handler reaped 1                 (each time the handler ran)
    stopped reason=hold
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path

from lab.servers._common import add_endpoint, add_service_times, listen_tcp, out, run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reap_server", description="Fork per connection; reap on SIGCHLD.")
    add_endpoint(p, server=True)
    p.add_argument("--children", type=int, default=5, help="connections to serve, one child each (5)")
    p.add_argument("--reap", choices=("once", "loop"), default="once", help="one waitpid per signal, or a loop")
    p.add_argument("--hold", type=float, default=5.0, help="seconds to stay up after reaping (5)")
    add_service_times(p, idle=False)
    return p


def state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "?"


def echo(conn: object) -> None:
    import socket

    assert isinstance(conn, socket.socket)
    while data := conn.recv(4096):
        conn.sendall(data)


def main(args: argparse.Namespace) -> int:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})

    def reap(_sig: int, _frame: object) -> None:
        reaped = 0
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            reaped += 1
            if args.reap == "once":
                break
        out(f"handler reaped {reaped}")

    signal.signal(signal.SIGCHLD, reap)
    listener = listen_tcp(args.ip, args.port)
    listener.settimeout(args.duration)
    children = []
    for _ in range(args.children):
        conn, _ = listener.accept()
        pid = os.fork()
        if pid == 0:
            listener.close()
            echo(conn)
            os._exit(0)
        conn.close()
        children.append(pid)
        out(f"forked pid={pid}")
    deadline = time.monotonic() + args.duration
    while any(state(pid) != "Z" for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    out(f"zombies {sum(state(pid) == 'Z' for pid in children)}")
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
    time.sleep(args.hold)
    out("stopped reason=hold")
    return 0


if __name__ == "__main__":
    run(main, parser())
