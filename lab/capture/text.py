"""tcpdump -nt notation for packets, so a captured listing can be read next to the book's.

Sequence numbers are what tcpdump prints: absolute for segments without ACK (a SYN, a bare
RST) and for the first ACK-bearing segment of a connection (normally the SYN-ACK), relative
afterwards. Deliberate additions to ``tcpdump -nt``: IPv4 fragments end with
``(frag ID:SIZE@OFFSET+)`` (old tcpdump's notation; 4.99 shows fragmentation only with -v),
and HTTP request/status lines are shown on any port, not only 80 and 8080.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from lab.capture.records import (
    ACK,
    DNS_OPS,
    DNS_RCODES,
    ETH_IPV6,
    ETH_NAMES,
    FIN,
    HTTP_PORTS,
    ICMP6_UNREACH,
    IP_PROTO_NAMES,
    REDIRECT,
    RST,
    SYN,
    TCP_OPTION_NAMES,
    UNREACH,
    URG,
    DnsInfo,
    IcmpInfo,
    IpInfo,
    Packet,
    TcpInfo,
)

# ---------------------------------------------------------------- rendering


def render(p: Packet, link: bool = False, ip_header: bool = False) -> str:
    """tcpdump -nt notation for one packet (see the module docstring for the two additions)."""
    prefix = ""
    if link:
        name = ETH_NAMES.get(p.eth_type, "Unknown")
        prefix = f"{p.eth_src} > {p.eth_dst}, ethertype {name} (0x{p.eth_type:04x}), length {p.length}: "
    if p.arp is not None:
        return prefix + ("" if link else "ARP, ") + _render_arp(p)
    if p.ip is not None:
        head = "" if link else ("IP6 " if p.ip.version == 6 else "IP ")
        if ip_header:
            head += (_render_ip6_header(p.ip) if p.ip.version == 6 else _render_ip_header(p.ip)) + " "
        return prefix + head + _render_ip(p)
    if p.eth_type == ETH_IPV6:
        return prefix + ("" if link else "IP6 ") + f"({p.note}), length {p.length}"
    # Like tcpdump, a frame it cannot name is shown with its link header even without -e.
    name = ETH_NAMES.get(p.eth_type, "Unknown")
    head = prefix or f"{p.eth_src} > {p.eth_dst}, ethertype {name} (0x{p.eth_type:04x}), length {p.length}: "
    return head + f"({p.note or 'not decoded'})"


def _render_arp(p: Packet) -> str:
    a = p.arp
    assert a is not None
    size = p.length - 14
    if a.op == 1:
        known = f" ({a.tha})" if a.tha != "00:00:00:00:00:00" else ""
        text = f"Request who-has {a.tpa}{known} tell {a.spa}"
    elif a.op == 2:
        text = f"Reply {a.spa} is-at {a.sha}"
    else:
        text = f"Unknown ({a.op}) {a.spa} > {a.tpa}"
    return f"{text}, length {size}"


def _render_ip_header(ip: IpInfo) -> str:
    flags = ", ".join(name for bit, name in ((ip.mf, "+"), (ip.df, "DF")) if bit) or "none"
    proto = IP_PROTO_NAMES.get(ip.proto, "unknown")
    return (f"(tos 0x{ip.tos:x}, ttl {ip.ttl}, id {ip.id}, offset {ip.frag_offset_bytes}, flags [{flags}], "
            f"proto {proto} ({ip.proto}), length {ip.total_length})")


def _render_ip6_header(ip: IpInfo) -> str:
    """tcpdump -v's IPv6 fields: (class, flowlabel, hlim, next-header, payload length)."""
    first = ip.extensions[0] if ip.extensions else ip.proto
    names = {0: "Options", 43: "Routing", 44: "Frag", 60: "DSTOPT", **IP_PROTO_NAMES}
    traffic_class = f"class 0x{ip.tos:x}, " if ip.tos else ""
    return (f"({traffic_class}flowlabel 0x{ip.flow_label:05x}, hlim {ip.ttl}, "
            f"next-header {names.get(first, 'unknown')} ({first}) payload length: {max(ip.total_length - 40, 0)})")


def _render_ip(p: Packet) -> str:
    ip = p.ip
    assert ip is not None
    frag = ""
    if ip.is_fragment:
        frag = f" (frag {ip.id}:{ip.payload_length}@{ip.frag_offset_bytes}{'+' if ip.mf else ''})"
    if ip.frag_offset:
        return f"{ip.src} > {ip.dst}: ip-proto-{ip.proto}{frag}"
    if p.tcp is not None:
        return f"{ip.src}.{p.tcp.sport} > {ip.dst}.{p.tcp.dport}: {_render_tcp(p)}{frag}"
    if p.udp is not None:
        return f"{ip.src}.{p.udp.sport} > {ip.dst}.{p.udp.dport}: {_render_udp(p)}{frag}"
    if p.icmp is not None and p.icmp.version == 6:
        return f"{ip.src} > {ip.dst}: ICMP6, {_render_icmp6(p.icmp)}, length {p.icmp.length}{frag}"
    if p.icmp is not None:
        return f"{ip.src} > {ip.dst}: ICMP {_render_icmp(p.icmp)}, length {p.icmp.length}{frag}"
    if p.note:
        return f"{ip.src} > {ip.dst}: {p.note}{frag}"
    return f"{ip.src} > {ip.dst}: ip-proto-{ip.proto} {ip.payload_length}{frag}"


def _render_tcp(p: Packet) -> str:
    t = p.tcp
    assert t is not None
    seq = t.seq if t.shown_seq is None else t.shown_seq
    ack = t.ack if t.shown_ack is None else t.shown_ack
    out = f"Flags [{t.flag_str}]"
    if t.length > 0 or t.flags & (SYN | FIN | RST):
        out += f", seq {seq}"
        if t.length > 0:
            out += f":{(seq + t.length) & 0xFFFFFFFF}"
    if t.flags & ACK:
        out += f", ack {ack}"
    out += f", win {t.window}"
    if t.flags & URG:
        out += f", urg {t.urg}"
    if t.options or t.options_malformed:
        out += f", options [{_render_tcp_options(t)}]"
    out += f", length {t.length}"
    if p.dns is not None:
        out += ": " + _render_dns(p.dns)
    elif p.http is not None:
        out += f": HTTP: {p.http.start_line}"
    elif t.length > 0 and (t.sport in HTTP_PORTS or t.dport in HTTP_PORTS):
        out += ": HTTP"
    return out


def _render_tcp_options(t: TcpInfo) -> str:
    parts = []
    for kind, value in t.options:
        if kind == 2 and len(value) == 2:
            parts.append(f"mss {struct.unpack('!H', value)[0]}")
        elif kind == 3 and len(value) == 1:
            parts.append(f"wscale {value[0]}")
        elif kind == 8 and len(value) == 8:
            val, ecr = struct.unpack("!II", value)
            parts.append(f"TS val {val} ecr {ecr}")
        elif kind == 5:
            blocks = [struct.unpack("!II", value[i : i + 8]) for i in range(0, len(value) - 7, 8)]
            base = t.sack_base
            text = "".join(f"{{{(s - base) & 0xFFFFFFFF}:{(e - base) & 0xFFFFFFFF}}}" for s, e in blocks)
            parts.append(f"sack {len(blocks)} {text}")
        elif kind in (0, 1, 4):
            parts.append(TCP_OPTION_NAMES[kind])
        elif kind in TCP_OPTION_NAMES:
            parts.append(TCP_OPTION_NAMES[kind] + (f" 0x{value.hex()}" if value else ""))
        else:
            parts.append(f"unknown-{kind}" + (f" 0x{value.hex()}" if value else ""))
    if t.options_malformed:
        parts.append("[bad opt]")
    return ",".join(parts)


def _render_udp(p: Packet) -> str:
    u = p.udp
    assert u is not None
    if p.dns is not None:
        return _render_dns(p.dns)
    return f"UDP, length {max(u.length - 8, 0)}"


def _render_dns(d: DnsInfo) -> str:
    ops = DNS_OPS[d.opcode]
    if d.qr:
        out = (f"{d.id}{ops}{DNS_RCODES.get(d.rcode, f' Resp{d.rcode}')}{'*' if d.aa else ''}"
               f"{'' if d.ra else '-'}{'|' if d.tc else ''}")
        if d.qdcount != 1:
            out += f" [{d.qdcount}q]"
        out += f" {d.ancount}/{d.nscount}/{d.arcount}"
        answers = [_render_rr(rtype, value) for _, rtype, value, _ in d.answers]
        if answers:
            out += " " + ", ".join(answers)
    else:
        out = f"{d.id}{ops}{'+' if d.rd else ''}{'%' if d.cd else ''}"
        if d.flags_word & 0x6CF:
            out += f" [b2&3=0x{d.flags_word:x}]"
        if d.qdcount != 1:
            out += f" [{d.qdcount}q]"
        for count, letter in ((d.ancount, "a"), (d.nscount, "n"), (d.arcount, "au")):
            if count:
                out += f" [{count}{letter}]"
        if d.questions:
            name, qtype = d.questions[0]
            out += f" {qtype}? {_fqdn(name)}"
    return f"{out} ({d.size})"


def _render_rr(rtype: str, value: str) -> str:
    if rtype in ("CNAME", "NS", "PTR"):
        return f"{rtype} {_fqdn(value)}"
    if rtype == "MX":
        name, _, pref = value.rpartition(" ")
        return f"MX {_fqdn(name)} {pref}"
    if rtype in ("A", "AAAA", "TXT"):
        return f"{rtype} {value}"
    return rtype


def _fqdn(name: str) -> str:
    return name + "." if not name.endswith(".") else name


def _render_icmp(i: IcmpInfo) -> str:
    inner = i.inner
    dst = inner.dst if inner else "?"
    if i.type in (0, 8):
        return f"echo {'reply' if i.type == 0 else 'request'}, id {i.id}, seq {i.seq}"
    if i.type == 3:
        if i.code == 3 and inner is not None and inner.proto in (6, 17):
            return f"{dst} {'tcp' if inner.proto == 6 else 'udp'} port {inner.dport} unreachable"
        if i.code == 3 and inner is not None:
            return f"{dst} protocol {inner.proto} port {inner.dport} unreachable"
        if i.code == 4 and i.mtu:
            return f"{dst} unreachable - need to frag (mtu {i.mtu})"
        template = UNREACH.get(i.code, "{dst} unreachable - #" + str(i.code))
        return template.format(dst=dst, proto=inner.proto if inner else "?", l4="", dport="")
    if i.type == 5:
        template = REDIRECT.get(i.code, "redirect-#" + str(i.code) + " {dst} to {gw}")
        return template.format(dst=dst, gw=i.gateway)
    if i.type == 13:
        return f"time stamp query id {i.id} seq {i.seq}"
    if i.type == 11:
        return "time exceeded in-transit" if i.code == 0 else "ip reassembly time exceeded"
    return i.name


def _render_icmp6(i: IcmpInfo) -> str:
    """tcpdump's words for ICMPv6: ``neighbor solicitation, who has X``, ``packet too big, mtu N``, ..."""
    if i.type in (128, 129):
        return f"{i.name}, id {i.id}, seq {i.seq}"
    if i.type == 135:
        return f"{i.name}, who has {i.target}"
    if i.type == 136:
        return f"{i.name}, tgt is {i.target}" + (f" ({i.nd_flags})" if i.nd_flags else "")
    if i.type == 2:
        return f"{i.name}, mtu {i.mtu}"
    if i.type == 1:
        what = ICMP6_UNREACH.get(i.code, f"code-#{i.code}")
        inner = i.inner
        if inner is not None and i.code == 4 and inner.proto in (6, 17):
            return f"{what}, {inner.dst} {'tcp' if inner.proto == 6 else 'udp'} port {inner.dport}"
        return f"{what}, {inner.dst}" if inner is not None else what
    return i.name


def listing(packets: Sequence[Packet], t0: float | None = None) -> str:
    """A numbered listing of packets, times relative to ``t0`` (default: the first packet)."""
    if not packets:
        return ""
    start = packets[0].time if t0 is None else t0
    width = max(len(p.point) for p in packets)
    return "\n".join(p.line(start, width) for p in packets)
