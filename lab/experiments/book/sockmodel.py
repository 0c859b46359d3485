"""What the kernel does with socket sizes and queues, as small pure functions (no I/O: unit-tested).

The socket-API experiments (§3.7, §5.4, §5.11, §16.2) compute every expected
number from their parameters through these models, so "backlog 3" expects 4
queued connections and "SO_RCVBUF 2500" expects 5000 read back. Each function
names the kernel code it follows (Linux 6.x, net/core/sock.c and net/ipv4/).
"""

from __future__ import annotations

TCP_MSS_DEFAULT = 536  # RFC 1122's default MSS; below it the kernel does not halve the window
TCPOLEN_TSTAMP_ALIGNED = 12  # the timestamp option as sent on every segment (nop, nop, TS)


def segment_size(max_window: int, mss: int) -> int:
    """The payload size of a full segment when the peer's window is small (tcp_bound_to_half_wnd).

    A sender never sends segments larger than half the largest window the peer
    ever offered (so at least two fit in flight), unless that window is at most
    536 bytes, when the whole window is the bound.
    """
    cutoff = max_window // 2 if max_window > TCP_MSS_DEFAULT else max_window
    return min(mss, cutoff) if cutoff else mss


def effective_mss(syn_mss: int, timestamps: bool) -> int:
    """Payload bytes per full segment: the peer's MSS option, less the timestamp option on every segment."""
    return syn_mss - (TCPOLEN_TSTAMP_ALIGNED if timestamps else 0)


def locked_wscale(rcvbuf: int) -> int:
    """The window scale a socket offers when SO_RCVBUF was set before the handshake (tcp_select_initial_window).

    Normally the scale is sized for the largest buffer autotuning could reach
    (max(tcp_rmem[2], rmem_max), rule 0.3 of the catalogue); a locked buffer
    clamps that to the window it can really offer, tcp_full_space(), which
    starts at half the buffer (TCP_DEFAULT_SCALING_RATIO, 6.x). So the scale is
    0 for any buffer under 128 KiB, as in the book's 4096-byte example.
    """
    space = rcvbuf // 2
    return min(max(space.bit_length() - 1 - 15, 0), 14) if space > 0 else 0


def min_window_acks(segments: int, per_window: int) -> int:
    """The fewest ACKs that let ``segments`` full segments through a window holding ``per_window`` of them.

    The sender stops after a window's worth and needs an ACK to go on, so
    every window but the last must be acknowledged before the next leaves.
    """
    if per_window < 1:
        return segments
    return max(-(-segments // per_window) - 1, 0)


def buffer_value(requested: int, minimum: int, cap: int) -> int:
    """What getsockopt(SO_RCVBUF/SO_SNDBUF) returns after setsockopt(``requested``) (sk_setsockopt).

    The value is first capped at ``cap`` (net.core.rmem_max / wmem_max), then
    doubled (room for the kernel's bookkeeping), and never below ``minimum``
    (SOCK_MIN_RCVBUF / SOCK_MIN_SNDBUF; found by asking for 1).
    """
    return max(2 * min(max(requested, 0), cap), minimum)


def accept_queue_limit(backlog: int, somaxconn: int) -> int:
    """Connections the accept queue holds before new SYNs are dropped.

    listen() clamps the backlog to net.core.somaxconn (``ss -ltn`` shows that as
    Send-Q); the queue is full only when it holds *more* than that
    (sk_acceptq_is_full uses ``>``), so one extra fits: min(backlog, somaxconn) + 1.
    """
    return min(backlog, somaxconn) + 1


def syn_queue_limit(backlog: int, somaxconn: int, max_syn_backlog: int, syncookies: int,
                    proven_peer: bool = False) -> int:
    """How many SYN_RECV requests a listener keeps (tcp_conn_request, Linux 4.4+).

    The request queue is "full" past the same bound as the accept queue
    (inet_csk_reqsk_queue_is_full: qlen > min(backlog, somaxconn); kernels
    before a 2025 fix used ``>=``, one fewer). With
    syncookies off, a request from a peer with no tcp_metrics entry is also
    dropped once fewer than a quarter of tcp_max_syn_backlog slots remain.
    With syncookies on, requests past the bound get a cookie instead of an
    entry, so the count of entries stays at the bound.
    """
    limit = accept_queue_limit(backlog, somaxconn)
    if not syncookies and not proven_peer:
        limit = min(limit, max_syn_backlog - (max_syn_backlog >> 2) + 1)
    return limit
