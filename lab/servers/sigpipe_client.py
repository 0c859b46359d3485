"""Write to a connection the peer has closed (§10.5.2): the first write is answered by an RST, the
second raises SIGPIPE, which kills a process that keeps the default action.

The client reads until the server's EOF, then sends ``hello`` twice, ``--gap`` seconds apart.
``--mode default`` keeps SIGPIPE's default action (the house's programs ignore it: Python itself
does); ``nosignal`` sends with MSG_NOSIGNAL; ``ignore`` sets SIG_IGN. Without the signal the second
write fails EPIPE and the program goes on.

Usage::

    python3 -m lab.servers.sigpipe_client IP PORT [--mode default|nosignal|ignore] [--gap 0.2]

Output lines:

    eof
    send 1 returned 5
    send 2 errno=EPIPE(32)        (never printed in default mode: the process is gone)
"""

from __future__ import annotations

import argparse
import signal
import socket
import time

from lab.servers._common import add_endpoint, connect_within, errno_tag, out, run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sigpipe_client", description="Write twice to a closed peer.")
    add_endpoint(p, server=False)
    p.add_argument("--mode", choices=("default", "nosignal", "ignore"), default="default")
    p.add_argument("--gap", type=float, default=0.2, help="seconds between the two writes (0.2)")
    return p


def main(args: argparse.Namespace) -> int:
    if args.mode != "ignore":
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sock = connect_within(args.ip, args.port, 10)
    sock.settimeout(10)
    while sock.recv(4096):
        pass
    out("eof")
    flags = socket.MSG_NOSIGNAL if args.mode == "nosignal" else 0
    for n in (1, 2):
        if n == 2:
            time.sleep(args.gap)
        try:
            out(f"send {n} returned {sock.send(b'hello', flags)}")
        except OSError as exc:
            out(f"send {n} errno={errno_tag(exc.errno)}")
    return 0


if __name__ == "__main__":
    run(main, parser())
