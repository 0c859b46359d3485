"""Book 15-1/15-2: the process-pool CGI server: a parent that watches the listener, children that accept.

Usage::

    python3 -m lab.servers.processpool_cgi IP PORT [--processes 5] [--duration 30]

The parent forks ``--processes`` children before serving (the book's ``processpool``), each joined to
it by a socketpair. It watches the listening socket, edge-triggered as ``processpool.h`` registers it,
and for each event tells the next child, round-robin, that a connection is waiting (one byte over
the socketpair: the book's ``new_conn``); that child accepts one connection (one per notification,
as the listing does). The child reads a request line (a program's path and ``\\r\\n``); if the file
exists it forks, and the grandchild puts the connection on its standard output (``dup2(connfd,
1)``) and execs the program, whose output the client reads and whose exit closes the connection (a
FIN). An unknown path is closed with nothing sent. Each child reaps its CGI grandchildren on
SIGCHLD in a WNOHANG loop, the signal reaching its epoll loop as a byte (the unified event source).

Output lines: ``listening on IP:PORT``, ``send request to child I`` (the parent), ``child I accepted``.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import socket
import time

from lab.servers._common import SignalPipe, add_endpoint, err, listen_tcp, out, positive_float, run


def serve_cgi(conn: socket.socket) -> None:
    """``cgi_conn::process``: the request line names a program; run it with the connection as stdout."""
    request = b""
    while b"\r\n" not in request:
        data = conn.recv(1024)
        if not data:
            break
        request += data
    path = request.partition(b"\r\n")[0].decode(errors="replace").strip()
    if path and os.access(path, os.F_OK):
        if os.fork() == 0:
            os.dup2(conn.fileno(), 1)
            try:
                os.execv(path, [path])
            finally:
                os._exit(127)
    conn.close()


def child(index: int, listener: socket.socket, pipe: socket.socket, end: float) -> None:
    """``run_child``: accept one connection per notification, serve it, reap CGI children."""
    signals = SignalPipe(signal.SIGCHLD, signal.SIGTERM)
    poller = select.epoll()
    poller.register(pipe.fileno(), select.EPOLLIN | select.EPOLLET)
    poller.register(signals.fileno(), select.EPOLLIN)
    while time.monotonic() < end:
        for fd, _ in poller.poll(max(0.0, end - time.monotonic())):
            if fd == pipe.fileno():
                if not pipe.recv(64):
                    return  # the parent is gone
                try:
                    conn, _ = listener.accept()
                except BlockingIOError:
                    continue
                out(f"child {index} accepted")
                conn.setblocking(True)
                conn.settimeout(5)
                serve_cgi(conn)
            elif fd == signals.fileno():
                for number in signals.received():
                    if number == signal.SIGTERM:
                        return
                    reap()


def reap() -> None:
    """SIGCHLD: reap every child that has ended (a loop: the signals of several may have merged)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="processpool_cgi", description="The process-pool CGI server (15-1/15-2).")
    add_endpoint(p, server=True)
    p.add_argument("--processes", type=int, default=5, help="pool size (5)")
    p.add_argument("--duration", type=positive_float, default=30.0, help="exit 0 after this many seconds")
    return p


def main(args: argparse.Namespace) -> int:
    listener = listen_tcp(args.ip, args.port)
    listener.setblocking(False)
    end = time.monotonic() + args.duration
    pool: list[tuple[int, socket.socket]] = []
    for index in range(args.processes):
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            ours.close()
            try:
                child(index, listener, theirs, end)
            except BaseException as exc:  # a child must never return into the parent's loop
                err(f"processpool_cgi: child {index}: {exc!r}")
            finally:
                os._exit(0)
        theirs.close()
        pool.append((pid, ours))
    signals = SignalPipe(signal.SIGCHLD, signal.SIGTERM, signal.SIGINT)
    poller = select.epoll()
    poller.register(listener.fileno(), select.EPOLLIN | select.EPOLLET)
    poller.register(signals.fileno(), select.EPOLLIN)
    turn = 0
    try:
        while time.monotonic() < end:
            for fd, _ in poller.poll(max(0.0, end - time.monotonic())):
                if fd == listener.fileno():
                    pool[turn][1].send(b"\x01")  # new_conn
                    out(f"send request to child {turn}")
                    turn = (turn + 1) % len(pool)
                elif fd == signals.fileno() and set(signals.received()) & {signal.SIGTERM, signal.SIGINT}:
                    return 0
    finally:
        for pid, _ in pool:
            os.kill(pid, signal.SIGTERM)
        for pid, _ in pool:
            os.waitpid(pid, 0)
    return 0


if __name__ == "__main__":
    run(main, parser())
