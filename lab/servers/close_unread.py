"""Accept one connection and close it the way an experiment asks (§3.5.2, §5.11.4, book 15-6).

``--linger`` sets SO_LINGER {1, 0} on the *listening* socket, as the book's 15-6 does: an accepted
socket inherits it, and its close() aborts with an RST. Without ``--read`` the server closes with the
client's data still unread in its receive queue, which the kernel also answers with an RST (RFC 2525,
"data loss"). ``--reply`` sends that text first.

Usage::

    python3 -m lab.servers.close_unread IP PORT [--read] [--linger] [--reply TEXT] [--after 0.5]

Output lines:

    listening on IP:PORT
    accepted linger=(ON, SECONDS)
    read N bytes                    (--read)
    closed
"""

from __future__ import annotations

import argparse
import socket
import struct
import time

from lab.servers._common import accept_within, add_endpoint, listen_tcp, out, run, unescape


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="close_unread", description="Accept, maybe read, close.")
    add_endpoint(p, server=True)
    p.add_argument("--read", action="store_true", help="read what the client sent before closing")
    p.add_argument("--linger", action="store_true", help="SO_LINGER {1, 0} on the listening socket (book 15-6)")
    p.add_argument("--reply", default="", help="text to send after accept (backslash escapes work)")
    p.add_argument("--after", type=float, default=0.5, help="seconds between accept and close (0.5)")
    return p


def main(args: argparse.Namespace) -> int:
    def linger(sock: socket.socket) -> None:
        if args.linger:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    with listen_tcp(args.ip, args.port, before_bind=linger) as listener:
        conn, _ = accept_within(listener, 30)
    onoff, seconds = struct.unpack("ii", conn.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8))
    out(f"accepted linger=({onoff}, {seconds})")
    if args.reply:
        conn.sendall(unescape(args.reply))
    time.sleep(args.after)
    if args.read:
        conn.setblocking(False)
        got = 0
        try:
            while chunk := conn.recv(65536):
                got += len(chunk)
        except BlockingIOError:
            pass
        out(f"read {got} bytes")
    conn.close()
    out("closed")
    time.sleep(1.0)
    return 0


if __name__ == "__main__":
    run(main, parser())
