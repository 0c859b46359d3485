"""Pure models behind the book's web case (§1.7 DNS, ch.4 squid): what the wire and the logs must show.

The experiments in :mod:`lab.experiments.book.web_case` and :mod:`~lab.experiments.book.squid` take every expected
value from the topology and the run's parameters, never from the book's
figures. The arithmetic and parsing that needs lives here, free of any lab, so
unit tests can pin it down:

- :func:`resolve` follows the topology's DNS records the way dnsmasq answers
  a query: the CNAME chain first, then the target's A records;
- :func:`dns_query_length` is the size of a plain query (no EDNS), the
  ``(31)`` tcpdump prints for ``host -t A www.baidu.com``;
- :func:`tcp_stream` puts one direction of a connection back together from a
  capture, so body bytes can be compared with the file the web server serves;
- :func:`parse_access_log` reads squid's native access.log lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from lab.capture.records import Packet

DNS_HEADER = 12  # id, flags, qdcount, ancount, nscount, arcount: six 16-bit words
DNS_QUESTION_TAIL = 4  # qtype and qclass after the name
# The Via header squid adds (RFC 9110 §7.6.3): protocol version, its visible_hostname, and the product.
VIA = re.compile(r"^1\.[01] \S+ \(squid/[\d.]+\)$")


@dataclass(frozen=True)
class Record:
    """One DNS record as the topology states it (name, type, value); names without the trailing dot."""

    name: str
    type: str
    value: str


@dataclass(frozen=True)
class Resolution:
    """What a server holding ``records`` answers for a name: the aliases crossed and the addresses."""

    name: str
    chain: tuple[str, ...]  # CNAME targets in order (www.baidu.com → www.a.shifen.com gives one)
    addresses: tuple[str, ...]  # the A records of the last name, in the topology's order

    @property
    def canonical(self) -> str:
        return self.chain[-1] if self.chain else self.name

    @property
    def answer_count(self) -> int:
        """ancount of the answer: one RR per CNAME crossed plus one per address."""
        return len(self.chain) + len(self.addresses)


def _bare(name: str) -> str:
    return name.rstrip(".").lower()


class RecordLike(Protocol):
    """What :func:`records_of` reads: the topology's DnsRecord has these three."""

    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def value(self) -> str: ...


def records_of(items: Iterable[RecordLike]) -> list[Record]:
    """Records from the topology's ``dns.records`` (anything with name, type and value)."""
    return [Record(_bare(r.name), r.type, _bare(r.value)) for r in items]


def resolve(records: Sequence[Record], name: str, max_chain: int = 8) -> Resolution | None:
    """Follow CNAMEs from ``name`` to A records; None if the records say nothing about ``name``.

    A CNAME loop or a chain longer than ``max_chain`` raises ValueError: no
    server answers that with addresses.
    """
    current = _bare(name)
    chain: list[str] = []
    seen = {current}
    while True:
        target = next((r.value for r in records if r.type == "CNAME" and r.name == current), None)
        if target is None:
            break
        if target in seen or len(chain) >= max_chain:
            raise ValueError(f"CNAME loop or too long a chain from {name}: {' → '.join([*seen, target])}")
        chain.append(target)
        seen.add(target)
        current = target
    addresses = tuple(r.value for r in records if r.type == "A" and r.name == current)
    if not chain and not addresses:
        return None
    return Resolution(_bare(name), tuple(chain), addresses)


def dns_name_length(name: str) -> int:
    """Bytes of a name in a question (no compression): a length byte per label, the labels, the root's 0."""
    labels = [label for label in _bare(name).split(".") if label]
    return sum(1 + len(label) for label in labels) + 1


def dns_query_length(name: str) -> int:
    """Size of a one-question query without EDNS: header, name, type and class (``host``: 31 for www.baidu.com)."""
    return DNS_HEADER + dns_name_length(name) + DNS_QUESTION_TAIL


# ---------------------------------------------------------------- URLs and HTTP


@dataclass(frozen=True)
class Url:
    host: str
    port: int
    path: str


def parse_url(url: str) -> Url:
    """``http://host[:port]/path`` → its parts; raises ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"{url!r} is not an http:// URL with a host")
    path = parts.path or "/"
    return Url(parts.hostname.lower(), parts.port or 80, path + (f"?{parts.query}" if parts.query else ""))


def tcp_stream(packets: Iterable[Packet], src: str, sport: int, dst: str, dport: int) -> bytes:
    """The bytes one side sent on one connection, in sequence order, each byte once.

    Retransmissions and overlaps are dropped by sequence number; a hole (a
    segment the capture missed) ends the stream there, so a short result
    shows up as a short body rather than as bytes glued out of order.
    """
    segments: dict[int, bytes] = {}
    for p in packets:
        t = p.tcp
        if t is None or p.src != src or p.dst != dst or t.sport != sport or t.dport != dport or not t.payload:
            continue
        offset = t.rel_seq if t.rel_seq is not None else t.seq
        if len(t.payload) > len(segments.get(offset, b"")):
            segments[offset] = t.payload
    if not segments:
        return b""
    out = bytearray()
    start = min(segments)
    for offset in sorted(segments):
        end = start + len(out)
        if offset > end:
            break  # a hole
        out += segments[offset][end - offset:]
    return bytes(out)


def split_http(message: bytes) -> tuple[bytes, bytes]:
    """An HTTP message → (head including the blank line, body); no blank line → (message, b"")."""
    head, sep, body = message.partition(b"\r\n\r\n")
    return (head + sep, body) if sep else (message, b"")


def header_value(head: bytes, name: str) -> str | None:
    """The first header ``name`` (case-insensitive) of an HTTP head, or None."""
    for line in head.decode("latin-1").split("\r\n")[1:]:
        key, colon, value = line.partition(":")
        if colon and key.strip().lower() == name.lower():
            return value.strip()
    return None


# ---------------------------------------------------------------- squid's access.log


@dataclass(frozen=True)
class AccessEntry:
    """One line of squid's native access.log format.

    ``time elapsed client code/status bytes method URL user hierarchy/peer type``;
    ``bytes`` is the whole reply squid sent to the client, headers included.
    """

    time: float
    elapsed_ms: int
    client: str
    code: str  # TCP_MISS, TCP_HIT, TCP_MEM_HIT, TCP_DENIED...
    status: int
    bytes: int
    method: str
    url: str
    hierarchy: str  # HIER_DIRECT, HIER_NONE...
    peer: str  # the server squid fetched from (an address), or "-"

    @property
    def from_cache(self) -> bool:
        """The reply came out of squid's cache: a HIT, or a stale copy the server confirmed (304)."""
        return "HIT" in self.code or self.code == "TCP_REFRESH_UNMODIFIED"


def parse_access_log(text: str) -> list[AccessEntry]:
    """Every well-formed line of an access.log; other lines are skipped."""
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 9 or "/" not in fields[3] or "/" not in fields[8]:
            continue
        try:
            code, _, status = fields[3].partition("/")
            hierarchy, _, peer = fields[8].partition("/")
            entries.append(AccessEntry(float(fields[0]), int(fields[1]), fields[2], code, int(status),
                                       int(fields[4]), fields[5], fields[6], hierarchy, peer))
        except ValueError:
            continue
    return entries
