"""Read ``struct tcp_info`` (getsockopt TCP_INFO) and print it the way ``ss -tin`` would.

``ss -tin`` run from outside races the connection it watches; the program
that owns the socket can ask the kernel at exactly the moment it cares about
(right after accept, after the last byte). The struct is decoded by hand
from include/uapi/linux/tcp.h: the kernel fills as many bytes as it knows
and says how many, so older kernels simply give fewer fields.
"""

from __future__ import annotations

import socket
import struct

# (name, struct code) in kernel order; offsets follow from the codes (no padding in this layout).
_FIELDS: list[tuple[str, str]] = [
    ("state", "B"), ("ca_state", "B"), ("retransmits", "B"), ("probes", "B"), ("backoff", "B"),
    ("options", "B"), ("wscale", "B"), ("flags", "B"),
    ("rto", "I"), ("ato", "I"), ("snd_mss", "I"), ("rcv_mss", "I"),
    ("unacked", "I"), ("sacked", "I"), ("lost", "I"), ("retrans", "I"), ("fackets", "I"),
    ("last_data_sent", "I"), ("last_ack_sent", "I"), ("last_data_recv", "I"), ("last_ack_recv", "I"),
    ("pmtu", "I"), ("rcv_ssthresh", "I"), ("rtt", "I"), ("rttvar", "I"), ("snd_ssthresh", "I"),
    ("snd_cwnd", "I"), ("advmss", "I"), ("reordering", "I"),
    ("rcv_rtt", "I"), ("rcv_space", "I"), ("total_retrans", "I"),
    ("pacing_rate", "Q"), ("max_pacing_rate", "Q"), ("bytes_acked", "Q"), ("bytes_received", "Q"),
    ("segs_out", "I"), ("segs_in", "I"),
    ("notsent_bytes", "I"), ("min_rtt", "I"), ("data_segs_in", "I"), ("data_segs_out", "I"),
    ("delivery_rate", "Q"), ("busy_time", "Q"), ("rwnd_limited", "Q"), ("sndbuf_limited", "Q"),
    ("delivered", "I"), ("delivered_ce", "I"), ("bytes_sent", "Q"), ("bytes_retrans", "Q"),
    ("dsack_dups", "I"), ("reord_seen", "I"), ("rcv_ooopack", "I"), ("snd_wnd", "I"),
    ("rcv_wnd", "I"), ("rehash", "I"), ("total_rto", "H"), ("total_rto_recoveries", "H"),
    ("total_rto_time", "I"),
]

TCP_STATES = {
    1: "ESTAB", 2: "SYN-SENT", 3: "SYN-RECV", 4: "FIN-WAIT-1", 5: "FIN-WAIT-2", 6: "TIME-WAIT",
    7: "CLOSE", 8: "CLOSE-WAIT", 9: "LAST-ACK", 10: "LISTEN", 11: "CLOSING",
}
CA_STATES = {0: "open", 1: "disorder", 2: "cwr", 3: "recovery", 4: "loss"}
TCP_INFINITE_SSTHRESH = 0x7FFFFFFF
_OPTIONS = [(1, "ts"), (2, "sack"), (4, "wscale"), (8, "ecn")]


def decode(raw: bytes) -> dict[str, int]:
    """Every field that fits in ``raw`` (native byte order, as the kernel wrote it)."""
    info: dict[str, int] = {}
    offset = 0
    for name, code in _FIELDS:
        size = struct.calcsize("=" + code)
        if offset + size > len(raw):
            break
        (info[name],) = struct.unpack_from("=" + code, raw, offset)
        offset += size
    return info


def read(sock: socket.socket) -> dict[str, int]:
    return decode(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 512))


def congestion(sock: socket.socket) -> str:
    """The socket's congestion control algorithm (TCP_CONGESTION), e.g. ``cubic``."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).split(b"\0", 1)[0].decode()


def describe(info: dict[str, int]) -> str:
    """``key=value`` pairs named like ``ss -tin`` prints them (rto/rtt in ms, retrans as now/total)."""
    ssthresh = info.get("snd_ssthresh", TCP_INFINITE_SSTHRESH)
    options = ",".join(name for bit, name in _OPTIONS if info.get("options", 0) & bit) or "-"
    wscale = info.get("wscale", 0)
    parts = [
        f"state={TCP_STATES.get(info.get('state', 0), info.get('state', 0))}",
        f"ca_state={CA_STATES.get(info.get('ca_state', 0), info.get('ca_state', 0))}",
        f"cwnd={info.get('snd_cwnd', 0)}",
        f"ssthresh={'inf' if ssthresh >= TCP_INFINITE_SSTHRESH else ssthresh}",
        f"retrans={info.get('retrans', 0)}/{info.get('total_retrans', 0)}",
        f"rto_ms={info.get('rto', 0) / 1000:g}",
        f"rtt_ms={info.get('rtt', 0) / 1000:g}/{info.get('rttvar', 0) / 1000:g}",
        f"mss={info.get('snd_mss', 0)}",
        f"rcv_mss={info.get('rcv_mss', 0)}",
        f"advmss={info.get('advmss', 0)}",
        f"pmtu={info.get('pmtu', 0)}",
        f"wscale={wscale & 0x0F},{wscale >> 4}",
        f"options={options}",
        f"unacked={info.get('unacked', 0)}",
        f"lost={info.get('lost', 0)}",
        f"sacked={info.get('sacked', 0)}",
    ]
    for name in ("bytes_sent", "bytes_retrans", "bytes_acked", "bytes_received", "segs_out", "segs_in",
                 "snd_wnd", "rcv_wnd", "rcv_space"):
        if name in info:
            parts.append(f"{name}={info[name]}")
    return " ".join(parts)


def line(sock: socket.socket, when: str) -> str:
    """The whole event line: ``tcp_info when=<when> cc=<algo> <describe(...)>``."""
    return f"tcp_info when={when} cc={congestion(sock)} {describe(read(sock))}"
