"""Book 10-1 统一事件源: signals reach the epoll loop through a pipe, as one more event among the sockets.

Usage::

    python3 -m lab.servers.unified_source IP PORT [--duration 30]

The signal handler only writes the signal's number, one byte, into a socketpair (the book's
``pipefd``; Python's ``signal.set_wakeup_fd`` does exactly that), and the main loop reads it there
like any socket's data. SIGHUP, SIGCHLD and SIGINT are noted; SIGTERM stops the server: it closes
every client (a FIN each) and exits 0. Clients' data is read and dropped.

Output lines::

    listening on IP:PORT
    accepted IP:PORT         (each client)
    signal N                 (each byte read from the pipe)
    closed N clients         (then exit 0, on SIGTERM)
"""

from __future__ import annotations

import argparse
import select
import signal
import socket
import time

from lab.servers._common import SignalPipe, add_endpoint, fmt_addr, listen_tcp, out, positive_float, run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="unified_source", description="Signals as events in the epoll loop (10-1).")
    add_endpoint(p, server=True)
    p.add_argument("--duration", type=positive_float, default=30.0, help="exit 0 after this many seconds")
    return p


def main(args: argparse.Namespace) -> int:
    pipe = SignalPipe(signal.SIGHUP, signal.SIGCHLD, signal.SIGTERM, signal.SIGINT)  # before "listening on"
    listener = listen_tcp(args.ip, args.port)
    poller = select.epoll()
    poller.register(listener.fileno(), select.EPOLLIN)
    poller.register(pipe.fileno(), select.EPOLLIN)
    clients: dict[int, socket.socket] = {}
    end = time.monotonic() + args.duration
    while time.monotonic() < end:
        for fd, _ in poller.poll(max(0.0, end - time.monotonic())):
            if fd == listener.fileno():
                conn, peer = listener.accept()
                clients[conn.fileno()] = conn
                out(f"accepted {fmt_addr(peer)}")
                poller.register(conn.fileno(), select.EPOLLIN)
            elif fd == pipe.fileno():
                for number in pipe.received():
                    out(f"signal {number}")
                    if number == signal.SIGTERM:
                        for conn in clients.values():
                            conn.close()
                        out(f"closed {len(clients)} clients")
                        return 0
            elif fd in clients and not clients[fd].recv(4096):
                poller.unregister(fd)
                clients.pop(fd).close()
    return 0


if __name__ == "__main__":
    run(main, parser())
