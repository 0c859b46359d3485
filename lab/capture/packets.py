"""Typed packet records decoded from pcap files, and tcpdump-like rendering of them.

A capture is only useful to an experiment if its claims can be read off the
packets: "the SYN-ACK acks ISN+1", "the redirect names the router", "the second
fragment starts at 1480". So every frame becomes a :class:`Packet` whose fields
are named as the book names them (flags, seq, ack, win, id, DF/MF, offset...),
decoded with dpkt, and printable in the same ``tcpdump -nt`` notation the book's
listings use, so a captured listing can be read next to the printed one.

Two things follow tcpdump's own rules rather than an obvious reading:

- Sequence numbers in :meth:`Packet.summary` are what tcpdump prints: absolute
  for segments without ACK (a SYN, a bare RST) and for the first ACK-bearing
  segment of a connection (normally the SYN-ACK), relative afterwards.
  :attr:`TcpInfo.rel_seq` and :attr:`TcpInfo.rel_ack` are always relative to
  each direction's ISN (0 for the SYN, 1 for the first data byte), which is what
  an assertion wants.
- Relative numbers are computed per capture point, as if one tcpdump ran at
  each point, even when the listing merges several points.

Deliberate additions to ``tcpdump -nt``: IPv4 fragments end with
``(frag ID:SIZE@OFFSET+)`` (old tcpdump's notation; 4.99 shows fragmentation
only with -v), and HTTP request/status lines are shown on any port, not only
80 and 8080.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import dpkt

from lab.errors import InputError

# TCP flag bits, as in the header.
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
# tcpdump 4.99's letters, in the order it prints them ("FP.", "P.U", ".EW").
_FLAG_LETTERS = ((FIN, "F"), (SYN, "S"), (RST, "R"), (PSH, "P"), (ACK, "."), (URG, "U"), (ECE, "E"),
                 (CWR, "W"))

ETH_IPV4, ETH_ARP, ETH_IPV6 = 0x0800, 0x0806, 0x86DD
_ETH_NAMES = {ETH_IPV4: "IPv4", ETH_ARP: "ARP", ETH_IPV6: "IPv6", 0x8100: "802.1Q"}
IP_PROTO_NAMES = {1: "ICMP", 2: "IGMP", 6: "TCP", 17: "UDP", 47: "GRE", 50: "ESP", 58: "ICMPv6", 132: "SCTP"}
LINKTYPE_ETHERNET = 1
_LINKTYPE_NAMES = {0: "BSD loopback", 101: "raw IP", 113: "Linux cooked (tcpdump -i any)",
                   276: "Linux cooked v2 (tcpdump -i any)", 127: "802.11 radiotap"}

HTTP_METHODS = (b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"CONNECT", b"TRACE", b"PATCH")
_HTTP_PORTS = (80, 8080)  # the ports where tcpdump itself prints "HTTP"

DNS_TYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT", 28: "AAAA",
             33: "SRV", 35: "NAPTR", 41: "OPT", 43: "DS", 46: "RRSIG", 48: "DNSKEY", 64: "SVCB", 65: "HTTPS",
             99: "SPF", 252: "AXFR", 255: "ANY", 257: "CAA"}
_DNS_OPS = ["", " inv_q", " stat", " op3", " notify", " update"] + [f" op{i}" for i in range(6, 16)]
_DNS_RCODES = {0: "", 1: " FormErr", 2: " ServFail", 3: " NXDomain", 4: " NotImp", 5: " Refused",
               6: " YXDomain", 7: " YXRRSet", 8: " NXRRSet", 9: " NotAuth", 10: " NotZone"}

ICMP_NAMES = {0: "echo reply", 3: "unreachable", 4: "source quench", 5: "redirect", 8: "echo request",
              9: "router advertisement", 10: "router solicitation", 11: "time exceeded",
              12: "parameter problem", 13: "time stamp request", 14: "time stamp reply",
              15: "information request", 16: "information reply", 17: "address mask request",
              18: "address mask reply"}
_UNREACH = {0: "net {dst} unreachable", 1: "host {dst} unreachable", 2: "{dst} protocol {proto} unreachable",
            3: "{dst} {l4} port {dport} unreachable", 4: "{dst} unreachable - need to frag",
            5: "{dst} unreachable - source route failed", 6: "net {dst} unreachable - unknown",
            7: "host {dst} unreachable - unknown", 8: "{dst} unreachable - source host isolated",
            9: "net {dst} unreachable - admin prohibited", 10: "host {dst} unreachable - admin prohibited",
            11: "net {dst} unreachable - tos prohibited", 12: "host {dst} unreachable - tos prohibited",
            13: "host {dst} unreachable - admin prohibited filter",
            14: "host {dst} unreachable - host precedence violation",
            15: "host {dst} unreachable - precedence cutoff"}
_REDIRECT = {0: "redirect {dst} to net {gw}", 1: "redirect {dst} to host {gw}",
             2: "redirect-tos {dst} to net {gw}", 3: "redirect-tos {dst} to host {gw}"}
_TCP_OPTION_NAMES = {0: "eol", 1: "nop", 2: "mss", 3: "wscale", 4: "sackOK", 5: "sack", 6: "echo",
                     7: "echoreply", 8: "TS", 19: "md5", 28: "uto", 29: "tcp-ao", 30: "mptcp", 34: "tfo",
                     254: "exp"}

ConnKey = tuple[tuple[str, int], tuple[str, int]]


class PcapError(InputError):
    """A capture file that cannot be read: not a pcap, or a link type we do not decode."""


# ---------------------------------------------------------------- records


@dataclass
class ArpInfo:
    """An ARP message (Ethernet/IPv4): op 1 = request, 2 = reply."""

    op: int
    sha: str
    spa: str
    tha: str
    tpa: str

    @property
    def is_request(self) -> bool:
        return self.op == 1

    @property
    def is_reply(self) -> bool:
        return self.op == 2


@dataclass
class IpInfo:
    """The IPv4 header. ``frag_offset`` is in 8-byte units, as on the wire."""

    version: int
    ihl: int
    tos: int
    total_length: int
    id: int
    df: bool
    mf: bool
    frag_offset: int
    ttl: int
    proto: int
    src: str
    dst: str

    @property
    def frag_offset_bytes(self) -> int:
        return self.frag_offset * 8

    @property
    def is_fragment(self) -> bool:
        return self.mf or self.frag_offset > 0

    @property
    def payload_length(self) -> int:
        return max(self.total_length - self.ihl * 4, 0)

    @property
    def proto_name(self) -> str:
        return IP_PROTO_NAMES.get(self.proto, f"ip-proto-{self.proto}")


@dataclass
class InnerIp:
    """The offending datagram an ICMP error quotes: its addresses, protocol and (if present) ports."""

    src: str
    dst: str
    proto: int
    id: int
    sport: int | None = None
    dport: int | None = None


@dataclass
class IcmpInfo:
    """An ICMP message. ``length`` is the ICMP message length (tcpdump's "length")."""

    type: int
    code: int
    length: int
    id: int | None = None
    seq: int | None = None
    gateway: str | None = None
    mtu: int | None = None
    inner: InnerIp | None = None

    @property
    def name(self) -> str:
        return ICMP_NAMES.get(self.type, f"type-#{self.type}")

    @property
    def is_error(self) -> bool:
        return self.type in (3, 4, 5, 11, 12)


@dataclass
class TcpInfo:
    """A TCP segment. ``window`` is the raw 16-bit field; ``data_offset`` counts 32-bit words.

    ``rel_seq``/``rel_ack`` are relative to each direction's ISN (filled in by
    :func:`read_pcap`/:func:`merge`); ``shown_seq``/``shown_ack`` are the numbers
    tcpdump would print for this segment at its capture point.
    """

    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    urg: int
    data_offset: int
    options: list[tuple[int, bytes]]
    payload: bytes
    length: int
    src: str = ""
    dst: str = ""
    rel_seq: int | None = None
    rel_ack: int | None = None
    shown_seq: int | None = None
    shown_ack: int | None = None
    sack_base: int = 0
    options_malformed: bool = False

    @property
    def conn(self) -> ConnKey:
        """The connection, the same for both directions: the two (address, port) ends, sorted."""
        a, b = (self.src, self.sport), (self.dst, self.dport)
        return (a, b) if a <= b else (b, a)

    @property
    def flag_str(self) -> str:
        """tcpdump's notation: "S", "S.", ".", "P.", "F.", "R", "R.", "P.U", "FP."; "none" if no flag."""
        return "".join(letter for bit, letter in _FLAG_LETTERS if self.flags & bit) or "none"

    def has(self, bits: int) -> bool:
        """True if every bit of ``bits`` is set (e.g. ``t.has(SYN | ACK)``)."""
        return self.flags & bits == bits

    @property
    def is_syn(self) -> bool:
        """A SYN without ACK: the opening segment of a connection."""
        return self.flags & (SYN | ACK) == SYN

    @property
    def is_synack(self) -> bool:
        return self.flags & (SYN | ACK) == SYN | ACK

    @property
    def is_rst(self) -> bool:
        return bool(self.flags & RST)

    @property
    def is_fin(self) -> bool:
        return bool(self.flags & FIN)

    @property
    def seg_len(self) -> int:
        """Sequence space the segment uses: payload bytes, plus one each for SYN and FIN."""
        return self.length + bool(self.flags & SYN) + bool(self.flags & FIN)

    @property
    def next_seq(self) -> int:
        return (self.seq + self.seg_len) & 0xFFFFFFFF

    def option(self, kind: int) -> bytes | None:
        for k, value in self.options:
            if k == kind:
                return value
        return None

    @property
    def option_kinds(self) -> list[int]:
        return [k for k, _ in self.options]

    @property
    def mss(self) -> int | None:
        value = self.option(2)
        return struct.unpack("!H", value)[0] if value is not None and len(value) == 2 else None

    @property
    def wscale(self) -> int | None:
        value = self.option(3)
        return value[0] if value is not None and len(value) == 1 else None

    @property
    def sack_ok(self) -> bool:
        return self.option(4) is not None

    @property
    def ts_val(self) -> int | None:
        value = self.option(8)
        return struct.unpack("!II", value)[0] if value is not None and len(value) == 8 else None

    @property
    def ts_ecr(self) -> int | None:
        value = self.option(8)
        return struct.unpack("!II", value)[1] if value is not None and len(value) == 8 else None

    @property
    def sack_blocks(self) -> list[tuple[int, int]]:
        value = self.option(5) or b""
        return [struct.unpack("!II", value[i : i + 8]) for i in range(0, len(value) - 7, 8)]


@dataclass
class UdpInfo:
    sport: int
    dport: int
    length: int
    payload: bytes


@dataclass
class DnsInfo:
    """A DNS message. Names are written without the trailing dot ("www.a.shifen.com")."""

    id: int
    qr: int
    opcode: int
    aa: bool
    tc: bool
    rd: bool
    ra: bool
    rcode: int
    questions: list[tuple[str, str]]
    answers: list[tuple[str, str, str, int]]
    qdcount: int
    ancount: int
    nscount: int
    arcount: int
    size: int
    ad: bool = False
    cd: bool = False
    flags_word: int = 0

    @property
    def is_response(self) -> bool:
        return bool(self.qr)

    def values(self, rtype: str) -> list[str]:
        """The values of the answers of one type, in order (e.g. ``values("A")``)."""
        return [value for _, t, value, _ in self.answers if t == rtype]


@dataclass
class HttpInfo:
    """The start of an HTTP message found at the start of a TCP payload."""

    kind: str  # "request" | "response"
    start_line: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    complete_headers: bool = True

    @property
    def method(self) -> str | None:
        return self.start_line.split(" ", 1)[0] if self.kind == "request" else None

    @property
    def uri(self) -> str | None:
        parts = self.start_line.split(" ")
        return parts[1] if self.kind == "request" and len(parts) >= 2 else None

    @property
    def version(self) -> str:
        parts = self.start_line.split(" ")
        return parts[-1] if self.kind == "request" else parts[0]

    @property
    def status(self) -> int | None:
        parts = self.start_line.split(" ")
        if self.kind == "response" and len(parts) >= 2 and parts[1].isdigit():
            return int(parts[1])
        return None

    def header(self, name: str) -> str | None:
        """The first header of that name (case-insensitive), or None."""
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None


@dataclass
class Packet:
    """One captured frame at one capture point, decoded as far as we can."""

    no: int
    time: float
    point: str
    length: int
    eth_src: str
    eth_dst: str
    eth_type: int
    arp: ArpInfo | None = None
    ip: IpInfo | None = None
    icmp: IcmpInfo | None = None
    tcp: TcpInfo | None = None
    udp: UdpInfo | None = None
    dns: DnsInfo | None = None
    http: HttpInfo | None = None
    note: str | None = None
    data: bytes = field(default=b"", repr=False)

    @property
    def src(self) -> str | None:
        """The sender's IP address (for ARP, the sender protocol address)."""
        return self.ip.src if self.ip else (self.arp.spa if self.arp else None)

    @property
    def dst(self) -> str | None:
        return self.ip.dst if self.ip else (self.arp.tpa if self.arp else None)

    @property
    def sport(self) -> int | None:
        return self.tcp.sport if self.tcp else (self.udp.sport if self.udp else None)

    @property
    def dport(self) -> int | None:
        return self.tcp.dport if self.tcp else (self.udp.dport if self.udp else None)

    @property
    def proto(self) -> str:
        """The highest layer decoded: dns, http, tcp, udp, icmp, arp, ip, ip6 or eth."""
        for name in ("dns", "http", "tcp", "udp", "icmp", "arp", "ip"):
            if getattr(self, name) is not None:
                return name
        return "ip6" if self.eth_type == ETH_IPV6 else "eth"

    @property
    def is_broadcast(self) -> bool:
        return self.eth_dst == "ff:ff:ff:ff:ff:ff"

    def summary(self, link: bool = False, ip_header: bool = False) -> str:
        """The packet as ``tcpdump -nt`` prints it (``link``: as with -e; ``ip_header``: -v's IP fields)."""
        return render(self, link=link, ip_header=ip_header)

    def line(self, t0: float | None = None, point_width: int = 0) -> str:
        """``no  time  point  summary``: time relative to ``t0`` if given, else epoch seconds."""
        when = f"{self.time - t0:10.6f}" if t0 is not None else f"{self.time:.6f}"
        return f"{self.no:>4}  {when}  {self.point:<{point_width}}  {self.summary()}"


def listing(packets: Sequence[Packet], t0: float | None = None) -> str:
    """A numbered listing of packets, times relative to ``t0`` (default: the first packet)."""
    if not packets:
        return ""
    start = packets[0].time if t0 is None else t0
    width = max(len(p.point) for p in packets)
    return "\n".join(p.line(start, width) for p in packets)


# ---------------------------------------------------------------- reading


def read_pcap(path: str | Path, point: str) -> list[Packet]:
    """Decode a pcap written by ``tcpdump -w`` on an Ethernet interface; packets numbered 1..N.

    A capture cut short (tcpdump killed mid-write) keeps the packets before the
    torn record. Relative TCP numbers are computed over the whole file.
    """
    p = Path(path)
    try:
        with p.open("rb") as f:
            packets = [decode_frame(frame, ts, point, i + 1, wirelen)
                       for i, (ts, frame, wirelen) in enumerate(_records(f, p))]
    except FileNotFoundError:
        raise PcapError(f"{p}: no such capture file",
                        "was the capture started, and did it stop cleanly?") from None
    except IsADirectoryError:
        raise PcapError(f"{p}: is a directory, not a capture file") from None
    number_tcp(packets)
    return packets


def merge(captures: Mapping[str, str | Path]) -> list[Packet]:
    """Read several captures (point → pcap path) into one listing sorted by time, numbered 1..N.

    Relative TCP numbers are computed per point, so a segment seen at two
    points shows the same numbers tcpdump would show at each.
    """
    tagged: list[tuple[float, int, int, Packet]] = []
    for order, (point, path) in enumerate(captures.items()):
        for index, packet in enumerate(read_pcap(path, point)):
            tagged.append((packet.time, order, index, packet))
    tagged.sort(key=lambda item: item[:3])
    packets = [item[3] for item in tagged]
    for no, packet in enumerate(packets, 1):
        packet.no = no
    return packets


def _records(f: BinaryIO, path: Path) -> Iterator[tuple[float, bytes, int]]:
    """(timestamp, frame bytes, length on the wire) for each record of a pcap or pcapng file."""
    header = f.read(24)
    if len(header) < 4:
        raise PcapError(f"{path}: empty capture file ({len(header)} bytes): tcpdump never wrote its header",
                        "start tcpdump with -w and wait for 'listening on' before sending traffic")
    magic = header[:4]
    if magic == b"\x0a\x0d\x0d\x0a":
        f.seek(0)
        yield from _pcapng_records(f, path)
        return
    formats = {b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
               b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9)}
    if magic not in formats:
        raise PcapError(f"{path}: not a pcap file (magic {magic.hex()})", "give a file written by tcpdump -w")
    if len(header) < 24:
        raise PcapError(f"{path}: truncated pcap header ({len(header)} of 24 bytes)")
    endian, unit = formats[magic]
    linktype = struct.unpack(endian + "I", header[20:24])[0] & 0x0FFFFFFF
    _require_ethernet(linktype, path)
    record = struct.Struct(endian + "IIII")
    while True:
        head = f.read(16)
        if len(head) < 16:
            return  # end of file, or a record header torn by a killed tcpdump
        sec, frac, caplen, wirelen = record.unpack(head)
        frame = f.read(caplen)
        if len(frame) < caplen:
            return
        yield sec + frac * unit, frame, wirelen


def _pcapng_records(f: BinaryIO, path: Path) -> Iterator[tuple[float, bytes, int]]:
    try:
        reader = dpkt.pcapng.Reader(f)
    except (ValueError, dpkt.UnpackError) as exc:
        raise PcapError(f"{path}: unreadable pcapng file: {exc}") from None
    _require_ethernet(reader.datalink(), path)
    for ts, frame in reader:
        yield float(ts), bytes(frame), len(frame)


def _require_ethernet(linktype: int, path: Path) -> None:
    if linktype != LINKTYPE_ETHERNET:
        name = _LINKTYPE_NAMES.get(linktype, "unknown")
        raise PcapError(f"{path}: link type {linktype} ({name}) is not supported; "
                        "only Ethernet captures are decoded",
                        "capture on one interface (tcpdump -i eth0 -w FILE), not on -i any")


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
            packet.note = _ipv6_note(payload)
        elif eth_type < 0x0600:
            packet.note = "802.3 frame (not decoded)"
        else:
            packet.note = f"ethertype 0x{eth_type:04x} (not decoded)"
    except (dpkt.UnpackError, struct.error, ValueError, IndexError) as exc:
        packet.note = f"undecodable {_ETH_NAMES.get(eth_type, hex(eth_type))} payload: {exc!r}"
    return packet


def _ipv6_note(payload: bytes) -> str:
    if len(payload) < 40:
        return "truncated IPv6 header"
    src = socket.inet_ntop(socket.AF_INET6, payload[8:24])
    dst = socket.inet_ntop(socket.AF_INET6, payload[24:40])
    return f"IPv6 {src} > {dst}, next header {payload[6]} (not decoded further)"


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
    if ip.frag_offset:
        return  # only the first fragment carries the transport header
    if proto == 6:
        _decode_tcp(packet, body, ip)
    elif proto == 17:
        _decode_udp(packet, body)
    elif proto == 1:
        packet.icmp = _decode_icmp(body, ip.payload_length if total else len(body))


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


# ---------------------------------------------------------------- relative sequence numbers


def number_tcp(packets: Iterable[Packet]) -> None:
    """Fill rel_seq/rel_ack and tcpdump's shown numbers, per capture point, in listing order."""
    isn: dict[str, dict[ConnKey, dict[tuple[str, int], int]]] = {}
    tcpdump_bases: dict[str, dict[ConnKey, dict[tuple[str, int], int]]] = {}
    for packet in packets:
        t = packet.tcp
        if t is None:
            continue
        me, other = (t.src, t.sport), (t.dst, t.dport)
        # ISN-relative numbers: a SYN fixes its direction's ISN; a pure SYN starts a new connection.
        conn_isn = isn.setdefault(packet.point, {}).setdefault(t.conn, {})
        if t.flags & SYN:
            conn_isn[me] = t.seq
            if not t.flags & ACK:
                conn_isn.pop(other, None)
        if t.flags & ACK and other not in conn_isn:
            conn_isn[other] = (t.ack - 1) & 0xFFFFFFFF
        if me not in conn_isn:
            conn_isn[me] = (t.seq - 1) & 0xFFFFFFFF
        t.rel_seq = (t.seq - conn_isn[me]) & 0xFFFFFFFF
        t.rel_ack = (t.ack - conn_isn[other]) & 0xFFFFFFFF if t.flags & ACK else None
        # tcpdump's numbers (print-tcp.c): only segments with ACK use the table; the first one, or any
        # SYN, (re)sets it and is printed absolute.
        table = tcpdump_bases.setdefault(packet.point, {})
        t.shown_seq, t.shown_ack, t.sack_base = t.seq, t.ack, 0
        if t.flags & ACK:
            bases = table.get(t.conn)
            if bases is None or t.flags & SYN:
                table[t.conn] = {me: t.seq, other: (t.ack - 1) & 0xFFFFFFFF}
            else:
                t.shown_seq = (t.seq - bases[me]) & 0xFFFFFFFF
                t.shown_ack = (t.ack - bases[other]) & 0xFFFFFFFF
            t.sack_base = table[t.conn][other]


# ---------------------------------------------------------------- rendering


def render(p: Packet, link: bool = False, ip_header: bool = False) -> str:
    """tcpdump -nt notation for one packet (see the module docstring for the two additions)."""
    prefix = ""
    if link:
        name = _ETH_NAMES.get(p.eth_type, "Unknown")
        prefix = f"{p.eth_src} > {p.eth_dst}, ethertype {name} (0x{p.eth_type:04x}), length {p.length}: "
    if p.arp is not None:
        return prefix + ("" if link else "ARP, ") + _render_arp(p)
    if p.ip is not None:
        head = "" if link else "IP "
        if ip_header:
            head += _render_ip_header(p.ip) + " "
        return prefix + head + _render_ip(p)
    if p.eth_type == ETH_IPV6:
        return prefix + ("" if link else "IP6 ") + f"({p.note}), length {p.length}"
    # Like tcpdump, a frame it cannot name is shown with its link header even without -e.
    name = _ETH_NAMES.get(p.eth_type, "Unknown")
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
    elif t.length > 0 and (t.sport in _HTTP_PORTS or t.dport in _HTTP_PORTS):
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
            parts.append(_TCP_OPTION_NAMES[kind])
        elif kind in _TCP_OPTION_NAMES:
            parts.append(_TCP_OPTION_NAMES[kind] + (f" 0x{value.hex()}" if value else ""))
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
    ops = _DNS_OPS[d.opcode]
    if d.qr:
        out = (f"{d.id}{ops}{_DNS_RCODES.get(d.rcode, f' Resp{d.rcode}')}{'*' if d.aa else ''}"
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
        template = _UNREACH.get(i.code, "{dst} unreachable - #" + str(i.code))
        return template.format(dst=dst, proto=inner.proto if inner else "?", l4="", dport="")
    if i.type == 5:
        template = _REDIRECT.get(i.code, "redirect-#" + str(i.code) + " {dst} to {gw}")
        return template.format(dst=dst, gw=i.gateway)
    if i.type == 13:
        return f"time stamp query id {i.id} seq {i.seq}"
    if i.type == 11:
        return "time exceeded in-transit" if i.code == 0 else "ip reassembly time exceeded"
    return i.name
