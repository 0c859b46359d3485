"""The kernel's TCP rules the §3.2–§3.9 and §5.11 experiments are checked against (pure: unit-tested).

Each function states one rule of Linux 6.x in the kernel's own terms, so an
experiment can compute what it expects from its parameters and from sysctls
read in the node, instead of copying figures from the catalogue:

- which options a SYN carries, in which order and padding (``tcp_options_write``);
- the window scale and the unscaled window a SYN and a SYN-ACK advertise
  (``tcp_select_initial_window``, ``tcp_openreq_init_rwin``);
- when a retransmitting connection gives up (``tcp_model_timeout``) and when
  its segment leaves (RTO doubling after a tail loss probe);
- when a restarted server may bind a port its old connection holds in TIME_WAIT.
"""

from __future__ import annotations

# Option kinds (RFC 793, 1323/7323, 2018).
NOP, MSS, WSCALE, SACK_PERM, TIMESTAMP = 1, 2, 3, 4, 8
TCP_TIMEWAIT_LEN = 60.0  # seconds; a kernel constant (include/net/tcp.h), not a sysctl
TCPOLEN_TSTAMP_ALIGNED = 12  # the timestamp option with its two NOPs
TCP_MAX_WSCALE = 14
MAX_UNSCALED_WINDOW = 65535  # a SYN's window is never scaled (RFC 7323 §2.2)
TCP_RTO_MIN = 0.2  # seconds: the rto_base of tcp_model_timeout, fixed in the kernel
TCP_RTO_MAX = 120.0  # seconds: default of net.ipv4.tcp_rto_max_ms
IPV4_TCP_HEADERS = 40  # 20 bytes IPv4 + 20 bytes TCP, without options
IPV4_MAX_PMTU = 65535
IPV6_TCP_HEADERS = 60  # 40 bytes IPv6 + 20 bytes TCP
IPV6_MAX_PMTU = 65535 + 40  # IP6_MAX_MTU: a 16-bit payload length plus the fixed header


def syn_option_kinds(sack: bool, timestamps: bool, window_scaling: bool) -> list[int]:
    """The option kinds of a Linux SYN, NOPs included, in the order ``tcp_options_write`` lays them out.

    MSS always comes first. SACK-permitted shares a 32-bit word with the
    timestamp when both are on (``sackOK,TS``); alone, each is padded by two
    NOPs in front. Window scale is always ``NOP, WS``.
    """
    kinds = [MSS]
    if timestamps:
        kinds += [SACK_PERM, TIMESTAMP] if sack else [NOP, NOP, TIMESTAMP]
    elif sack:
        kinds += [NOP, NOP, SACK_PERM]
    if window_scaling:
        kinds += [NOP, WSCALE]
    return kinds


def option_bytes(kinds: list[int]) -> int:
    """Bytes those options take on the wire (NOP 1, MSS 4, WS 3, SACK-permitted 2, TS 10)."""
    size = {NOP: 1, MSS: 4, WSCALE: 3, SACK_PERM: 2, TIMESTAMP: 10}
    return sum(size[k] for k in kinds)


def data_offset(kinds: list[int]) -> int:
    """The TCP header length in 32-bit words for a segment carrying those options."""
    return 5 + (option_bytes(kinds) + 3) // 4


def mss_for_mtu(mtu: int, family: int = 4) -> int:
    """The MSS a host advertises on a device: MTU minus the IP and TCP headers.

    The path MTU is capped at IPv4's 65535, so lo's 65536 gives 65495; IPv6's headers are 60 bytes
    and its cap is 65575, so lo gives 65476 there.
    """
    if family == 6:
        return min(mtu, IPV6_MAX_PMTU) - IPV6_TCP_HEADERS
    return min(mtu, IPV4_MAX_PMTU) - IPV4_TCP_HEADERS


def window_scale(tcp_rmem_max: int, rmem_max: int) -> int:
    """The wscale a SYN offers: clamp(ilog2(max(tcp_rmem[2], net.core.rmem_max)) - 15, 0, 14).

    The kernel sizes the scale for the largest receive buffer the socket could
    ever grow to, so a host tuned for fast links (big tcp_rmem[2] or rmem_max)
    offers a bigger scale than vanilla defaults (6 MB → 7). A socket whose
    SO_RCVBUF was set before connect/listen is sized from that buffer instead.
    """
    space = max(tcp_rmem_max, rmem_max)
    return max(0, min(space.bit_length() - 1 - 15, TCP_MAX_WSCALE))


def initial_window(rcvbuf: int, unit: int) -> int:
    """The unscaled window a SYN or SYN-ACK advertises (``tcp_select_initial_window``).

    The socket offers what its receive buffer (``tcp_rmem[1]`` until someone
    sets SO_RCVBUF) holds for data: half of it, with the default
    ``scaling_ratio`` of 6.x (``tcp_adv_win_scale=1`` before). That space is
    rounded down to a multiple of ``unit`` and cut to the 16-bit field. With
    the default 128 KiB buffer that is ⌊65535/unit⌋ × unit, except when the
    unit divides 65536 (a 16384-byte unit offers 65535).
    """
    space = rcvbuf // 2
    if space > unit:
        space = space // unit * unit
    return min(space, MAX_UNSCALED_WINDOW)


def syn_window(mss: int, rcvbuf: int) -> int:
    """A SYN's window: :func:`initial_window` in units of the MSS it advertises."""
    return initial_window(rcvbuf, mss)


def synack_window(mss: int, timestamps: bool, rcvbuf: int) -> int:
    """A SYN-ACK's window: in units of the MSS less the 12-byte timestamp option when timestamps are on."""
    return initial_window(rcvbuf, mss - (TCPOLEN_TSTAMP_ALIGNED if timestamps else 0))


def reuseaddr_restart_ok(old_reuseaddr: bool, new_reuseaddr: bool) -> bool:
    """May a new listener bind the port its predecessor's connection holds in TIME_WAIT?

    Only when both set SO_REUSEADDR: the TIME_WAIT socket keeps the old
    socket's ``sk_reuse``, and the bind conflict check wants it on both sides.
    """
    return old_reuseaddr and new_reuseaddr


def give_up_after(retries2: int, rto_base: float = TCP_RTO_MIN, rto_max: float = TCP_RTO_MAX) -> float:
    """``tcp_model_timeout``: how long an established connection retransmits before it gives up.

    It is a time, not a count: the time ``retries2`` doublings of the minimum
    RTO would take, the doublings stopping once the RTO reaches ``rto_max``.
    tcp_retries2=15 gives 924.6 s, the book's "13 to 30 minutes".
    """
    thresh = (int(rto_max / rto_base)).bit_length() - 1  # ilog2(TCP_RTO_MAX / rto_base)
    if retries2 <= thresh:
        return ((2 << retries2) - 1) * rto_base
    return ((2 << thresh) - 1) * rto_base + (retries2 - thresh) * rto_max


def retransmit_schedule(retries2: int, rto: float = TCP_RTO_MIN, rto_max: float = TCP_RTO_MAX,
                        tlp: bool = True) -> tuple[list[float], float]:
    """When a lost segment is sent (seconds after its first transmission), and when the connection fails.

    ``rto`` is the socket's RTO (on a LAN its floor: the 200 ms minimum plus
    the smoothed RTT, rounded up to a jiffy; ``ss -ti`` shows it). A tail loss
    probe (tcp_early_retrans >= 3) resends the segment after about one RTO;
    the RTO timer then restarts and doubles on every expiry (up to
    ``rto_max``). The clock of :func:`give_up_after` starts at the first RTO
    retransmission (``tp->retrans_stamp``), and the kernel looks at it on each
    later expiry: the first expiry at or past the bound is when it gives up.

    Timers fire late (the timer wheel rounds a timeout up by as much as 1/8),
    so when an expiry falls just short of the bound the kernel may give up
    there, one doubling earlier than this nominal model says.
    """
    bound = give_up_after(retries2, TCP_RTO_MIN, rto_max)
    times = [0.0]
    t = 0.0
    if tlp:
        t = rto
        times.append(t)
    t += rto
    times.append(t)  # the first RTO retransmission starts the clock
    first_rto = t
    while True:
        rto = min(rto * 2, rto_max)
        expiry = t + rto
        if expiry - first_rto >= bound - 1e-9:  # the kernel compares whole milliseconds
            return times, expiry
        times.append(expiry)
        t = expiry
