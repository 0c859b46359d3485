"""Sealed, seen from outside: during the whole test session no packet from a lab address reached the uplink.

The session fixture ``uplink_watch`` (tests/conftest.py, tests/uplink_watch.py)
has had tcpdump listening on the default route's device since the first test;
the conftest puts this file last, so the check below covers every lab the
suite built. The first test shows the filter is not vacuous: it matches a lab
source and not the machine's own, on frames written to a file (nothing is sent).
"""

from __future__ import annotations

import ipaddress
import socket
import subprocess
from pathlib import Path

import dpkt
import pytest
from uplink_watch import bpf, lab_subnets

pytestmark = pytest.mark.root


def frame(src: str, dst: str) -> bytes:
    udp = dpkt.udp.UDP(sport=5353, dport=53, data=b"x")
    udp.ulen = len(bytes(udp))
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=dpkt.ip.IP_PROTO_UDP, data=udp)
    ip.len = len(bytes(ip))
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=dpkt.ethernet.ETH_TYPE_IP, data=ip))


def frame6(src: str, dst: str) -> bytes:
    udp = dpkt.udp.UDP(sport=5353, dport=53, data=b"x")
    udp.ulen = len(bytes(udp))
    ip = dpkt.ip6.IP6(src=socket.inet_pton(socket.AF_INET6, src), dst=socket.inet_pton(socket.AF_INET6, dst),
                      nxt=dpkt.ip.IP_PROTO_UDP, hlim=64, data=udp, plen=len(bytes(udp)))
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=dpkt.ethernet.ETH_TYPE_IP6, data=ip))


def arp_from(sender: str) -> bytes:
    arp = dpkt.arp.ARP(spa=socket.inet_aton(sender), tpa=socket.inet_aton("198.51.100.1"), sha=b"\x02" * 6)
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\xff" * 6, type=dpkt.ethernet.ETH_TYPE_ARP, data=arp))


def test_the_filter_matches_lab_sources_and_not_the_machine(tmp_path: Path):
    subnets = lab_subnets()
    assert ipaddress.IPv4Network("192.168.1.0/24") in subnets  # book-lan's LAN, from topologies/
    assert ipaddress.IPv4Network("10.0.77.0/24") in subnets  # trust-mix's far side
    assert ipaddress.IPv6Network("fd00:1::/64") in subnets  # book-lan6's LAN
    own = [ipaddress.IPv4Interface("192.168.1.50/24")]  # as if the machine itself sat in a lab range
    pcap = tmp_path / "probe.pcap"
    with pcap.open("wb") as f:
        writer = dpkt.pcap.Writer(f)
        for i, data in enumerate([frame("192.168.1.109", "198.51.100.1"),  # a lab host: caught
                                  frame("10.0.77.10", "198.51.100.1"),  # another lab range: caught
                                  arp_from("10.0.1.10"),  # an ARP from a lab address: caught
                                  frame("192.168.1.50", "198.51.100.1"),  # the machine itself: not
                                  frame("198.51.100.7", "192.168.1.109"),  # to a lab address, from outside: not
                                  frame6("fd00:1::109", "2001:db8::1")]):  # an IPv6 lab host: caught
            writer.writepkt(data, ts=1.0 + i)
    out = subprocess.run(["tcpdump", "-nn", "-r", str(pcap), bpf(subnets, own)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 4, lines
    assert "192.168.1.109" in lines[0] and "10.0.77.10" in lines[1] and "tell 10.0.1.10" in lines[2]
    assert "fd00:1::109" in lines[3]


def test_no_lab_packet_reached_the_uplink(uplink_watch):
    if uplink_watch is None:
        pytest.skip("this machine has no default route: there is no uplink to watch")
    verdict = uplink_watch.stop()
    assert verdict.subnets, "no lab address range to watch for"
    shown = "\n".join(verdict.packets[:20])
    assert verdict.packets == [], (
        f"{len(verdict.packets)} packets from lab addresses on the uplink {verdict.device} "
        f"in {verdict.seconds:.0f} s of tests:\n{shown}")
    print(f"uplink {verdict.device}: no packet from {len(verdict.subnets)} lab ranges in {verdict.seconds:.0f} s"
          + (f"; not watched (they overlap the uplink's own network): {verdict.skipped}" if verdict.skipped else ""))
