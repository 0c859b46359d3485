"""Send datagrams on a *connected* UDP socket and report the reply or the error (ICMP experiments).

Only a connected UDP socket hears about ICMP errors: a port-unreachable from
the peer turns into ECONNREFUSED on the next recv (or send). Against
``echo --udp`` it shows the reply instead.

Usage::

    python3 -m lab.servers.udp_client IP PORT [--message ping] [--count 1] [--interval 0.2] [--timeout 2]

Output lines (per datagram n):

    sent n=1 bytes=4
    reply n=1 bytes=4 'ping'
    recv n=1 errno=ECONNREFUSED(111)       (or send n=...; exit 1 at the end)
    recv n=1 timeout after=2               (no answer; exit 1 at the end)
    done replies=R errors=E timeouts=T
"""

from __future__ import annotations

import argparse
import socket
import time

from lab.servers._common import (
    add_endpoint,
    add_timeout,
    errno_tag,
    family_of,
    is_local_timeout,
    out,
    positive_float,
    run,
    show_bytes,
    unescape,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="udp_client", description="Connected UDP: send, await reply or error.")
    add_endpoint(p, server=False)
    p.add_argument("--message", default="ping", help="datagram payload; escapes like \\n work (ping)")
    p.add_argument("--count", type=int, default=1, help="datagrams to send (1)")
    p.add_argument("--interval", type=positive_float, default=0.2, help="seconds between datagrams (0.2)")
    add_timeout(p, 2.0, "each wait for a reply")
    return p


def main(args: argparse.Namespace) -> int:
    payload = unescape(args.message)
    replies = errors = timeouts = 0
    with socket.socket(family_of(args.ip), socket.SOCK_DGRAM) as sock:
        sock.connect((args.ip, args.port))
        sock.settimeout(args.timeout)
        for n in range(1, args.count + 1):
            if n > 1:
                time.sleep(args.interval)
            call = "send"
            try:
                out(f"sent n={n} bytes={sock.send(payload)}")
                call = "recv"
                data = sock.recv(65536)
                replies += 1
                out(f"reply n={n} bytes={len(data)} '{show_bytes(data, 64)}'")
            except OSError as exc:
                if is_local_timeout(exc):
                    timeouts += 1
                    out(f"{call} n={n} timeout after={args.timeout:g}")
                else:
                    errors += 1
                    out(f"{call} n={n} errno={errno_tag(exc.errno)}")
    out(f"done replies={replies} errors={errors} timeouts={timeouts}")
    return 1 if errors or timeouts else 0


if __name__ == "__main__":
    run(main, parser())
