"""A chat room user (book 9-6, without the terminal): connect, maybe say one line, maybe leave early.

Usage::

    python3 -m lab.servers.chat_client IP PORT [--say TEXT --say-at EPOCH] [--close-at EPOCH] --until EPOCH

Everything the server sends is printed as it comes; the server's EOF ends the program. The times
are seconds since the epoch, so users in several nodes act at agreed moments (nodes share a clock).

Output lines::

    connected local=IP:PORT
    got N bytes: TEXT
    said TEXT
    eof                       (the server closed the connection)
    left                      (we closed it, at --close-at or --until)
"""

from __future__ import annotations

import argparse
import select
import time

from lab.servers._common import add_endpoint, add_timeout, connect_within, fmt_addr, out, run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="chat_client", description="A chat room user.")
    add_endpoint(p, server=False)
    p.add_argument("--say", help="one line to send")
    p.add_argument("--say-at", type=float, default=0.0, help="when to send it (epoch seconds)")
    p.add_argument("--close-at", type=float, help="when to leave (epoch seconds)")
    p.add_argument("--until", type=float, required=True, help="leave by then at the latest (epoch seconds)")
    add_timeout(p)
    return p


def main(args: argparse.Namespace) -> int:
    sock = connect_within(args.ip, args.port, args.timeout)
    out(f"connected local={fmt_addr(sock.getsockname())}")
    leave = min(args.until, args.close_at or args.until)
    say = args.say
    while (now := time.time()) < leave:
        due = min(leave, args.say_at if say else leave)
        readable, _, _ = select.select([sock], [], [], max(0.0, due - now))
        if readable:
            data = sock.recv(4096)
            if not data:
                out("eof")
                sock.close()
                return 0
            out(f"got {len(data)} bytes: {data.decode(errors='replace').strip()}")
        if say and time.time() >= args.say_at:
            sock.sendall(say.encode())
            out(f"said {say.strip()}")
            say = None
    sock.close()
    out("left")
    return 0


if __name__ == "__main__":
    run(main, parser())
