"""Wait for one datagram to a multicast group (the study notes' 多播): with ``--join`` the socket joins the
group (IP_ADD_MEMBERSHIP on the given interface address), which makes the kernel send an IGMP report;
without it the socket is only bound to the port, and the kernel keeps group traffic from it. It
leaves the group at the end (another IGMP report).

Usage::

    python3 -m lab.servers.mcast_recv IP GROUP PORT [--join] [--wait 3]

Output lines:

    listening on 0.0.0.0:PORT
    received N bytes from IP:PORT       or: nothing (timeout)
"""

from __future__ import annotations

import argparse
import socket

from lab.servers._common import fmt_addr, out, port_number, run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mcast_recv", description="Receive one datagram sent to a group.")
    p.add_argument("ip", help="the interface address to join on")
    p.add_argument("group", help="the multicast group, e.g. 224.1.2.3")
    p.add_argument("port", type=port_number)
    p.add_argument("--join", action="store_true", help="join the group (IP_ADD_MEMBERSHIP)")
    p.add_argument("--wait", type=float, default=3.0, help="seconds to wait for a datagram (3)")
    return p


def main(args: argparse.Namespace) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", args.port))
    membership = socket.inet_aton(args.group) + socket.inet_aton(args.ip)
    if args.join:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    out(f"listening on {fmt_addr(sock.getsockname())}")
    sock.settimeout(args.wait)
    try:
        data, peer = sock.recvfrom(2048)
        out(f"received {len(data)} bytes from {fmt_addr(peer)}")
    except TimeoutError:
        out("nothing (timeout)")
    if args.join:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, membership)
    return 0


if __name__ == "__main__":
    run(main, parser())
