"""Models of the IPv4 layer the ch.1–2 expectations are computed from (no I/O: unit-tested).

Each function answers a question the book answers with a number in its text —
"how long is the SYN's IP datagram", "where does the second fragment start",
"when does the router give up on ARP" — from the parameters an experiment
runs with, so changing a parameter changes what is expected.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IP_HEADER = 20  # bytes, no options (IHL 5): what Linux sends
TCP_HEADER = 20
ICMP_ECHO_HEADER = 8
UDP_HEADER = 8


@dataclass(frozen=True)
class Fragment:
    """One IPv4 fragment as it appears on the wire."""

    offset: int  # bytes into the original payload (a multiple of 8)
    total_length: int  # the IP header's total length field
    mf: bool  # "more fragments"

    @property
    def offset_units(self) -> int:
        """The 13-bit fragment offset field: the offset in 8-byte units (1480 bytes → 185)."""
        return self.offset // 8


def fragment_plan(payload: int, mtu: int, header: int = IP_HEADER) -> list[Fragment]:
    """How a datagram carrying ``payload`` bytes (the L4 header included) is cut to fit ``mtu``.

    Every fragment but the last carries the largest multiple of 8 bytes that
    fits in ``mtu - header`` (RFC 791: offsets count 8-byte blocks), so a
    1481-byte ICMP message (ping -s 1473) on a 1500-byte link becomes 1480 + 1
    bytes: total lengths 1500 and 21, the second at offset 1480 (field 185).
    A datagram that fits is one piece without MF — not a fragment at all.
    """
    if payload < 0:
        raise ValueError(f"payload {payload} < 0")
    room = (mtu - header) // 8 * 8
    if room <= 0:
        raise ValueError(f"mtu {mtu} leaves no room for data after a {header}-byte header")
    if payload + header <= mtu:
        return [Fragment(0, payload + header, False)]
    pieces = []
    offset = 0
    while offset < payload:
        size = min(room, payload - offset)
        pieces.append(Fragment(offset, size + header, offset + size < payload))
        offset += size
    return pieces


def syn_options_length(timestamps: bool, sack: bool, window_scaling: bool) -> int:
    """Bytes of TCP options Linux puts in a SYN (tcp_options_write's layout, padded to 32 bits).

    MSS (4) always; timestamps take 10 bytes and carry sackOK (2) in front of
    them, or two NOPs without SACK; window scale is NOP + 3 bytes; SACK without
    timestamps is NOP NOP sackOK. Defaults give 20: mss, sackOK, TS, nop, wscale.
    """
    length = 4
    if timestamps:
        length += 12
    elif sack:
        length += 4
    if window_scaling:
        length += 4
    return length


def syn_datagram_length(timestamps: bool, sack: bool, window_scaling: bool) -> int:
    """Total length of the IPv4 datagram carrying a SYN: 60 with the defaults, as in the book."""
    return IP_HEADER + TCP_HEADER + syn_options_length(timestamps, sack, window_scaling)


def arp_failure_time(mcast_solicit: int, app_solicit: int, retrans_ms: int) -> tuple[list[float], float]:
    """When a router's ARP requests for an absent neighbour leave, and when it gives up.

    A new (INCOMPLETE) entry sends its first request at once, then one every
    ``retrans_time_ms``; after ``mcast_solicit + app_solicit`` requests and one
    more retrans interval it is FAILED, and each packet queued on it is answered
    with ICMP host unreachable (3/1). Defaults (3, 0, 1000 ms): 0, 1, 2 s, fail at 3 s.
    """
    probes = mcast_solicit + app_solicit
    if probes < 1:
        raise ValueError("mcast_solicit + app_solicit must be at least 1")
    step = retrans_ms / 1000
    return [i * step for i in range(probes)], probes * step


def host_in_network(address_with_prefix: str, host: int) -> str:
    """The ``host``-th address of the network ``address_with_prefix`` belongs to (10.0.1.10/24, 99 → 10.0.1.99)."""
    network = ipaddress.IPv4Interface(address_with_prefix).network
    if not 0 < host < network.num_addresses - 1:
        raise ValueError(f"host number {host} is outside {network} (1..{network.num_addresses - 2})")
    return str(network.network_address + host)
