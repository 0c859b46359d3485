"""A client of the process-pool CGI server (15-1/15-2): connections one after another, a request line
on each (a program's path), the reply read to the server's EOF.

Usage::

    python3 -m lab.servers.cgi_client IP PORT [--path /usr/bin/uname] [--count 1] [--timeout 10]

Output lines::

    reply N bytes: TEXT        (one per connection, once the server closed it)
"""

from __future__ import annotations

import argparse

from lab.servers._common import add_endpoint, add_timeout, connect_within, out, run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cgi_client", description="Request lines to a CGI server, one per connection.")
    add_endpoint(p, server=False)
    p.add_argument("--path", default="/usr/bin/uname", help="the CGI program to ask for")
    p.add_argument("--count", type=int, default=1, help="connections, one after another (1)")
    add_timeout(p)
    return p


def main(args: argparse.Namespace) -> int:
    for _ in range(args.count):
        with connect_within(args.ip, args.port, args.timeout) as sock:
            sock.settimeout(args.timeout)
            sock.sendall(f"{args.path}\r\n".encode())
            reply = b""
            while data := sock.recv(4096):
                reply += data
        out(f"reply {len(reply)} bytes: {reply.decode(errors='replace').strip()}")
    return 0


if __name__ == "__main__":
    run(main, parser())
