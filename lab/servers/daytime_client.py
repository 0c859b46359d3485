"""The book's 5-12 daytime client: resolve a host name and the "daytime" service, connect, print the time.

Both lookups go through the C library, like the book's gethostbyname and
getservbyname: the host through nsswitch (/etc/hosts first, then DNS: the
hosts-file experiment watches udp/53 to see which), the port through
/etc/services (the ``netbase`` package). ``--port`` overrides only where
we connect, e.g. to reach an unprivileged test server; the printed service
port is still what /etc/services says.

Usage::

    python3 -m lab.servers.daytime_client HOST [--service daytime] [--port P] [--timeout S]

Output lines:

    daytime port is 13
    host HOST is IP
    the day time is: Thu Nov 19 10:00:00 2026
    errno=NAME(n)                    (connect/recv failed; exit 1)
    lookup failed: <message>          (name or service unknown; exit 1)
"""

from __future__ import annotations

import argparse
import socket

from lab.servers._common import add_timeout, connect_within, err, out, port_number, read_to_eof, run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="daytime_client", description="Book 5-12 daytime client.")
    p.add_argument("host", help="host name (or address) of the daytime server")
    p.add_argument("--service", default="daytime", help="service name to look up in /etc/services (daytime)")
    p.add_argument("--port", type=port_number, default=None,
                   help="connect to this port instead of the looked-up one (tests)")
    add_timeout(p)
    return p


def main(args: argparse.Namespace) -> int:
    try:
        service_port = socket.getservbyname(args.service, "tcp")
    except OSError as exc:
        out(f"lookup failed: service {args.service}/tcp: {exc}")
        err("daytime_client: is /etc/services installed (Debian package netbase)?")
        return 1
    out(f"{args.service} port is {service_port}")
    try:
        ip = socket.gethostbyname(args.host)
    except OSError as exc:
        out(f"lookup failed: host {args.host}: {exc}")
        return 1
    out(f"host {args.host} is {ip}")
    port = args.port if args.port is not None else service_port
    with connect_within(ip, port, args.timeout) as sock:
        _, data = read_to_eof(sock, args.timeout, keep=True)
    out(f"the day time is: {data.decode('latin-1').strip()}")
    return 0


if __name__ == "__main__":
    run(main, parser())
