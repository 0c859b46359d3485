"""Decoding one Ethernet frame (with dpkt) into a :class:`~lab.capture.records.Packet`."""

from __future__ import annotations

import socket
import struct

import dpkt

from lab.capture.records import (
    DNS_TYPES,
    ETH_ARP,
    ETH_IPV4,
    ETH_IPV6,
    ETH_NAMES,
    HTTP_METHODS,
    ArpInfo,
    DnsInfo,
    HttpInfo,
    IcmpInfo,
    InnerIp,
    IpInfo,
    Packet,
    TcpInfo,
    UdpInfo,
)

# ---------------------------------------------------------------- decoding


def mac_str(raw: bytes) -> str:
    return raw.hex(":")


def ip_str(raw: bytes) -> str:
    return socket.inet_ntoa(raw)


def decode_frame(frame: bytes, time: float, point: str, no: int = 0, wirelen: int | None = None) -> Packet:
    """Decode one Ethernet frame; what cannot be decoded is kept raw with a ``note`` saying why."""
    length = wirelen if wirelen is not None else len(frame)
    if len(frame) < 14:
        return Packet(no, time, point, length, "", "", 0, note=f"runt frame ({len(frame)} bytes)", data=frame)
    packet = Packet(no, time, point, length, eth_src=mac_str(frame[6:12]), eth_dst=mac_str(frame[0:6]),
                    eth_type=struct.unpack("!H", frame[12:14])[0], data=frame)
    # The Ethernet header is read here rather than with dpkt.ethernet, which would decode (and we would
    # re-encode) the whole stack: that halves the decoding time of a large capture.
    offset, eth_type = 14, packet.eth_type
    while eth_type in (0x8100, 0x88A8) and len(frame) >= offset + 4:  # 802.1Q / 802.1ad tags
        eth_type = struct.unpack("!H", frame[offset + 2 : offset + 4])[0]
        offset += 4
    packet.eth_type = eth_type
    payload = frame[offset:]
    try:
        if eth_type == ETH_ARP:
            packet.arp = _arp(dpkt.arp.ARP(payload))
        elif eth_type == ETH_IPV4:
            _decode_ipv4(packet, payload)
        elif eth_type == ETH_IPV6:
            _decode_ipv6(packet, payload)
        elif eth_type < 0x0600:
            packet.note = "802.3 frame (not decoded)"
        else:
            packet.note = f"ethertype 0x{eth_type:04x} (not decoded)"
    except (dpkt.UnpackError, struct.error, ValueError, IndexError) as exc:
        packet.note = f"undecodable {ETH_NAMES.get(eth_type, hex(eth_type))} payload: {exc!r}"
    return packet


def ip6_str(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, raw)


# extension headers walked past to the upper layer: hop-by-hop, routing, fragment, destination options
IPV6_EXTENSIONS = (0, 43, 44, 60)


def _decode_ipv6(packet: Packet, raw: bytes) -> None:
    """The fixed header, the extension headers (RFC 8200 §4), then TCP, UDP or ICMPv6."""
    if len(raw) < 40:
        packet.note = f"truncated IPv6 header ({len(raw)} bytes)"
        return
    word, payload_length, next_header, hop_limit = struct.unpack("!IHBB", raw[:8])
    # a payload length of 0 (a sender's TSO super-packet, or a jumbogram): the length is what was captured
    ip = IpInfo(version=word >> 28, ihl=10, tos=(word >> 20) & 0xFF,
                total_length=40 + payload_length if payload_length else 0, id=0,
                df=False, mf=False, frag_offset=0, ttl=hop_limit, proto=next_header, src=ip6_str(raw[8:24]),
                dst=ip6_str(raw[24:40]), flow_label=word & 0xFFFFF)
    packet.ip = ip
    offset, header = 40, next_header
    while header in IPV6_EXTENSIONS:
        if len(raw) < offset + 8:
            packet.note = f"truncated IPv6 extension header {header}"
            return
        ip.extensions.append(header)
        following = raw[offset]
        if header == 44:  # Fragment: fixed 8 bytes
            offset_flags, ip.id = struct.unpack("!HI", raw[offset + 2 : offset + 8])
            ip.frag_offset, ip.mf = offset_flags >> 3, bool(offset_flags & 1)
            size = 8
        else:
            size = (raw[offset + 1] + 1) * 8
        offset += size
        header = following
    ip.proto, ip.ihl = header, offset // 4
    end = 40 + payload_length if payload_length else len(raw)  # 0: a jumbogram, or a sender's TSO super-packet
    body = raw[offset:end]
    _decode_transport(packet, body, ip, len(body))


def _arp(a: dpkt.arp.ARP) -> ArpInfo:
    return ArpInfo(a.op, mac_str(a.sha), ip_str(a.spa), mac_str(a.tha), ip_str(a.tpa))


def _decode_ipv4(packet: Packet, raw: bytes) -> None:
    if len(raw) < 20:
        packet.note = f"truncated IPv4 header ({len(raw)} bytes)"
        return
    first, tos, total, ident, flags_offset, ttl, proto = struct.unpack("!BBHHHBB", raw[:10])
    ihl = first & 0x0F
    ip = IpInfo(version=first >> 4, ihl=ihl, tos=tos, total_length=total, id=ident,
                df=bool(flags_offset & 0x4000), mf=bool(flags_offset & 0x2000),
                frag_offset=flags_offset & 0x1FFF,
                ttl=ttl, proto=proto, src=ip_str(raw[12:16]), dst=ip_str(raw[16:20]))
    packet.ip = ip
    if ip.version != 4 or ihl < 5:
        packet.note = f"bad IPv4 header (version {ip.version}, ihl {ihl})"
        return
    # total_length 0 happens on sender-side captures of TSO super-packets: use what was captured.
    end = total if total else len(raw)
    body = raw[ihl * 4 : end]
    _decode_transport(packet, body, ip, ip.payload_length if total else len(body))


def _decode_transport(packet: Packet, body: bytes, ip: IpInfo, icmp_length: int) -> None:
    """TCP, UDP, or the family's ICMP; nothing for a later fragment (only the first carries the header)."""
    if ip.frag_offset:
        return
    if ip.proto == 6:
        _decode_tcp(packet, body, ip)
    elif ip.proto == 17:
        _decode_udp(packet, body)
    elif ip.proto == 1 and ip.version == 4:
        packet.icmp = _decode_icmp(body, icmp_length)
    elif ip.proto == 58 and ip.version == 6:
        packet.icmp = _decode_icmp6(body, icmp_length)


def _decode_tcp(packet: Packet, body: bytes, ip: IpInfo) -> None:
    seg = dpkt.tcp.TCP(body)
    offset = seg.off
    if offset < 5:
        packet.note = f"bad TCP data offset {offset}"
        return
    options, malformed = parse_tcp_options(bytes(seg.opts))
    payload = body[offset * 4 :]
    if ip.total_length and not ip.mf:
        length = max(ip.total_length - ip.ihl * 4 - offset * 4, 0)
    else:
        length = len(payload)
    tcp = TcpInfo(sport=seg.sport, dport=seg.dport, seq=seg.seq, ack=seg.ack, flags=seg.flags, window=seg.win,
                  urg=seg.urp, data_offset=offset, options=options, payload=payload, length=length,
                  src=ip.src, dst=ip.dst, options_malformed=malformed)
    packet.tcp = tcp
    packet.http = parse_http(payload)
    if 53 in (tcp.sport, tcp.dport) and len(payload) > 2:
        prefix = struct.unpack("!H", payload[:2])[0]
        if prefix == len(payload) - 2:
            packet.dns = parse_dns(payload[2:])


def parse_tcp_options(raw: bytes) -> tuple[list[tuple[int, bytes]], bool]:
    """The options as (kind, value) pairs, in order; stops at EOL. Second item: the list was malformed."""
    options: list[tuple[int, bytes]] = []
    i = 0
    while i < len(raw):
        kind = raw[i]
        if kind == 0:
            options.append((0, b""))
            break
        if kind == 1:
            options.append((1, b""))
            i += 1
            continue
        if i + 1 >= len(raw) or raw[i + 1] < 2 or i + raw[i + 1] > len(raw):
            return options, True
        size = raw[i + 1]
        options.append((kind, raw[i + 2 : i + size]))
        i += size
    return options, False


def _decode_udp(packet: Packet, body: bytes) -> None:
    if len(body) < 8:
        packet.note = f"truncated UDP header ({len(body)} bytes)"
        return
    datagram = dpkt.udp.UDP(body[:8])
    end = datagram.ulen if 8 <= datagram.ulen <= len(body) else len(body)
    payload = body[8:end]
    packet.udp = UdpInfo(datagram.sport, datagram.dport, datagram.ulen, payload)
    if 53 in (datagram.sport, datagram.dport) and not (packet.ip and packet.ip.mf):
        packet.dns = parse_dns(payload)
        if packet.dns is None:
            packet.note = "malformed DNS message"


def _decode_icmp(body: bytes, length: int) -> IcmpInfo | None:
    if len(body) < 4:
        return None
    message = dpkt.icmp.ICMP(body[:4] + b"\x00" * 4)  # header only: dpkt would also parse the quoted datagram
    info = IcmpInfo(type=message.type, code=message.code, length=length)
    rest = body[4:]
    if info.type in (0, 8, 13, 14, 15, 16, 17, 18) and len(rest) >= 4:
        info.id, info.seq = struct.unpack("!HH", rest[:4])
    elif info.type == 5 and len(rest) >= 4:
        info.gateway = ip_str(rest[:4])
    elif info.type == 3 and info.code == 4 and len(rest) >= 4:
        info.mtu = struct.unpack("!H", rest[2:4])[0]
    if info.type in (3, 4, 5, 11, 12):
        info.inner = _inner_ip(rest[4:])
    return info


def _decode_icmp6(body: bytes, length: int) -> IcmpInfo | None:
    """An ICMPv6 message: errors with the packet they quote, echo, and neighbour discovery (RFC 4861)."""
    if len(body) < 4:
        return None
    info = IcmpInfo(type=body[0], code=body[1], length=length, version=6)
    rest = body[4:]
    if info.type in (128, 129) and len(rest) >= 4:
        info.id, info.seq = struct.unpack("!HH", rest[:4])
    elif info.type == 2 and len(rest) >= 4:
        info.mtu = struct.unpack("!I", rest[:4])[0]
    elif info.type in (135, 136, 137) and len(rest) >= 20:
        info.target = ip6_str(rest[4:20])
        if info.type == 136:
            info.nd_flags = ", ".join(name for bit, name in ((0x80, "router"), (0x40, "solicited"),
                                                             (0x20, "override")) if rest[0] & bit)
        options = rest[36:] if info.type == 137 else rest[20:]
        info.lladdr = _nd_lladdr(options, 1 if info.type == 135 else 2)
    elif info.type in (133, 134):
        info.lladdr = _nd_lladdr(rest[4:] if info.type == 133 else rest[12:], 1)
    if info.is_error and len(rest) >= 4:
        info.inner = _inner_ip6(rest[4:])
    return info


def _nd_lladdr(options: bytes, kind: int) -> str | None:
    """The source (1) or target (2) link-layer address option of a neighbour discovery message."""
    i = 0
    while i + 2 <= len(options):
        size = options[i + 1] * 8
        if size == 0:
            return None
        if options[i] == kind and size >= 8:
            return mac_str(options[i + 2 : i + 8])
        i += size
    return None


def _inner_ip6(raw: bytes) -> InnerIp | None:
    """The IPv6 packet an ICMPv6 error quotes (its ports when its upper layer follows the fixed header)."""
    if len(raw) < 40 or raw[0] >> 4 != 6:
        return None
    inner = InnerIp(ip6_str(raw[8:24]), ip6_str(raw[24:40]), raw[6], 0)
    if inner.proto in (6, 17) and len(raw) >= 44:
        inner.sport, inner.dport = struct.unpack("!HH", raw[40:44])
    return inner


def _inner_ip(raw: bytes) -> InnerIp | None:
    if len(raw) < 20 or raw[0] >> 4 != 4:
        return None
    ihl = (raw[0] & 0x0F) * 4
    ident, flags_offset, _, proto = struct.unpack("!HHBB", raw[4:10])
    inner = InnerIp(ip_str(raw[12:16]), ip_str(raw[16:20]), proto, ident)
    if proto in (6, 17) and not flags_offset & 0x1FFF and len(raw) >= ihl + 4:
        inner.sport, inner.dport = struct.unpack("!HH", raw[ihl : ihl + 4])
    return inner


def parse_dns(payload: bytes) -> DnsInfo | None:
    """Decode a DNS message with dpkt; None if it is not one."""
    if len(payload) < 12:
        return None
    try:
        msg = dpkt.dns.DNS(payload)
    except (dpkt.UnpackError, struct.error, IndexError, ValueError):
        return None
    qd, an, ns, ar = struct.unpack("!HHHH", payload[4:12])
    word = struct.unpack("!H", payload[2:4])[0]
    return DnsInfo(
        id=msg.id, qr=(word >> 15) & 1, opcode=(word >> 11) & 0xF,
        aa=bool(word & 0x0400), tc=bool(word & 0x0200),
        rd=bool(word & 0x0100), ra=bool(word & 0x0080), rcode=word & 0xF, ad=bool(word & 0x0020),
        cd=bool(word & 0x0010), flags_word=word,
        questions=[(q.name, dns_type(q.type)) for q in msg.qd],
        answers=[(rr.name, dns_type(rr.type), _rr_value(rr), rr.ttl) for rr in msg.an],
        qdcount=qd, ancount=an, nscount=ns, arcount=ar, size=len(payload),
    )


def dns_type(number: int) -> str:
    return DNS_TYPES.get(number, f"Type{number}")


def _rr_value(rr: dpkt.dns.DNS.RR) -> str:
    kind = dns_type(rr.type)
    try:
        if kind == "A":
            return ip_str(rr.rdata)
        if kind == "AAAA":
            return socket.inet_ntop(socket.AF_INET6, rr.rdata)
        if kind == "CNAME":
            return str(rr.cname)
        if kind == "NS":
            return str(rr.nsname)
        if kind == "PTR":
            return str(rr.ptrname)
        if kind == "MX":
            return f"{rr.mxname} {rr.preference}"
        if kind == "TXT":
            return " ".join(f'"{t.decode(errors="replace") if isinstance(t, bytes) else t}"' for t in rr.text)
        if kind == "SOA":
            return f"{rr.mname} {rr.rname} {rr.serial}"
    except (AttributeError, ValueError, OSError):
        pass
    return bytes(rr.rdata).hex()


def parse_http(payload: bytes) -> HttpInfo | None:
    """An HTTP request or response that starts at the start of a TCP payload, or None."""
    if not payload:
        return None
    first_word = payload.split(b" ", 1)[0]
    if payload.startswith(b"HTTP/1."):
        kind = "response"
    elif first_word in HTTP_METHODS and b" HTTP/1." in payload.split(b"\r\n", 1)[0]:
        kind = "request"
    else:
        return None
    head, sep, body = payload.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers.append((name.strip(), value.strip()))
    return HttpInfo(kind, lines[0], headers, body, complete_headers=bool(sep))
