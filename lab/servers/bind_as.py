"""Bind a TCP port as another user (§7.2): ports below ip_unprivileged_port_start need privilege.

Started as root, it drops to ``--uid`` (and that gid, no supplementary groups) first, as a server
that switches user does (book 7-2), then binds and listens.

Usage::

    python3 -m lab.servers.bind_as IP PORT [--uid 65534]

Output lines:

    uid=65534 euid=65534
    bind errno=EACCES(13)           or: listening on IP:PORT
"""

from __future__ import annotations

import argparse
import os

from lab.servers._common import add_endpoint, errno_tag, fmt_addr, out, run, tcp_socket


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bind_as", description="Drop to a user, then bind a port.")
    add_endpoint(p, server=True)
    p.add_argument("--uid", type=int, default=65534, help="the user to become first (65534, nobody)")
    return p


def main(args: argparse.Namespace) -> int:
    os.setgroups([])
    os.setresgid(args.uid, args.uid, args.uid)
    os.setresuid(args.uid, args.uid, args.uid)
    out(f"uid={os.getuid()} euid={os.geteuid()}")
    sock = tcp_socket(args.ip)
    try:
        sock.bind((args.ip, args.port))
    except OSError as exc:
        out(f"bind errno={errno_tag(exc.errno)}")
        return 0
    sock.listen(1)
    out(f"listening on {fmt_addr(sock.getsockname())}")
    return 0


if __name__ == "__main__":
    run(main, parser())
