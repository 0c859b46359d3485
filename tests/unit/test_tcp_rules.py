"""The TCP rules the §3 experiments compute their expectations from, against captures and the catalogue."""

import pytest

from lab.experiments.book import tcp_rules as r


@pytest.mark.parametrize(("sack", "ts", "ws", "kinds", "doff"), [
    (True, True, True, [2, 4, 8, 1, 3], 10),      # 0204 05b4 0402 080a TSval TSecr 0103 03WW
    (False, True, True, [2, 1, 1, 8, 1, 3], 10),
    (True, False, True, [2, 1, 1, 4, 1, 3], 8),   # 0204 05b4 0101 0402 0103 030a, captured
    (False, False, True, [2, 1, 3], 7),
    (True, True, False, [2, 4, 8], 9),
    (False, False, False, [2], 6),
])
def test_syn_option_layout(sack, ts, ws, kinds, doff):
    assert r.syn_option_kinds(sack, ts, ws) == kinds
    assert r.data_offset(kinds) == doff


def test_option_bytes_of_the_books_syn():
    # mss 16396, sackOK, TS, nop, wscale 6: 20 bytes of options, as in the book's hex dump
    assert r.option_bytes(r.syn_option_kinds(True, True, True)) == 20


@pytest.mark.parametrize(("rmem2", "rmem_max", "ws"), [
    (6291456, 212992, 7),         # vanilla defaults
    (33554432, 4194304, 10),      # this machine
    (4194304, 16777216, 9),       # rmem_max wins when larger
    (65536, 65536, 1),
    (16384, 16384, 0),            # never negative
    (1 << 40, 0, 14),             # capped at TCP_MAX_WSCALE
])
def test_window_scale(rmem2, rmem_max, ws):
    assert r.window_scale(rmem2, rmem_max) == ws


@pytest.mark.parametrize(("mtu", "mss"), [(1500, 1460), (1400, 1360), (16436, 16396), (65536, 65495)])
def test_mss_for_mtu(mtu, mss):
    assert r.mss_for_mtu(mtu) == mss


@pytest.mark.parametrize(("mss", "rcvbuf", "syn"), [
    (1460, 131072, 64240),    # captured over veth
    (65495, 131072, 65495),   # captured on lo
    (16396, 131072, 49188),   # the book's MSS on 6.x (the book's 2.6 kernel said 32792)
    (1360, 131072, 65280),
    (1460, 65536, 32120),     # tcp_rmem[1] = 64 KiB, captured
])
def test_syn_window(mss, rcvbuf, syn):
    assert r.syn_window(mss, rcvbuf) == syn


@pytest.mark.parametrize(("mss", "ts", "window"), [
    (1460, True, 65160),      # 45 x 1448, captured
    (1460, False, 64240),     # captured with timestamps off
    (16396, True, 65535),     # unit 16384 divides 64 KiB: cut to 16 bits, captured
])
def test_synack_window(mss, ts, window):
    assert r.synack_window(mss, ts, 131072) == window


def test_reuseaddr_matrix_has_one_ok_row():
    rows = {(old, new): r.reuseaddr_restart_ok(old, new) for old in (False, True) for new in (False, True)}
    assert rows == {(False, False): False, (False, True): False, (True, False): False, (True, True): True}


@pytest.mark.parametrize(("retries2", "seconds"), [(15, 924.6), (5, 12.6), (3, 3.0), (9, 204.6), (10, 324.6)])
def test_give_up_after(retries2, seconds):
    assert r.give_up_after(retries2) == pytest.approx(seconds)


def test_retransmit_schedule_with_tlp_and_a_204_ms_rto():
    times, fail = r.retransmit_schedule(5, 0.204)
    assert times == pytest.approx([0, 0.204, 0.408, 0.816, 1.632, 3.264, 6.528])
    assert fail == pytest.approx(13.056)  # measured: 13.18 and 13.3 s


def test_retransmit_schedule_gives_up_one_doubling_later_when_just_short():
    # exact 200 ms timers reach 12.4 s after the first RTO at the 6th expiry: short of 12.6
    times, fail = r.retransmit_schedule(5, 0.2)
    assert times[-1] == pytest.approx(12.8)
    assert fail == pytest.approx(25.6)


def test_retransmit_schedule_without_tlp_and_capped_rto():
    # the clock starts at the first RTO retransmission (0.2 s): 2.8 s at the 3.0 s expiry is short of 3.0
    times, fail = r.retransmit_schedule(3, 0.2, tlp=False)
    assert times == pytest.approx([0, 0.2, 0.6, 1.4, 3.0])
    assert fail == pytest.approx(6.2)
    times, _ = r.retransmit_schedule(15, 0.2, rto_max=1.0)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert max(gaps) == pytest.approx(1.0)


def test_the_mss_takes_the_families_headers() -> None:
    from lab.experiments.book import tcp_rules

    assert tcp_rules.mss_for_mtu(1500) == 1460 and tcp_rules.mss_for_mtu(1500, 6) == 1440
    assert tcp_rules.mss_for_mtu(65536) == 65495 and tcp_rules.mss_for_mtu(65536, 6) == 65476
