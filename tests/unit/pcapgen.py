"""Build Ethernet frames and pcap files for the decoder's tests, with dpkt.

The tests write their own captures rather than shipping binary fixtures, so
each field a test checks is visible in the test itself. Checksums are
computed by dpkt when the frames are serialised, as tcpdump expects.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable
from pathlib import Path

import dpkt

MAC_A = "02:00:00:00:00:0a"
MAC_B = "02:00:00:00:00:0b"
MAC_R = "02:00:00:00:00:fe"
BROADCAST = "ff:ff:ff:ff:ff:ff"


def mac(text: str) -> bytes:
    return bytes(int(part, 16) for part in text.split(":"))


def ip4(text: str) -> bytes:
    return socket.inet_aton(text)


def eth(src: str, dst: str, payload: bytes | dpkt.Packet, eth_type: int = 0x0800) -> bytes:
    return bytes(dpkt.ethernet.Ethernet(src=mac(src), dst=mac(dst), type=eth_type, data=bytes(payload)))


def ipv4(
    src: str,
    dst: str,
    proto: int,
    payload: bytes | dpkt.Packet,
    ident: int = 1,
    df: bool = True,
    mf: bool = False,
    offset: int = 0,
    ttl: int = 64,
    tos: int = 0,
) -> dpkt.ip.IP:
    """An IPv4 packet; ``offset`` is in 8-byte units, as in the header."""
    flags_offset = (dpkt.ip.IP_DF if df else 0) | (dpkt.ip.IP_MF if mf else 0) | offset
    packet = dpkt.ip.IP(src=ip4(src), dst=ip4(dst), p=proto, id=ident, _flags_offset=flags_offset,
                        ttl=ttl, tos=tos)
    packet.data = payload
    if isinstance(payload, dpkt.Packet):
        setattr(packet, payload.__class__.__name__.lower(), payload)
    packet.len = packet.__hdr_len__ + len(bytes(payload))
    return packet


def tcp_segment(
    sport: int,
    dport: int,
    seq: int,
    ack: int = 0,
    flags: int = dpkt.tcp.TH_ACK,
    win: int = 502,
    options: bytes = b"",
    payload: bytes = b"",
    urp: int = 0,
) -> dpkt.tcp.TCP:
    pad = (-len(options)) % 4
    opts = options + b"\x00" * pad
    return dpkt.tcp.TCP(
        sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, win=win, urp=urp,
        off=(20 + len(opts)) // 4, opts=opts, data=payload,
    )


def tcp_frame(src: str, dst: str, seg: dpkt.tcp.TCP, src_mac: str = MAC_A, dst_mac: str = MAC_B,
              ident: int = 1, ttl: int = 64) -> bytes:
    return eth(src_mac, dst_mac, ipv4(src, dst, 6, seg, ident=ident, ttl=ttl))


def syn_options(mss: int = 1460, ts_val: int = 1, ts_ecr: int = 0, wscale: int = 7) -> bytes:
    """Linux's SYN options, in Linux's order: mss, sackOK, TS, nop, wscale."""
    return (struct.pack("!BBH", 2, 4, mss) + b"\x04\x02" + struct.pack("!BBII", 8, 10, ts_val, ts_ecr)
            + b"\x01" + struct.pack("!BBB", 3, 3, wscale))


def ts_options(ts_val: int, ts_ecr: int) -> bytes:
    return b"\x01\x01" + struct.pack("!BBII", 8, 10, ts_val, ts_ecr)


def udp_frame(src: str, dst: str, sport: int, dport: int, payload: bytes,
              src_mac: str = MAC_A, dst_mac: str = MAC_B, ident: int = 1) -> bytes:
    datagram = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    datagram.ulen = 8 + len(payload)
    return eth(src_mac, dst_mac, ipv4(src, dst, 17, datagram, ident=ident))


def arp_frame(op: int, sha: str, spa: str, tha: str, tpa: str, eth_dst: str | None = None,
              pad: int = 0) -> bytes:
    packet = dpkt.arp.ARP(op=op, sha=mac(sha), spa=ip4(spa), tha=mac(tha), tpa=ip4(tpa))
    dst = eth_dst or (BROADCAST if op == 1 else tha)
    return eth(sha, dst, bytes(packet) + b"\x00" * pad, eth_type=0x0806)


def icmp_message(icmp_type: int, code: int, body: bytes) -> bytes:
    """An ICMP message with its checksum: ``body`` is everything after the 4-byte type/code/checksum."""
    return bytes(dpkt.icmp.ICMP(type=icmp_type, code=code, data=_Raw(body)))


class _Raw(dpkt.Packet):
    """Raw bytes that dpkt serialises verbatim (ICMP's data must be a Packet or bytes)."""

    __hdr__ = ()

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self.data = body


def echo(ident: int, seq: int, data: bytes, reply: bool = False) -> bytes:
    return icmp_message(0 if reply else 8, 0, struct.pack("!HH", ident, seq) + data)


def quoted(inner_ip: dpkt.ip.IP, keep: int = 8) -> bytes:
    """The start of an offending datagram, as an ICMP error quotes it (header + 8 bytes)."""
    raw = bytes(inner_ip)
    return raw[: inner_ip.hl * 4 + keep]


def redirect(code: int, gateway: str, inner_ip: dpkt.ip.IP) -> bytes:
    return icmp_message(5, code, ip4(gateway) + quoted(inner_ip))


def unreachable(code: int, inner_ip: dpkt.ip.IP, mtu: int = 0) -> bytes:
    return icmp_message(3, code, struct.pack("!HH", 0, mtu) + quoted(inner_ip))


def time_exceeded(inner_ip: dpkt.ip.IP, code: int = 0) -> bytes:
    return icmp_message(11, code, b"\x00" * 4 + quoted(inner_ip))


def icmp_frame(src: str, dst: str, message: bytes, src_mac: str = MAC_A, dst_mac: str = MAC_B,
               ident: int = 1, df: bool = False, ttl: int = 64) -> bytes:
    return eth(src_mac, dst_mac, ipv4(src, dst, 1, message, ident=ident, df=df, ttl=ttl))


def fragments(src: str, dst: str, proto: int, payload: bytes, mtu: int, ident: int,
              src_mac: str = MAC_A, dst_mac: str = MAC_B) -> list[bytes]:
    """Split an IP payload the way the kernel does: 8-byte aligned pieces of at most mtu-20 bytes."""
    size = (mtu - 20) // 8 * 8
    frames = []
    for start in range(0, len(payload), size):
        piece = payload[start : start + size]
        more = start + size < len(payload)
        frames.append(eth(src_mac, dst_mac, ipv4(src, dst, proto, piece, ident=ident, df=False, mf=more,
                                                 offset=start // 8)))
    return frames


def dns_query(ident: int, name: str, qtype: int = dpkt.dns.DNS_A, rd: bool = True) -> bytes:
    msg = dpkt.dns.DNS(id=ident, op=dpkt.dns.DNS_RD if rd else 0, qd=[dpkt.dns.DNS.Q(name=name, type=qtype)])
    return bytes(msg)


def dns_response(ident: int, name: str, cname: str, addresses: Iterable[str], aa: bool = True,
                 ttl: int = 0) -> bytes:
    op = dpkt.dns.DNS_QR | dpkt.dns.DNS_RD | dpkt.dns.DNS_RA | (dpkt.dns.DNS_AA if aa else 0)
    answers = [dpkt.dns.DNS.RR(name=name, type=dpkt.dns.DNS_CNAME, cls=1, ttl=ttl, cname=cname)]
    for address in addresses:
        answers.append(dpkt.dns.DNS.RR(name=cname, type=dpkt.dns.DNS_A, cls=1, ttl=ttl, ip=ip4(address)))
    msg = dpkt.dns.DNS(id=ident, op=op, qd=[dpkt.dns.DNS.Q(name=name, type=dpkt.dns.DNS_A)], an=answers)
    return bytes(msg)


def write_pcap(path: str | Path, frames: Iterable[tuple[float, bytes]], linktype: int = 1,
               nano: bool = False) -> Path:
    """A classic pcap file as ``tcpdump -w`` writes it (microsecond or nanosecond timestamps)."""
    p = Path(path)
    with p.open("wb") as f:
        writer = dpkt.pcap.Writer(f, snaplen=262144, linktype=linktype, nano=nano)
        for ts, frame in frames:
            writer.writepkt(frame, ts=ts)
    return p


# ---------------------------------------------------------------- a whole conversation

CLIENT, SERVER = "10.0.1.1", "10.0.1.2"
ISN_C, ISN_S = 3499745539, 2006616300
REQUEST = b"GET /index.html HTTP/1.1\r\nHost: www.baidu.com\r\nUser-Agent: Wget/1.21.3\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nVia: 1.1 ernest-laptop (squid/5.7)\r\n\r\nhello"
SYN, ACK, PSH, FIN = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_PUSH, dpkt.tcp.TH_FIN


def handshake_frames() -> list[bytes]:
    """The client's view of a handshake with Linux's options, one HTTP exchange, and a 4-segment close."""
    c, s = ISN_C, ISN_S
    nq, nr = len(REQUEST), len(RESPONSE)

    def up(seq: int, ack: int, flags: int, opts: bytes, data: bytes = b"", win: int = 502) -> bytes:
        return tcp_frame(CLIENT, SERVER, tcp_segment(43210, 80, seq, ack, flags, win, opts, data))

    def down(seq: int, ack: int, flags: int, opts: bytes, data: bytes = b"", win: int = 509) -> bytes:
        segment = tcp_segment(80, 43210, seq, ack, flags, win, opts, data)
        return tcp_frame(SERVER, CLIENT, segment, MAC_B, MAC_A, ident=0 if flags & SYN else 1)

    return [
        up(c, 0, SYN, syn_options(ts_val=100), win=64240),
        down(s, c + 1, SYN | ACK, syn_options(ts_val=200, ts_ecr=100, wscale=9), win=65160),
        up(c + 1, s + 1, ACK, ts_options(101, 200)),
        up(c + 1, s + 1, ACK | PSH, ts_options(102, 200), REQUEST),
        down(s + 1, c + 1 + nq, ACK | PSH, ts_options(201, 102), RESPONSE),
        up(c + 1 + nq, s + 1 + nr, ACK | FIN, ts_options(103, 201)),
        down(s + 1 + nr, c + 2 + nq, ACK | FIN, ts_options(202, 103)),
        up(c + 2 + nq, s + 2 + nr, ACK, ts_options(104, 202)),
    ]


def timed(frames: list[bytes], start: float = 1000.0, step: float = 0.001) -> list[tuple[float, bytes]]:
    """Frames with timestamps ``start``, ``start + step``, ..."""
    return [(start + i * step, f) for i, f in enumerate(frames)]


# ---------------------------------------------------------------- IPv6 (built by hand: every field visible)


def ip6(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, text)


def ipv6(src: str, dst: str, next_header: int, payload: bytes, hop_limit: int = 64, flow_label: int = 0,
         traffic_class: int = 0, extensions: bytes = b"") -> bytes:
    """An IPv6 packet; ``extensions`` are extension headers already chained (their first number is
    ``next_header``)."""
    word = (6 << 28) | (traffic_class << 20) | flow_label
    body = extensions + payload
    return struct.pack("!IHBB", word, len(body), next_header, hop_limit) + ip6(src) + ip6(dst) + body


def fragment_header(next_header: int, offset: int, more: bool, ident: int) -> bytes:
    """RFC 8200's Fragment header; ``offset`` in 8-byte units."""
    return struct.pack("!BBHI", next_header, 0, (offset << 3) | int(more), ident)


def hop_by_hop(next_header: int) -> bytes:
    """A hop-by-hop options header with a router alert (as MLD reports carry) padded to 8 bytes."""
    return bytes([next_header, 0, 5, 2, 0, 0, 1, 0])


def eth6(src_mac: str, dst_mac: str, packet: bytes) -> bytes:
    return eth(src_mac, dst_mac, packet, eth_type=0x86DD)


def tcp6_frame(src: str, dst: str, seg: dpkt.tcp.TCP, src_mac: str = MAC_A, dst_mac: str = MAC_B,
               hop_limit: int = 64, flow_label: int = 0) -> bytes:
    return eth6(src_mac, dst_mac, ipv6(src, dst, 6, bytes(seg), hop_limit=hop_limit, flow_label=flow_label))


def icmp6(icmp_type: int, code: int, body: bytes) -> bytes:
    """An ICMPv6 message (checksum left 0: the decoder does not check it)."""
    return struct.pack("!BBH", icmp_type, code, 0) + body


def neighbor_solicitation(target: str, source_mac: str) -> bytes:
    return icmp6(135, 0, b"\x00" * 4 + ip6(target) + bytes([1, 1]) + mac(source_mac))


def neighbor_advertisement(target: str, target_mac: str, solicited: bool = True, router: bool = False) -> bytes:
    flags = (0x80 if router else 0) | (0x40 if solicited else 0) | 0x20
    return icmp6(136, 0, bytes([flags, 0, 0, 0]) + ip6(target) + bytes([2, 1]) + mac(target_mac))


def packet_too_big(mtu: int, quoted_packet: bytes) -> bytes:
    return icmp6(2, 0, struct.pack("!I", mtu) + quoted_packet)


def solicited_node(address: str) -> str:
    """ff02::1:ffXX:XXXX, the multicast group a neighbour solicitation for ``address`` goes to."""
    last = ip6(address)[-3:]
    return socket.inet_ntop(socket.AF_INET6, ip6("ff02::1:ff00:0")[:13] + last)
