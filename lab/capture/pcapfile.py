"""Reading pcap and pcapng files into numbered packets, and the relative sequence numbers.

Relative numbers are computed per capture point, as if one tcpdump ran at each point, even
when the listing merges several points. :attr:`TcpInfo.rel_seq` and :attr:`TcpInfo.rel_ack`
are always relative to each direction's ISN (0 for the SYN, 1 for the first data byte), which
is what an assertion wants; ``shown_seq``/``shown_ack`` are what tcpdump prints.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

import dpkt

from lab.capture.decode import decode_frame
from lab.capture.records import ACK, LINKTYPE_ETHERNET, LINKTYPE_NAMES, SYN, ConnKey, Packet, PcapError

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
        name = LINKTYPE_NAMES.get(linktype, "unknown")
        raise PcapError(f"{path}: link type {linktype} ({name}) is not supported; "
                        "only Ethernet captures are decoded",
                        "capture on one interface (tcpdump -i eth0 -w FILE), not on -i any")


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
