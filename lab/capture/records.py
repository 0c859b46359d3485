"""Typed packet records: what a frame decoded into, named as the book names the fields.

A capture is only useful to an experiment if its claims can be read off the packets: "the
SYN-ACK acks ISN+1", "the redirect names the router", "the second fragment starts at 1480".
So every frame becomes a :class:`Packet` with these records (decoded by
:mod:`lab.capture.decode`, numbered by :mod:`lab.capture.pcapfile`, printed by
:mod:`lab.capture.text`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from lab.errors import InputError

# TCP flag bits, as in the header.
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
# tcpdump 4.99's letters, in the order it prints them ("FP.", "P.U", ".EW").
FLAG_LETTERS = ((FIN, "F"), (SYN, "S"), (RST, "R"), (PSH, "P"), (ACK, "."), (URG, "U"), (ECE, "E"),
                 (CWR, "W"))

ETH_IPV4, ETH_ARP, ETH_IPV6 = 0x0800, 0x0806, 0x86DD
ETH_NAMES = {ETH_IPV4: "IPv4", ETH_ARP: "ARP", ETH_IPV6: "IPv6", 0x8100: "802.1Q"}
IP_PROTO_NAMES = {1: "ICMP", 2: "IGMP", 6: "TCP", 17: "UDP", 47: "GRE", 50: "ESP", 58: "ICMPv6", 132: "SCTP"}
LINKTYPE_ETHERNET = 1
LINKTYPE_NAMES = {0: "BSD loopback", 101: "raw IP", 113: "Linux cooked (tcpdump -i any)",
                   276: "Linux cooked v2 (tcpdump -i any)", 127: "802.11 radiotap"}

HTTP_METHODS = (b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"CONNECT", b"TRACE", b"PATCH")
HTTP_PORTS = (80, 8080)  # the ports where tcpdump itself prints "HTTP"

DNS_TYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT", 28: "AAAA",
             33: "SRV", 35: "NAPTR", 41: "OPT", 43: "DS", 46: "RRSIG", 48: "DNSKEY", 64: "SVCB", 65: "HTTPS",
             99: "SPF", 252: "AXFR", 255: "ANY", 257: "CAA"}
DNS_OPS = ["", " inv_q", " stat", " op3", " notify", " update"] + [f" op{i}" for i in range(6, 16)]
DNS_RCODES = {0: "", 1: " FormErr", 2: " ServFail", 3: " NXDomain", 4: " NotImp", 5: " Refused",
               6: " YXDomain", 7: " YXRRSet", 8: " NXRRSet", 9: " NotAuth", 10: " NotZone"}

ICMP_NAMES = {0: "echo reply", 3: "unreachable", 4: "source quench", 5: "redirect", 8: "echo request",
              9: "router advertisement", 10: "router solicitation", 11: "time exceeded",
              12: "parameter problem", 13: "time stamp request", 14: "time stamp reply",
              15: "information request", 16: "information reply", 17: "address mask request",
              18: "address mask reply"}
ICMP6_NAMES = {1: "destination unreachable", 2: "packet too big", 3: "time exceeded in-transit",
               4: "parameter problem", 128: "echo request", 129: "echo reply", 130: "multicast listener query",
               131: "multicast listener report", 132: "multicast listener done", 133: "router solicitation",
               134: "router advertisement", 135: "neighbor solicitation", 136: "neighbor advertisement",
               137: "redirect", 143: "multicast listener report v2"}
ICMP6_UNREACH = {0: "unreachable route", 1: "unreachable prohibited", 2: "beyond scope", 3: "unreachable address",
                 4: "unreachable port", 5: "source address failed policy", 6: "reject route"}
UNREACH = {0: "net {dst} unreachable", 1: "host {dst} unreachable", 2: "{dst} protocol {proto} unreachable",
            3: "{dst} {l4} port {dport} unreachable", 4: "{dst} unreachable - need to frag",
            5: "{dst} unreachable - source route failed", 6: "net {dst} unreachable - unknown",
            7: "host {dst} unreachable - unknown", 8: "{dst} unreachable - source host isolated",
            9: "net {dst} unreachable - admin prohibited", 10: "host {dst} unreachable - admin prohibited",
            11: "net {dst} unreachable - tos prohibited", 12: "host {dst} unreachable - tos prohibited",
            13: "host {dst} unreachable - admin prohibited filter",
            14: "host {dst} unreachable - host precedence violation",
            15: "host {dst} unreachable - precedence cutoff"}
REDIRECT = {0: "redirect {dst} to net {gw}", 1: "redirect {dst} to host {gw}",
             2: "redirect-tos {dst} to net {gw}", 3: "redirect-tos {dst} to host {gw}"}
TCP_OPTION_NAMES = {0: "eol", 1: "nop", 2: "mss", 3: "wscale", 4: "sackOK", 5: "sack", 6: "echo",
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
    """The IP header, either family. ``frag_offset`` is in 8-byte units, as on the wire.

    For IPv6 the same fields in IPv4's names, so that what reads one reads both: ``tos`` is the
    traffic class, ``ttl`` the hop limit, ``proto`` the upper-layer protocol (past the extension
    headers, whose numbers are in ``extensions``), ``ihl`` counts the fixed header and the
    extension headers in 32-bit words, ``total_length`` is 40 + the payload length, and ``id``,
    ``mf`` and ``frag_offset`` come from a Fragment header (``df`` is False: IPv6 has no such bit,
    and routers never fragment).
    """

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
    flow_label: int = 0  # IPv6
    extensions: list[int] = field(default_factory=list)  # IPv6: the extension headers' numbers, in order

    @property
    def hop_limit(self) -> int:
        return self.ttl

    @property
    def has_fragment_header(self) -> bool:
        return 44 in self.extensions

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
    """An ICMP or ICMPv6 message (``version``). ``length`` is the message length (tcpdump's "length").

    ICMPv6's neighbour discovery fills ``target`` (solicitation and advertisement), ``nd_flags``
    (an advertisement's router/solicited/override) and ``lladdr`` (the link-layer address option).
    """

    type: int
    code: int
    length: int
    id: int | None = None
    seq: int | None = None
    gateway: str | None = None
    mtu: int | None = None
    inner: InnerIp | None = None
    version: int = 4
    target: str | None = None
    nd_flags: str = ""
    lladdr: str | None = None

    @property
    def name(self) -> str:
        names = ICMP6_NAMES if self.version == 6 else ICMP_NAMES
        return names.get(self.type, f"type-#{self.type}")

    @property
    def is_error(self) -> bool:
        return self.type < 128 if self.version == 6 else self.type in (3, 4, 5, 11, 12)


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
        return "".join(letter for bit, letter in FLAG_LETTERS if self.flags & bit) or "none"

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
        from lab.capture.text import render  # the notation lives with the rest of the printing

        return render(self, link=link, ip_header=ip_header)

    def line(self, t0: float | None = None, point_width: int = 0) -> str:
        """``no  time  point  summary``: time relative to ``t0`` if given, else epoch seconds."""
        when = f"{self.time - t0:10.6f}" if t0 is not None else f"{self.time:.6f}"
        return f"{self.no:>4}  {when}  {self.point:<{point_width}}  {self.summary()}"
