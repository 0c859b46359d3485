"""Book 9-7: the chat room server on poll(): what one user says goes to every other user.

Usage::

    python3 -m lab.servers.chat_poll IP PORT [--users 5] [--buffer 64] [--book-bug] [--duration 30]

At most ``--users`` clients (the book's USER_LIMIT 5); one more is told ``too many users\\n`` and
closed. A client's data (up to ``--buffer`` bytes, the book's BUFFER_SIZE 64) is stored and every
other client's poll events switch from POLLIN to POLLOUT; each is sent the data when writable, then
switches back. A client that closes shows as POLLRDHUP and is closed in turn.

``--book-bug`` keeps the listing's ``fds[j].events |= ~POLLIN`` (and ``|= ~POLLOUT``): it meant
``&=``, and sets every event bit instead, POLLOUT among them, so poll() returns at once, forever.

Output lines: ``listening on IP:PORT``, ``comes a new user, now have N users``, ``get N bytes of
client data MSG from FD``, ``a client left``, ``polls N`` at exit (poll() calls made).
"""

from __future__ import annotations

import argparse
import select
import socket
import time

from lab.servers._common import add_endpoint, listen_tcp, out, positive_float, run

WATCH = select.POLLIN | select.POLLRDHUP | select.POLLERR
ALL_BUT = 0xFFFF  # a C short: ~POLLIN is every bit but POLLIN


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="chat_poll", description="The book's poll() chat room server (9-7).")
    add_endpoint(p, server=True)
    p.add_argument("--users", type=int, default=5, help="USER_LIMIT (5)")
    p.add_argument("--buffer", type=int, default=64, help="BUFFER_SIZE (64)")
    p.add_argument("--book-bug", action="store_true", help="keep the listing's `events |= ~POLLIN`")
    p.add_argument("--duration", type=positive_float, default=30.0, help="exit 0 after this many seconds")
    return p


def main(args: argparse.Namespace) -> int:
    listener = listen_tcp(args.ip, args.port)
    poller = select.poll()
    poller.register(listener.fileno(), select.POLLIN | select.POLLERR)
    users: dict[int, socket.socket] = {}
    pending: dict[int, bytes] = {}  # the book's users[fd].write_buf: what this user is to be sent
    events: dict[int, int] = {}
    polls = 0

    def watch(fd: int, mask: int) -> None:
        events[fd] = mask
        poller.modify(fd, mask)

    end = time.monotonic() + args.duration
    while (left := end - time.monotonic()) > 0:
        ready = poller.poll(left * 1000)
        polls += 1
        for fd, revents in ready:
            if fd == listener.fileno():
                conn, _ = listener.accept()
                if len(users) >= args.users:
                    conn.send(b"too many users\n")
                    conn.close()
                    continue
                users[conn.fileno()] = conn
                events[conn.fileno()] = WATCH
                poller.register(conn.fileno(), WATCH)
                out(f"comes a new user, now have {len(users)} users")
            elif fd not in users:
                continue
            elif revents & select.POLLRDHUP:
                poller.unregister(fd)
                users.pop(fd).close()
                pending.pop(fd, None)
                out("a client left")
            elif revents & select.POLLIN:
                data = users[fd].recv(args.buffer - 1)
                out(f"get {len(data)} bytes of client data {data.decode(errors='replace').strip()!r} from {fd}")
                for other in users:
                    if other != fd:
                        pending[other] = data
                        watch(other, (events[other] | (ALL_BUT & ~select.POLLIN)) if args.book_bug
                              else (events[other] & ~select.POLLIN) | select.POLLOUT)
            elif revents & select.POLLOUT:
                if fd in pending:
                    users[fd].send(pending.pop(fd))
                watch(fd, (events[fd] | (ALL_BUT & ~select.POLLOUT)) if args.book_bug
                      else (events[fd] & ~select.POLLOUT) | select.POLLIN)
    out(f"polls {polls}")
    return 0


if __name__ == "__main__":
    run(main, parser())
