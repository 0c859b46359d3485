"""A packet sequence diagram in SVG, like the book's handshake figures.

One vertical lifeline per host (IP address), one arrow per packet from sender
to receiver labelled the way tcpdump prints it, time running down the page
with each packet's offset written on the left. Each arrow links to the
packet's row in the listing (``#pkt-N``) and carries the full summary as a
tooltip.

Changes made during the capture (a fault, an impairment, a cable pulled or plugged back)
are drawn where they happened, as a red line across the lifelines between the packets
before and after. Bare ACKs show their sequence number too (tcpdump leaves it out, which
hides, say, a keepalive probe's seq = snd.nxt − 1).

A packet captured at two points (client side and server side) is drawn once:
the diagram is about what crossed the network, the listing about where it was
seen. Very long captures are cut at ``max_arrows`` and the drawing says how
many packets it left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from lab.capture.records import FIN, RST, SYN, Packet

ROW = 26
TOP = 64
LEFT = 96
LANE = 420
CHAR_PX = 6.4  # monospace 11px
DUPLICATE_WINDOW = 0.5  # seconds within which the same packet at another point is the same packet

_COLOURS = {"rst": "#c62828", "syn": "#1565c0", "fin": "#6a1b9a", "arp": "#757575", "icmp": "#e65100",
            "dns": "#2e7d32", "data": "#212121", "ack": "#455a64", "other": "#455a64"}


def endpoints(p: Packet) -> tuple[str, str] | None:
    """The (sender, receiver) lifelines of a packet: IP addresses, or ARP's protocol addresses."""
    if p.ip is not None:
        return p.ip.src, p.ip.dst
    if p.arp is not None:
        return p.arp.spa, p.arp.tpa
    return None


def identity(p: Packet) -> tuple[object, ...] | None:
    """What makes two captures of one packet the same packet (TTL and MACs change at routers)."""
    if p.arp is not None:
        return ("arp", p.arp.op, p.arp.sha, p.arp.spa, p.arp.tpa)
    if p.ip is None:
        return None
    ip = p.ip
    key: tuple[object, ...] = ("ip", ip.src, ip.dst, ip.id, ip.proto, ip.frag_offset, ip.total_length,
                               ip.flow_label)
    if p.tcp is not None:
        key += (p.tcp.seq, p.tcp.ack, p.tcp.flags, p.tcp.length)
    elif p.udp is not None:  # an IPv6 datagram has no IP id to tell two of the same size apart
        key += (p.udp.sport, p.udp.dport, hash(p.udp.payload))
    elif p.icmp is not None:
        key += (p.icmp.type, p.icmp.code, p.icmp.id, p.icmp.seq, p.icmp.target)
    return key


def unique(packets: Sequence[Packet]) -> tuple[list[Packet], int]:
    """Packets with the copies seen at another point removed; and how many copies were removed.

    A copy is the same packet (see :func:`identity`) at a different capture
    point within half a second. The same packet twice at one point is a
    retransmission and is kept.
    """
    seen: dict[tuple[object, ...], tuple[float, str]] = {}
    kept: list[Packet] = []
    dropped = 0
    for p in packets:
        key = identity(p)
        if key is not None:
            earlier = seen.get(key)
            if earlier is not None and p.time - earlier[0] <= DUPLICATE_WINDOW and p.point != earlier[1]:
                dropped += 1
                continue
            seen[key] = (p.time, p.point)
        kept.append(p)
    return kept, dropped


def label(p: Packet) -> str:
    """tcpdump's summary without the addresses, link header and TCP options (those go in the tooltip)."""
    text = p.summary()
    if p.arp is not None:
        return text.removeprefix("ARP, ")
    t = p.tcp
    if t is not None and t.length == 0 and not t.flags & (SYN | FIN | RST) and ", ack " in text:
        text = text.replace(", ack ", f", seq {t.shown_seq if t.shown_seq is not None else t.seq}, ack ", 1)
    head, sep, rest = text.partition(": ")
    if sep and p.ip is not None:
        text = rest
    start = text.find(", options [")
    if start >= 0:
        end = text.find("]", start)
        text = text[:start] + text[end + 1 :]
    return text


def kind(p: Packet) -> str:
    if p.arp is not None:
        return "arp"
    if p.icmp is not None:
        return "icmp"
    if p.dns is not None:
        return "dns"
    if p.tcp is not None:
        if p.tcp.flags & RST:
            return "rst"
        if p.tcp.flags & SYN:
            return "syn"
        if p.tcp.flags & FIN:
            return "fin"
        return "data" if p.tcp.length else "ack"
    return "other"


def sequence_svg(packets: Sequence[Packet], names: dict[str, str] | None = None, max_arrows: int = 80,
                 link_rows: bool = True, events: Sequence[tuple[float, str]] = ()) -> str:
    """The diagram as an ``<svg>`` element; ``names`` maps IP addresses to host names for the headings;
    ``events`` are ``(time, what)`` changes drawn where they happened among the packets."""
    names = names or {}
    drawn, duplicates = unique(packets)
    drawable = [p for p in drawn if endpoints(p) is not None]
    not_ip = len(drawn) - len(drawable)
    shown = drawable[:max_arrows]
    left_out = len(drawable) - len(shown)
    lanes: list[str] = []
    for p in shown:
        ends = endpoints(p)
        assert ends is not None
        for address in ends:
            if address not in lanes:
                lanes.append(address)
    if not shown:
        return ('<svg xmlns="http://www.w3.org/2000/svg" width="420" height="40" role="img" class="seq">'
                '<text x="10" y="24" font-family="sans-serif" font-size="13">'
                "no IP or ARP packets to draw</text></svg>")
    x = {address: float(LEFT + 80 + i * LANE) for i, address in enumerate(lanes)}
    width = LEFT + 80 + (len(lanes) - 1) * LANE + 120
    notes = _notes(left_out, duplicates, not_ip)
    t0 = shown[0].time
    rows = _rows(shown, [e for e in events if t0 <= e[0] <= shown[-1].time])
    height = TOP + len(rows) * ROW + 30 + 18 * len(notes)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" class="seq" font-family="sans-serif">',
        "<defs>",
    ]
    for name, colour in _COLOURS.items():
        out.append(f'<marker id="arrow-{name}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
                   f'markerHeight="7" orient="auto-start-reverse">'
                   f'<path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>')
    out.append("</defs>")
    out.append(f'<text x="{LEFT - 8}" y="{TOP - 30}" font-size="11" text-anchor="end" fill="#555">'
               "time (s)</text>")
    bottom = TOP + len(rows) * ROW
    for address in lanes:
        cx = x[address]
        title = names.get(address)
        out.append(f'<text x="{cx}" y="{TOP - 36}" font-size="13" font-weight="bold" text-anchor="middle">'
                   f"{escape(title or address)}</text>")
        if title:
            out.append(f'<text x="{cx}" y="{TOP - 20}" font-size="11" text-anchor="middle" fill="#555">'
                       f"{escape(address)}</text>")
        out.append(f'<line x1="{cx}" y1="{TOP - 12}" x2="{cx}" y2="{bottom}" stroke="#9e9e9e" '
                   'stroke-dasharray="4 3"/>')
    for row, item in enumerate(rows):
        if isinstance(item, Packet):
            out.append(_arrow(item, row, x, t0, link_rows))
        else:
            out.append(_event(item, row, x, t0))
    for i, note in enumerate(notes):
        out.append(f'<text x="{LEFT}" y="{bottom + 24 + 18 * i}" font-size="12" fill="#555">'
                   f"{escape(note)}</text>")
    out.append("</svg>")
    return "\n".join(out)


def _rows(shown: Sequence[Packet], events: Sequence[tuple[float, str]]) -> list[Packet | tuple[float, str]]:
    """Packets and changes in time order (a change made at a packet's time goes before it)."""
    rows: list[Packet | tuple[float, str]] = []
    pending = sorted(events)
    for p in shown:
        while pending and pending[0][0] <= p.time:
            rows.append(pending.pop(0))
        rows.append(p)
    return rows + pending


def _event(event: tuple[float, str], row: int, x: dict[str, float], t0: float) -> str:
    when, what = event
    y = TOP + row * ROW + 14
    left, right = min(x.values()) - 40, max(x.values()) + 40
    return (f'<g class="change"><title>{escape(what)}</title>'
            f'<text x="{LEFT - 8}" y="{y + 4}" font-size="11" text-anchor="end" fill="#c62828">{when - t0:.6f}</text>'
            f'<line x1="{left}" y1="{y}" x2="{right}" y2="{y}" stroke="#c62828" stroke-width="1.2" '
            f'stroke-dasharray="6 3"/>'
            f'<text x="{left + 4}" y="{y - 4}" font-size="11" fill="#c62828">{escape(what)}</text></g>')


def _arrow(p: Packet, row: int, x: dict[str, float], t0: float, link_rows: bool) -> str:
    ends = endpoints(p)
    assert ends is not None
    src, dst = ends
    y = TOP + row * ROW + 14
    colour = _COLOURS[kind(p)]
    x1, x2 = x[src], x[dst]
    dash = ' stroke-dasharray="5 3"' if p.arp is not None or p.is_broadcast else ""
    parts = [f'<g class="pkt pkt-{kind(p)}"><title>{escape(f"#{p.no} {p.point}: {p.summary()}")}</title>',
             f'<text x="{LEFT - 8}" y="{y + 4}" font-size="11" text-anchor="end" fill="#555">'
             f"{p.time - t0:.6f}</text>",
             f'<text x="{LEFT + 4}" y="{y + 4}" font-size="10" fill="#999">#{p.no}</text>']
    text = label(p)
    if x1 == x2:  # to itself (loopback): a small loop
        parts.append(f'<path d="M{x1},{y - 4} h 40 v 10 h -40" fill="none" stroke="{colour}" '
                     f'stroke-width="1.4" marker-end="url(#arrow-{kind(p)})"{dash}/>')
        room = LANE - 60.0
        tx, anchor = x1 + 46, "start"
    else:
        parts.append(f'<line x1="{x1}" y1="{y - 4}" x2="{x2}" y2="{y + 4}" stroke="{colour}" '
                     f'stroke-width="1.4" marker-end="url(#arrow-{kind(p)})"{dash}/>')
        room = abs(x2 - x1) - 16
        tx, anchor = (x1 + x2) / 2, "middle"
    limit = max(int(room / CHAR_PX), 8)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    parts.append(f'<text x="{tx}" y="{y - 7}" font-size="11" font-family="monospace" text-anchor="{anchor}" '
                 f'fill="{colour}">{escape(text)}</text>')
    parts.append("</g>")
    group = "".join(parts)
    return f'<a href="#pkt-{p.no}">{group}</a>' if link_rows else group


def _notes(left_out: int, duplicates: int, not_ip: int) -> list[str]:
    notes = []
    if left_out:
        notes.append(f"… {left_out} more packets not drawn (see the listing)")
    if duplicates:
        notes.append(f"{duplicates} copies of packets seen at a second capture point are drawn once")
    if not_ip:
        notes.append(f"{not_ip} non-IP frames not drawn")
    return notes
