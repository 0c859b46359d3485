"""Decoding and printing IPv6: the fixed header, extension headers, fragments, TCP/UDP over IPv6,
ICMPv6 errors and neighbour discovery; generated frames (tests/unit/pcapgen.py), no root."""

from __future__ import annotations

import dpkt
import pcapgen as g

from lab.capture.decode import decode_frame

A, B = "fd00:1::2", "fd00:ff::2"


def decoded(frame: bytes):  # type: ignore[no-untyped-def]
    return decode_frame(frame, 1.0, "client:eth0", 1)


def test_the_fixed_header_fields() -> None:
    seg = g.tcp_segment(40000, 80, 1000, flags=dpkt.tcp.TH_SYN, options=g.syn_options(mss=1440))
    p = decoded(g.tcp6_frame(A, B, seg, hop_limit=63, flow_label=0xABCDE))
    assert p.ip is not None and p.ip.version == 6
    assert (p.ip.src, p.ip.dst, p.ip.hop_limit, p.ip.flow_label, p.ip.proto) == (A, B, 63, 0xABCDE, 6)
    assert p.ip.payload_length == len(bytes(seg)) and p.ip.extensions == []
    assert p.tcp is not None and p.tcp.is_syn and p.tcp.mss == 1440 and p.tcp.length == 0
    assert p.src == A and p.sport == 40000
    assert p.summary().startswith(f"IP6 {A}.40000 > {B}.80: Flags [S], seq 1000, win 502, options [mss 1440")
    assert p.summary(ip_header=True).startswith(
        "IP6 (flowlabel 0xabcde, hlim 63, next-header TCP (6) payload length: 40) ")


def test_tcp_payload_length_counts_past_the_header() -> None:
    seg = g.tcp_segment(40000, 80, 1, 1, payload=b"x" * 100)
    p = decoded(g.tcp6_frame(A, B, seg))
    assert p.tcp is not None and p.tcp.length == 100 and p.tcp.payload == b"x" * 100


def test_extension_headers_are_walked_to_the_upper_layer() -> None:
    udp = bytes(dpkt.udp.UDP(sport=5000, dport=53, ulen=8 + 4, data=b"abcd"))
    packet = g.ipv6(A, B, 0, udp, extensions=g.hop_by_hop(17))
    p = decoded(g.eth6(g.MAC_A, g.MAC_B, packet))
    assert p.ip is not None and p.ip.extensions == [0] and p.ip.proto == 17 and p.ip.ihl == 12
    assert p.udp is not None and p.udp.dport == 53 and p.udp.payload == b"abcd"


def test_fragments_carry_the_fragment_header_and_only_the_first_the_transport_header() -> None:
    seg = bytes(g.tcp_segment(40000, 80, 1, 1, payload=b"y" * 64))
    first = decoded(g.eth6(g.MAC_A, g.MAC_B, g.ipv6(A, B, 44, seg[:48], extensions=g.fragment_header(6, 0, True, 77))))
    later = decoded(g.eth6(g.MAC_A, g.MAC_B, g.ipv6(A, B, 44, seg[48:], extensions=g.fragment_header(6, 6, False, 77))))
    assert first.ip is not None and first.ip.has_fragment_header and first.ip.mf and first.ip.id == 77
    assert first.tcp is not None and first.tcp.dport == 80
    assert later.ip is not None and later.ip.frag_offset == 6 and later.ip.frag_offset_bytes == 48 and later.tcp is None
    assert first.ip.df is False  # no such bit in IPv6: routers never fragment
    assert "(frag 77:48@0+)" in first.summary() and "(frag 77:" in later.summary()


def test_neighbour_solicitation_and_advertisement() -> None:
    group = g.solicited_node(B)
    assert group == "ff02::1:ff00:2"
    ns = decoded(g.eth6(g.MAC_A, "33:33:ff:00:00:02",
                        g.ipv6("fe80::a", group, 58, g.neighbor_solicitation(B, g.MAC_A), hop_limit=255)))
    assert ns.icmp is not None and ns.icmp.version == 6 and ns.icmp.type == 135
    assert (ns.icmp.target, ns.icmp.lladdr, ns.ip.hop_limit) == (B, g.MAC_A, 255)  # type: ignore[union-attr]
    assert ns.summary() == f"IP6 fe80::a > {group}: ICMP6, neighbor solicitation, who has {B}, length 32"
    na = decoded(g.eth6(g.MAC_B, g.MAC_A, g.ipv6("fe80::b", "fe80::a", 58, g.neighbor_advertisement(B, g.MAC_B))))
    assert na.icmp is not None and na.icmp.type == 136 and na.icmp.nd_flags == "solicited, override"
    assert na.icmp.lladdr == g.MAC_B and not na.icmp.is_error
    assert na.summary().endswith(f"ICMP6, neighbor advertisement, tgt is {B} (solicited, override), length 32")


def test_packet_too_big_quotes_the_packet_and_names_the_mtu() -> None:
    seg = bytes(g.tcp_segment(40000, 80, 1, 1, payload=b"z" * 32))
    quoted = g.ipv6(A, B, 6, seg)
    p = decoded(g.eth6(g.MAC_R, g.MAC_A, g.ipv6("fd00:1::1", A, 58, g.packet_too_big(1400, quoted))))
    assert p.icmp is not None and p.icmp.type == 2 and p.icmp.mtu == 1400 and p.icmp.is_error
    assert p.icmp.inner is not None and (p.icmp.inner.src, p.icmp.inner.dst, p.icmp.inner.dport) == (A, B, 80)
    assert "ICMP6, packet too big, mtu 1400" in p.summary()


def test_echo_and_port_unreachable() -> None:
    echo = decoded(g.eth6(g.MAC_A, g.MAC_B, g.ipv6(A, B, 58, g.icmp6(128, 0, b"\x00\x07\x00\x01" + b"p" * 8))))
    assert echo.icmp is not None and (echo.icmp.id, echo.icmp.seq) == (7, 1)
    assert echo.summary() == f"IP6 {A} > {B}: ICMP6, echo request, id 7, seq 1, length 16"
    udp = bytes(dpkt.udp.UDP(sport=5000, dport=33434, ulen=8, data=b""))
    err = decoded(g.eth6(g.MAC_B, g.MAC_A, g.ipv6(B, A, 58, g.icmp6(1, 4, b"\x00" * 4 + g.ipv6(A, B, 17, udp)))))
    assert err.summary().endswith(f"ICMP6, unreachable port, {B} udp port 33434, length {8 + 40 + 8}")


def test_a_truncated_ipv6_header_is_noted() -> None:
    p = decoded(g.eth6(g.MAC_A, g.MAC_B, b"\x60" + b"\x00" * 20))
    assert p.ip is None and p.note == "truncated IPv6 header (21 bytes)"


def test_the_sequence_diagram_keeps_two_ipv6_packets_that_only_differ_past_the_ip_header() -> None:
    """IPv6 has no IP id: two echo requests of one size are told apart by their sequence numbers."""
    from lab.report.sequence import unique

    def echo(seq: int, point: str, at: float):  # type: ignore[no-untyped-def]
        frame = g.eth6(g.MAC_A, g.MAC_B, g.ipv6(A, B, 58, g.icmp6(128, 0, bytes([0, 7, 0, seq]) + b"p" * 8)))
        return decode_frame(frame, at, point, seq)

    first_here, first_there, second_there = echo(1, "a:eth0", 1.0), echo(1, "r:eth1", 1.001), echo(2, "r:eth1", 1.2)
    kept, dropped = unique([first_here, first_there, second_there])
    assert dropped == 1 and kept == [first_here, second_there]
