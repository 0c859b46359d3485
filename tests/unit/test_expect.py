"""The expectation library: every claim helper passes when it should and fails (with evidence) when not."""

from __future__ import annotations

from typing import Any

import dpkt
import pytest
from pcapgen import MAC_A, MAC_B, arp_frame, dns_query, syn_options, tcp_frame, tcp_segment, udp_frame

from lab.capture.decode import decode_frame
from lab.capture.pcapfile import number_tcp
from lab.capture.records import Packet
from lab.experiments import expect
from lab.experiments.expect import Verdict

A, B = "10.0.1.1", "10.0.1.2"
T = dpkt.tcp


def packets(frames: list[tuple[float, bytes]]) -> list[Packet]:
    pk = [decode_frame(f, t, "client:eth0", i + 1) for i, (t, f) in enumerate(frames)]
    number_tcp(pk)
    return pk


@pytest.fixture
def connect_timeout() -> list[Packet]:
    """An ARP exchange, then a SYN retransmitted at 0, 1, 3, 7 s with no answer, then a refused connect."""
    frames = [(99.0, arp_frame(1, MAC_A, A, "00:00:00:00:00:00", B)),
              (99.001, arp_frame(2, MAC_B, B, MAC_A, A))]
    for t in (100.0, 101.02, 103.05, 107.1):
        frames.append((t, tcp_frame(A, B, tcp_segment(40000, 5000, 1234, 0, T.TH_SYN, 64240, syn_options()))))
    frames.append((108.0, tcp_frame(A, B, tcp_segment(40001, 81, 777, 0, T.TH_SYN, 64240, syn_options()))))
    rst = tcp_segment(81, 40001, 0, 778, T.TH_RST | T.TH_ACK, 0)
    frames.append((108.001, tcp_frame(B, A, rst, MAC_B, MAC_A)))
    frames.append((109.0, udp_frame(A, "10.0.2.53", 5353, 53, dns_query(7, "www.baidu.com"))))
    return packets(frames)


def test_verdict_shape_and_check() -> None:
    v = expect.check("two ARP frames", True, 2, 2, [1, 2])
    assert isinstance(v, Verdict) and v.ok and v.verdict == "pass"
    assert (v.expected, v.observed, v.packets) == ("2", "2", [1, 2])
    assert v.to_dict() == {"description": "two ARP frames", "verdict": "pass", "expected": "2",
                           "observed": "2", "packets": [1, 2]}
    bad = expect.check("x", False, 1.5, [0.5, 2.0])
    assert not bad.ok and bad.verdict == "fail" and bad.expected == "1.5" and bad.observed == "0.5, 2"
    assert str(bad).startswith("FAIL x: expected 1.5; observed 0.5, 2")


def test_guarded_turns_exceptions_into_error_verdicts() -> None:
    def broken() -> Verdict:
        raise KeyError("rtt")

    v = expect.guarded("the RTT is small", broken)
    assert v.verdict == "error" and not v.ok and "KeyError" in v.observed
    assert expect.guarded("fine", lambda: expect.check("fine", True, 1, 1)).ok


def test_queries(connect_timeout: list[Packet]) -> None:
    pk = connect_timeout
    assert expect.nos(expect.syns(pk)) == [3, 4, 5, 6, 7]
    assert expect.nos(expect.tcp(pk, flags="S", dport=5000)) == [3, 4, 5, 6]
    assert expect.nos(expect.tcp(pk, flags=("R", "R."))) == [8]
    assert expect.nos(expect.rsts(pk)) == [8] and expect.synacks(pk) == [] and expect.fins(pk) == []
    assert expect.nos(expect.tcp(pk, src=B)) == [8]
    assert expect.nos(expect.tcp(pk, payload=False, sport=40001)) == [7]
    assert expect.tcp(pk, payload=True) == [] and expect.data(pk) == []
    assert expect.nos(expect.arp(pk)) == [1, 2]
    assert expect.nos(expect.arp(pk, "request")) == [1] and expect.nos(expect.arp(pk, 2)) == [2]
    with pytest.raises(ValueError):
        expect.arp(pk, "gratuitous")
    assert expect.nos(expect.dns(pk)) == [9] and expect.dns(pk, response=True) == []
    assert expect.nos(expect.dns(pk, qtype="A")) == [9] and expect.dns(pk, qtype="AAAA") == []
    assert expect.nos(expect.udp(pk, dport=53)) == [9]
    assert expect.icmp(pk) == []
    assert expect.at(pk, "client") == pk and expect.at(pk, "server:eth0") == []
    assert expect.nos(expect.between(pk, pk[1], pk[4])) == [3, 4]
    assert expect.first(pk, expect.is_tcp(flags="R.")) is pk[7]
    assert expect.gaps(expect.tcp(pk, dport=5000)) == pytest.approx([1.02, 2.03, 4.05])
    assert expect.gaps([1.0, 1.5, 3.0]) == [0.5, 1.5]


def test_count(connect_timeout: list[Packet]) -> None:
    syns = expect.tcp(connect_timeout, flags="S", dport=5000)
    ok = expect.count("the SYN was sent 4 times", syns, 4)
    assert ok.ok and ok.expected == "exactly 4" and ok.packets == [3, 4, 5, 6]
    assert "#3, #4, #5, #6" in ok.observed
    bad = expect.count("the SYN was sent 6 times", syns, 6)
    assert not bad.ok and bad.observed.startswith("4 ") and bad.packets == [3, 4, 5, 6]
    assert expect.count("", syns, range(3, 5)).ok and not expect.count("", syns, range(5, 9)).ok
    assert expect.count("", syns, min=1).ok and not expect.count("", syns, max=3).ok
    assert expect.count("", syns, min=4, max=4).ok
    none = expect.count("no SYN-ACK", expect.synacks(connect_timeout), 0)
    assert none.ok and none.observed == "0" and none.packets == []
    with pytest.raises(ValueError):
        expect.count("", syns)


def test_sequence() -> None:
    c, s = 1000, 5000
    pk = packets([
        (1.0, arp_frame(1, MAC_A, A, "00:00:00:00:00:00", B)),
        (1.1, tcp_frame(A, B, tcp_segment(40000, 80, c, 0, T.TH_SYN, 64240, syn_options()))),
        (1.2, tcp_frame(B, A, tcp_segment(80, 40000, s, c + 1, T.TH_SYN | T.TH_ACK, 65160), MAC_B, MAC_A)),
        (1.3, tcp_frame(A, B, tcp_segment(40000, 80, c + 1, s + 1, T.TH_ACK, 502))),
    ])
    steps = [("SYN", expect.is_tcp(flags="S")), ("SYN-ACK", expect.is_tcp(flags="S.")),
             ("ACK", expect.is_tcp("."))]
    v = expect.sequence("three-way handshake", pk, steps)
    assert v.ok and v.packets == [2, 3, 4] and v.observed == "SYN #2, SYN-ACK #3, ACK #4"
    assert v.expected == "SYN, then SYN-ACK, then ACK"
    backwards = expect.sequence("", pk, [("ACK", expect.is_tcp(".")), ("SYN", expect.is_tcp("S"))])
    assert not backwards.ok and backwards.observed == "ACK #4; no SYN after #4" and backwards.packets == [4]
    missing = expect.sequence("", pk[:3], steps)
    assert not missing.ok and missing.packets == [2, 3] and missing.observed.endswith("no ACK after #3")
    arp_first = expect.sequence("", pk, [("ARP request", expect.is_arp("request")), ("SYN", expect.is_tcp("S"))])
    assert arp_first.ok


def test_gaps_match(connect_timeout: list[Packet]) -> None:
    syns = expect.tcp(connect_timeout, flags="S", dport=5000)
    v = expect.gaps_match("SYN gaps 1, 2, 4 s", syns, [1, 2, 4])
    assert v.ok and v.packets == [3, 4, 5, 6] and "3 gaps" in v.observed
    too_many = expect.gaps_match("two gaps", syns, [1, 2])
    assert not too_many.ok and "3 gaps instead of 2" in too_many.observed
    wrong = expect.gaps_match("", syns, [1, 2, 8])
    assert not wrong.ok and "gap 3 = 4.050 s outside [6.400, 9.600]" in wrong.observed
    assert expect.gaps_match("", [0.0, 1.0, 3.0], [1, 2], rel_tol=0.0).ok
    assert not expect.gaps_match("", [0.0, 1.04], [1], rel_tol=0.0, abs_tol=0.03).ok
    assert expect.gaps_match("", [0.0, 1.04], [1], rel_tol=0.0, abs_tol=0.05).ok
    assert not expect.gaps_match("", [0.0], [1]).ok


def test_timer_tolerance() -> None:
    assert expect.timer_tolerance(32) == pytest.approx((28.8, 36.8))
    assert expect.timer_tolerance(2) == pytest.approx((1.8, 2.2))
    # the catalogue's measurement: 33.8 s where 32 s was expected is fine; +10 % on a short timer is the limit
    assert expect.gaps_match("", [0.0, 33.8], [32], tolerance=expect.timer_tolerance).ok
    assert not expect.gaps_match("", [0.0, 2.3], [2], tolerance=expect.timer_tolerance).ok
    assert "timer tolerance" in expect.gaps_match("", [0.0, 1.0], [1], tolerance=expect.timer_tolerance).expected


def test_every_equals_within(connect_timeout: list[Packet]) -> None:
    syns = expect.tcp(connect_timeout, flags="S", dport=5000)
    same_seq = expect.every("every SYN has the same seq", syns,
                            lambda p: p.tcp is not None and p.tcp.seq == 1234)
    assert same_seq.ok and same_seq.packets == [3, 4, 5, 6]
    not_all = expect.every("all SYNs go to 5000", expect.syns(connect_timeout),
                           lambda p: p.tcp is not None and p.tcp.dport == 5000)
    assert not not_all.ok and not_all.packets == [7] and "1 of 5" in not_all.observed
    assert not expect.every("vacuous", [], lambda p: True).ok
    assert expect.every("vacuous", [], lambda p: True, allow_empty=True).ok
    rst = expect.rsts(connect_timeout)[0]
    assert rst.tcp is not None
    eq = expect.equals("RST acks ISN+1", 778, rst.tcp.ack, [rst])
    assert eq.ok and eq.packets == [8]
    assert not expect.equals("window 0", 0, 5).ok
    assert expect.within("first gap", 0.205, low=0.19).ok
    assert not expect.within("ratio", 2.5, 1.8, 2.2).ok and expect.within("ratio", 2.0, 1.8, 2.2).ok
    assert not expect.within("missing", None, high=1).ok


def test_output_helpers() -> None:
    out = "Trying 10.0.1.2...\ntelnet: Unable to connect to remote host: Connection timed out\n"
    hit = expect.output_contains("", out, "Connection timed out")
    assert hit.ok and hit.observed.startswith("telnet: Unable")
    miss = expect.output_contains("", out, "Connected to")
    assert not miss.ok and "Connection timed out" in miss.observed
    assert expect.output_matches("", "1481 bytes from 10.0.1.2: icmp_seq=1", r"^1481 bytes from").ok
    empty = expect.output_matches("", "", r"bytes from")
    assert not empty.ok and empty.observed == "no output"
    assert expect.exit_code("", 0, 0).ok and not expect.exit_code("", 1, 0).ok
    assert expect.exit_code("", 1, (1, 2)).ok and expect.exit_code("", 1, (1, 2)).expected == "1 or 2"
    assert not expect.exit_code("", None, 0).ok


def test_errno() -> None:
    assert expect.errno("", "ETIMEDOUT", 110).ok
    assert expect.errno("", 110, "ETIMEDOUT").ok
    assert expect.errno("", "ECONNREFUSED", "[Errno 111] Connection refused").ok
    assert expect.errno("", "ECONNRESET", "recv: Connection reset by peer").ok
    assert expect.errno("", "EADDRINUSE", "nc: bind failed: Address already in use").ok
    wrong = expect.errno("", "ETIMEDOUT", "[Errno 113] No route to host")
    assert not wrong.ok and wrong.expected.startswith("110 ETIMEDOUT")
    assert wrong.observed.startswith("113 EHOSTUNREACH")
    assert not expect.errno("", "ETIMEDOUT", None).ok and expect.errno("", "ETIMEDOUT", None).observed == "no error"
    assert not expect.errno("", "ETIMEDOUT", "all fine").ok
    with pytest.raises(ValueError):
        expect.errno("", "ENOTANERRNO", 1)


def test_a_claim_called_the_old_way_with_no_packets_to_tell_it_says_the_description_comes_first() -> None:
    """Only a list of packets first tells the old order apart; anything else keeps the plain refusal."""
    with pytest.raises(TypeError, match=r"expect.count\(\) takes its description first"):
        expect.count(3, 0, "no packets")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"expect.exit_code\(\) takes its description first"):
        expect.exit_code(0, 0, "exits 0")  # type: ignore[arg-type]


def test_a_claim_called_packets_first_runs_as_before_with_one_warning(connect_timeout: list[Packet]) -> None:
    """An experiment written from the guide of before December 2026 still runs: same verdicts, one warning each."""
    syns = expect.syns(connect_timeout)[:4]
    old_guide: Any = expect  # the old calls do not type-check against today's signatures: that is the point
    steps = [("SYN", lambda p: True), ("another", lambda p: True)]
    old_and_new = [
        (lambda: old_guide.count(syns, 4, "four SYNs"), lambda: expect.count("four SYNs", syns, 4)),
        (lambda: old_guide.count(syns, description="few", max=2), lambda: expect.count("few", syns, max=2)),
        (lambda: old_guide.sequence(syns, steps), lambda: expect.sequence("", syns, steps)),
        (lambda: old_guide.gaps_match(syns, [1, 2, 4], 0.1, description="doubling"),
         lambda: expect.gaps_match("doubling", syns, [1, 2, 4], 0.1)),
        (lambda: old_guide.every(syns, lambda p: p.tcp is not None, "TCP all"),
         lambda: expect.every("TCP all", syns, lambda p: p.tcp is not None)),
    ]
    verdicts = []
    for old, new in old_and_new:
        with pytest.warns(expect.OldClaimOrder, match=r"call expect\.\w+\(description, \.\.\.\)") as caught:
            verdicts.append(old())
        assert len(caught) == 1
        assert verdicts[-1] == new()
    assert [v.verdict for v in verdicts] == ["pass", "fail", "pass", "pass", "pass"]


def test_once_each_leaves_out_retransmissions_only(connect_timeout: list[Packet]) -> None:
    """The connect timeout's four SYN sendings are one segment; the second connect's SYN and the RST are others."""
    once = expect.once_each(connect_timeout)
    assert [p.no for p in once] == [3, 7, 8]
    c, s = 1000, 5000
    close = packets([  # FIN; the server's FIN, sent again when its ACK came late; the client's ACK
        (1.0, tcp_frame(A, B, tcp_segment(40000, 80, c, s, T.TH_FIN | T.TH_ACK, 502))),
        (1.1, tcp_frame(B, A, tcp_segment(80, 40000, s, c + 1, T.TH_FIN | T.TH_ACK, 502), MAC_B, MAC_A)),
        (1.3, tcp_frame(B, A, tcp_segment(80, 40000, s, c + 1, T.TH_FIN | T.TH_ACK, 502), MAC_B, MAC_A)),
        (1.3, tcp_frame(A, B, tcp_segment(40000, 80, c + 1, s + 1, T.TH_ACK, 502))),
    ])
    assert [p.no for p in expect.once_each(close)] == [1, 2, 4]
    assert [p.no for p in expect.once_each(expect.fins(close))] == [1, 2]
