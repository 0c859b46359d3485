"""Reading one TCP connection's packets the way §3.6–3.10 reason about them (no I/O: unit-tested).

The data-flow experiments make claims that are about a conversation, not one
packet: "each keystroke is data, echo, ACK", "the sender never has more bytes
out than the window allows", "a duplicate ACK with SACK came before a fast
retransmission". These helpers cut a capture into those pieces. Sequence
numbers are compared with wrap-around, as the kernel's ``before()``/``after()``
do, so a connection whose ISN is near 2^32 reads the same as any other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from lab.capture.records import ACK, FIN, RST, SYN, Packet, TcpInfo


def seq_before(a: int, b: int) -> bool:
    """``a`` comes before ``b`` in sequence space (the kernel's ``before()``)."""
    return ((a - b) & 0xFFFFFFFF) > 0x7FFFFFFF


def seq_diff(a: int, b: int) -> int:
    """``a - b`` in sequence space, as a signed number."""
    d = (a - b) & 0xFFFFFFFF
    return d - 0x1_0000_0000 if d > 0x7FFFFFFF else d


def seg(p: Packet) -> TcpInfo:
    assert p.tcp is not None
    return p.tcp


def conversation(packets: Iterable[Packet], a: str, b: str, port: int) -> list[Packet]:
    """TCP segments between hosts ``a`` and ``b`` on ``port`` (either side's), in listing order."""
    return [p for p in packets if p.tcp is not None and {p.src, p.dst} == {a, b}
            and port in (p.tcp.sport, p.tcp.dport)]


def by_connection(packets: Iterable[Packet]) -> dict[tuple[tuple[str, int], tuple[str, int]], list[Packet]]:
    """Segments grouped per connection (both directions together), in order of first appearance."""
    out: dict[tuple[tuple[str, int], tuple[str, int]], list[Packet]] = {}
    for p in packets:
        if p.tcp is not None:
            out.setdefault(p.tcp.conn, []).append(p)
    return out


def is_bare_ack(p: Packet) -> bool:
    """ACK only: no payload, no SYN, FIN or RST."""
    t = p.tcp
    return t is not None and t.length == 0 and t.flags & ACK != 0 and not t.flags & (SYN | FIN | RST)


@dataclass
class Exchange:
    """One request segment from one side and what followed it until the next request."""

    request: Packet
    after: list[Packet] = field(default_factory=list)


def exchanges(packets: Sequence[Packet], sender: str) -> list[Exchange]:
    """Cut a conversation at each data segment ``sender`` sends (keystrokes, rounds).

    Everything from one such segment up to (not including) the next is one
    exchange; segments before the first one (the handshake) and the close
    (from the first FIN on) are left out.
    """
    out: list[Exchange] = []
    for p in packets:
        t = seg(p)
        if t.flags & (FIN | RST):
            break
        if p.src == sender and t.length > 0:
            out.append(Exchange(p))
        elif out:
            out[-1].after.append(p)
    return out


@dataclass
class Flight:
    """A data segment and the sender's view when it left: bytes out, and the window it may use."""

    packet: Packet
    in_flight: int
    window: int
    ack: int

    @property
    def fits(self) -> bool:
        return self.in_flight <= self.window


def flights(packets: Sequence[Packet], sender: str, wscale: int = 0) -> list[Flight]:
    """For every new data segment of ``sender``: bytes unacknowledged once it left, and the usable window.

    ``packets`` is one connection as captured at the sender. The window is the
    one the last ACK from the peer advertised (raw field << ``wscale``, the
    scale the peer announced in its SYN). A segment sent before any ACK from the
    peer is measured against the peer's SYN window (never scaled).
    """
    out: list[Flight] = []
    last_ack: int | None = None
    window = 0
    for p in packets:
        t = seg(p)
        if p.src != sender:
            if t.flags & ACK and (last_ack is None or not seq_before(t.ack, last_ack)):
                last_ack = t.ack
                window = t.window if t.flags & SYN else t.window << wscale
            elif t.flags & SYN:
                window = t.window
            continue
        if t.length == 0 or last_ack is None:
            continue
        out.append(Flight(p, seq_diff(t.next_seq, last_ack), window, last_ack))
    return out


def retransmissions(packets: Sequence[Packet], sender: str) -> list[tuple[Packet, Packet]]:
    """(first transmission, retransmission) pairs for ``sender``'s data segments.

    A segment is a retransmission when its first byte was already sent (it
    starts before the highest sequence number sent so far); it is paired with
    the earliest segment that carried that byte.
    """
    out: list[tuple[Packet, Packet]] = []
    sent: list[Packet] = []
    high: int | None = None
    for p in packets:
        t = seg(p)
        if p.src != sender or t.length == 0:
            continue
        if high is not None and seq_before(t.seq, high):
            original = next((s for s in sent if not seq_before(t.seq, seg(s).seq)
                             and seq_before(t.seq, seg(s).next_seq)), None)
            if original is not None:
                out.append((original, p))
        else:
            sent.append(p)
        if high is None or seq_before(high, t.next_seq):
            high = t.next_seq
    return out


def duplicate_acks(packets: Sequence[Packet], receiver: str) -> list[Packet]:
    """Bare ACKs from ``receiver`` that repeat the previous ACK number while data is outstanding (RFC 5681)."""
    out: list[Packet] = []
    previous: int | None = None
    sent: int | None = None  # the highest sequence number the other side has sent
    for p in packets:
        t = seg(p)
        if p.src != receiver:
            if t.seg_len and (sent is None or seq_before(sent, t.next_seq)):
                sent = t.next_seq
            continue
        if not t.flags & ACK:
            continue
        outstanding = sent is not None and seq_before(t.ack, sent)
        if is_bare_ack(p) and previous is not None and t.ack == previous and outstanding:
            out.append(p)
        previous = t.ack
    return out


def fast_retransmits(packets: Sequence[Packet], sender: str, receiver: str,
                     rto: float) -> list[tuple[Packet, Packet, Packet]]:
    """(original, duplicate ACK with SACK, retransmission) for retransmissions sooner than ``rto``.

    A fast retransmission answers duplicate ACKs: the receiver keeps acking the
    hole's start while its SACK blocks report data beyond it, and the sender
    resends the hole before its retransmission timer (at least ``rto`` seconds
    after the original) could have fired.
    """
    dups = [p for p in duplicate_acks(packets, receiver) if seg(p).sack_blocks]
    out = []
    for original, again in retransmissions(packets, sender):
        if again.time - original.time >= rto:
            continue
        hint = next((d for d in reversed(dups) if original.no < d.no < again.no and seg(d).ack == seg(again).seq),
                    None)
        if hint is not None:
            out.append((original, hint, again))
    return out


def rounds(packets: Sequence[Packet], client: str, server: str) -> list[list[Packet]]:
    """The client's data segments grouped by the server's replies: one list per request/reply round.

    A round is every client data segment after one server data segment up to
    the next; the close (from the first FIN on) is left out, and a trailing
    group with no reply is kept only if it holds data.
    """
    out: list[list[Packet]] = [[]]
    for p in packets:
        t = seg(p)
        if t.flags & (FIN | RST):
            break
        if p.src == client and t.length > 0:
            out[-1].append(p)
        elif p.src == server and t.length > 0:
            out.append([])
    return [r for r in out if r]


def stream_holes(packets: Sequence[Packet], sender: str) -> list[tuple[int, int]]:
    """Byte ranges (ISN-relative) of ``sender``'s stream that no captured segment carried.

    A capture taken at the sender must show every byte at least once; a hole
    means the capture lost packets (tcpdump's ring overflowed), and any claim
    about segments or windows read from it would be wrong.
    """
    spans = sorted((t.rel_seq, t.rel_seq + t.length) for p in packets
                   if p.src == sender and (t := seg(p)).length > 0 and t.rel_seq is not None)
    holes: list[tuple[int, int]] = []
    reach: int | None = None
    for start, end in spans:
        if reach is not None and start > reach:
            holes.append((reach, start))
        reach = end if reach is None else max(reach, end)
    return holes


def stream(packets: Sequence[Packet], sender: str) -> bytes:
    """The bytes ``sender`` sent on one connection, in sequence order, each byte once (retransmissions
    and overlaps dropped). A hole (bytes the capture missed) ends the stream there."""
    out = bytearray()
    reach: int | None = None
    for p in sorted((p for p in packets if p.src == sender and p.tcp is not None and p.tcp.payload),
                    key=lambda p: seg(p).rel_seq or 0):
        start = seg(p).rel_seq or 0
        reach = start if reach is None else reach
        if start > reach:
            break
        out += seg(p).payload[reach - start:]
        reach = max(reach, start + len(seg(p).payload))
    return bytes(out)


def opened_in_order(packets: Iterable[Packet], port: int) -> list[list[Packet]]:
    """The connections to or from ``port`` that began in the capture (a SYN), in the order of their first SYN."""
    conns = [c for c in by_connection(p for p in packets if p.tcp is not None and port in (p.sport, p.dport)).values()
             if any(seg(p).flags & SYN and not seg(p).flags & ACK for p in c)]
    return sorted(conns, key=lambda c: next(p.time for p in c if seg(p).flags & SYN))
