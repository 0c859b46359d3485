"""Cutting a capture into keystrokes, rounds, flights and retransmissions (captures built with dpkt)."""

from __future__ import annotations

import struct

import dpkt
from pcapgen import MAC_A, MAC_B, tcp_frame, tcp_segment

from lab.capture.decode import decode_frame
from lab.capture.pcapfile import number_tcp
from lab.capture.records import Packet
from lab.experiments.book import flows

A, B = "10.0.1.1", "10.0.1.2"  # A sends data (client / sender), B answers
T = dpkt.tcp
ISN_A, ISN_B = 1000, 5000


def build(events: list[tuple[float, str, int, int, int, bytes, int, bytes]]) -> list[Packet]:
    """(time, from, seq offset, ack offset, flags, payload, window, options) → decoded, numbered packets."""
    frames = []
    for t, who, seq, ack, flags, payload, win, opts in events:
        if who == A:
            seg = tcp_segment(40000, 7, ISN_A + seq, ISN_B + ack if flags & T.TH_ACK else 0, flags, win, opts,
                              payload)
            frames.append((t, tcp_frame(A, B, seg)))
        else:
            seg = tcp_segment(7, 40000, ISN_B + seq, ISN_A + ack, flags, win, opts, payload)
            frames.append((t, tcp_frame(B, A, seg, MAC_B, MAC_A)))
    pk = [decode_frame(f, t, "a:eth0", i + 1) for i, (t, f) in enumerate(frames)]
    number_tcp(pk)
    return pk


def handshake(win_a: int = 1460, win_b: int = 65160) -> list[tuple[float, str, int, int, int, bytes, int, bytes]]:
    return [(0.0, A, 0, 0, T.TH_SYN, b"", win_a, b""),
            (0.001, B, 0, 1, T.TH_SYN | T.TH_ACK, b"", win_b, b""),
            (0.002, A, 1, 1, T.TH_ACK, b"", win_a, b"")]


PA, ACK_ = T.TH_PUSH | T.TH_ACK, T.TH_ACK


def sack(left: int, right: int) -> bytes:
    return b"\x01\x01" + struct.pack("!BBII", 5, 10, ISN_A + left, ISN_A + right)


def test_seq_arithmetic_wraps():
    assert flows.seq_before(0xFFFFFFF0, 5)
    assert not flows.seq_before(5, 0xFFFFFFF0)
    assert flows.seq_diff(5, 0xFFFFFFF0) == 21


def test_exchanges_cut_at_each_keystroke_and_stop_at_the_close():
    pk = build(handshake() + [
        (1.0, A, 1, 1, PA, b"a", 502, b""), (1.0001, B, 1, 2, ACK_, b"", 502, b""),
        (1.002, B, 1, 2, PA, b"a", 502, b""), (1.0021, A, 2, 2, ACK_, b"", 502, b""),
        (1.1, A, 2, 2, PA, b"b", 502, b""), (1.1001, B, 2, 3, PA, b"b", 502, b""),
        (1.1002, A, 3, 3, ACK_, b"", 502, b""),
        (1.2, A, 3, 3, T.TH_FIN | T.TH_ACK, b"", 502, b""), (1.2001, B, 3, 4, T.TH_FIN | T.TH_ACK, b"", 502, b""),
    ])
    keys = flows.exchanges(pk, A)
    assert [k.request.no for k in keys] == [4, 8]
    assert [len(k.after) for k in keys] == [3, 2]
    assert flows.is_bare_ack(keys[0].after[0]) and not flows.is_bare_ack(keys[0].after[1])


def test_rounds_group_the_clients_segments_by_the_servers_replies():
    pk = build(handshake() + [
        (1.0, A, 1, 1, PA, b"x" * 10, 502, b""), (1.04, B, 1, 11, ACK_, b"", 502, b""),
        (1.041, A, 11, 1, PA, b"x" * 10, 502, b""), (1.0411, B, 1, 21, PA, b"!", 502, b""),
        (1.05, A, 21, 2, PA, b"x" * 20, 502, b""), (1.0501, B, 2, 41, PA, b"!", 502, b""),
    ])
    rounds = flows.rounds(pk, A, B)
    assert [[p.no for p in r] for r in rounds] == [[4, 6], [8]]


def test_flights_measure_bytes_out_against_the_last_window():
    pk = build(handshake(win_a=65160, win_b=1460) + [
        (1.0, A, 1, 1, ACK_, b"d" * 730, 502, b""),
        (1.0001, A, 731, 1, PA, b"d" * 730, 502, b""),
        (1.001, B, 1, 731, ACK_, b"", 730, b""),
        (1.0011, A, 1461, 1, ACK_, b"d" * 730, 502, b""),   # 1460 out of a window ending at 731 + 730: too much
    ])
    got = [(f.packet.no, f.in_flight, f.window, f.fits) for f in flows.flights(pk, A)]
    assert got == [(4, 730, 1460, True), (5, 1460, 1460, True), (7, 1460, 730, False)]


def test_flights_scale_windows_after_the_syn():
    pk = build(handshake(win_a=65160, win_b=64) + [
        (1.0, B, 1, 1, ACK_, b"", 64, b""),
        (1.1, A, 1, 1, ACK_, b"d" * 1448, 502, b""),
    ])
    assert [(f.in_flight, f.window) for f in flows.flights(pk, A, wscale=10)] == [(1448, 65536)]


def test_retransmissions_duplicate_acks_and_fast_retransmit():
    seg = b"d" * 100
    pk = build(handshake(win_a=65160, win_b=65160) + [
        (1.000, A, 1, 1, ACK_, seg, 502, b""),       # 4: bytes 1-100 (lost at the receiver)
        (1.001, A, 101, 1, ACK_, seg, 502, b""),     # 5
        (1.002, A, 201, 1, ACK_, seg, 502, b""),     # 6
        (1.003, B, 1, 1, ACK_, b"", 502, b""),       # 7: repeats the SYN-ACK's ack with data out: duplicate
        (1.004, B, 1, 1, ACK_, b"", 502, sack(101, 201)),  # 8: duplicate with SACK
        (1.005, B, 1, 1, ACK_, b"", 502, sack(101, 301)),  # 9
        (1.006, A, 1, 1, ACK_, seg, 502, b""),       # 10: fast retransmit, 6 ms after the original
        (1.007, B, 1, 301, ACK_, b"", 502, b""),
        (2.0, A, 301, 1, ACK_, seg, 502, b""),       # 12: 13
        (2.5, A, 301, 1, ACK_, seg, 502, b""),       # 13: an RTO retransmission (no duplicate ACK before it)
    ])
    assert [(o.no, r.no) for o, r in flows.retransmissions(pk, A)] == [(4, 10), (12, 13)]
    assert [p.no for p in flows.duplicate_acks(pk, B)] == [7, 8, 9]
    fast = flows.fast_retransmits(pk, A, B, rto=0.2)
    assert [(o.no, d.no, r.no) for o, d, r in fast] == [(4, 9, 10)]
    assert flows.fast_retransmits(pk, A, B, rto=0.005) == []


def test_an_ack_with_nothing_outstanding_is_not_a_duplicate():
    pk = build(handshake() + [(1.0, B, 1, 1, ACK_, b"", 502, b""), (1.1, B, 1, 1, ACK_, b"", 502, b"")])
    assert flows.duplicate_acks(pk, B) == []


def test_stream_holes_find_bytes_the_capture_missed():
    seg = b"d" * 100
    whole = build(handshake() + [(1.0, A, 1, 1, ACK_, seg, 502, b""), (1.1, A, 101, 1, ACK_, seg, 502, b"")])
    assert flows.stream_holes(whole, A) == []
    lossy = build(handshake() + [(1.0, A, 1, 1, ACK_, seg, 502, b""), (1.1, A, 201, 1, ACK_, seg, 502, b"")])
    assert flows.stream_holes(lossy, A) == [(101, 201)]


def test_conversation_and_by_connection():
    pk = build(handshake())
    assert len(flows.conversation(pk, A, B, 7)) == 3
    assert flows.conversation(pk, A, B, 8) == []
    assert list(flows.by_connection(pk)) == [((A, 40000), (B, 7))]


def test_stream_puts_the_bytes_in_sequence_order_each_once_and_stops_at_a_hole() -> None:
    PA = T.TH_PUSH | T.TH_ACK
    pk = build(handshake() + [
        (0.01, B, 1, 1, PA, b"HTTP/", 65160, b""),
        (0.03, B, 10, 1, PA, b"200 OK", 65160, b""),   # arrives before the segment it follows
        (0.02, B, 6, 1, PA, b"1.1 ", 65160, b""),
        (0.04, B, 6, 1, PA, b"1.1 ", 65160, b""),      # a retransmission: counted once
        (0.05, B, 40, 1, PA, b"after a hole", 65160, b"")])
    assert flows.stream(pk, B) == b"HTTP/1.1 200 OK"
    assert flows.stream(pk, A) == b""


def test_opened_in_order_names_connections_by_their_first_syn() -> None:
    first = build(handshake())
    assert [len(c) for c in flows.opened_in_order(first, 7)] == [3]
    assert flows.opened_in_order(first, 8) == []
