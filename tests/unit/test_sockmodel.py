"""The socket size and queue models against what the catalogue measured on 6.18 (shared/book/EXPERIMENTS.md)."""

import pytest

from lab.experiments.book import sockmodel


@pytest.mark.parametrize(("max_window", "mss", "size"), [
    (1460, 1448, 730),     # entry 18: SO_RCVBUF 2048 -> win 1460 -> 730-byte segments
    (3072, 16384, 1536),   # the book's lo example: win 3072 -> 1536
    (1152, 1448, 576),     # entry 19: win 1152 -> 576
    (65160, 1448, 1448),   # a normal window: the MSS decides
    (500, 1448, 500),      # at most 536: the whole window, not half
    (0, 1448, 1448),
])
def test_segment_size_is_half_the_largest_window_unless_the_mss_is_smaller(max_window, mss, size):
    assert sockmodel.segment_size(max_window, mss) == size


def test_effective_mss_subtracts_the_timestamp_option():
    assert sockmodel.effective_mss(1460, True) == 1448
    assert sockmodel.effective_mss(1460, False) == 1460


@pytest.mark.parametrize(("requested", "minimum", "cap", "kept"), [
    (50, 2304, 4194304, 2304),      # entry 19: small inputs read back as the kernel minimum
    (2000, 4608, 4194304, 4608),
    (2500, 2304, 4194304, 5000),    # above the minimum: doubled
    (5000, 4608, 4194304, 10000),
    (10_000_000, 2304, 4194304, 8388608),  # capped at rmem_max, then doubled
    (-1, 2304, 4194304, 2304),
])
def test_buffer_value_doubles_caps_and_floors(requested, minimum, cap, kept):
    assert sockmodel.buffer_value(requested, minimum, cap) == kept


@pytest.mark.parametrize(("rcvbuf", "wscale"), [(4096, 0), (2304, 0), (131070, 0), (131072, 1), (200000, 1),
                                                 (600000, 3), (1 << 40, 14), (0, 0)])
def test_locked_wscale_follows_half_the_buffer(rcvbuf, wscale):
    assert sockmodel.locked_wscale(rcvbuf) == wscale


def test_min_window_acks():
    assert sockmodel.min_window_acks(137, 2) == 68   # 69 windows of 2, the last needs no ACK to go on
    assert sockmodel.min_window_acks(2, 2) == 0
    assert sockmodel.min_window_acks(10, 0) == 10
    assert sockmodel.min_window_acks(0, 3) == 0


@pytest.mark.parametrize(("backlog", "somaxconn", "limit"), [(5, 4096, 6), (1, 4096, 2), (10, 4096, 11),
                                                              (5, 3, 4), (0, 4096, 1)])
def test_accept_queue_holds_one_more_than_the_clamped_backlog(backlog, somaxconn, limit):
    assert sockmodel.accept_queue_limit(backlog, somaxconn) == limit


@pytest.mark.parametrize(("backlog", "max_syn", "cookies", "limit"), [
    (5, 8, 1, 6),     # entry 27: capped at backlog + 1 even with tcp_max_syn_backlog=8
    (5, 8, 0, 6),     # 8 - 8/4 + 1 = 7 would allow more; the backlog decides
    (5, 4, 0, 4),     # syncookies off: 4 - 1 + 1 = 4 bites first (measured)
    (5, 4, 1, 6),     # syncookies on: max_syn_backlog is not consulted
    (10, 2048, 0, 11),
])
def test_syn_queue_limit(backlog, max_syn, cookies, limit):
    assert sockmodel.syn_queue_limit(backlog, 4096, max_syn, cookies) == limit


def test_a_proven_peer_escapes_max_syn_backlog():
    assert sockmodel.syn_queue_limit(100, 4096, 8, 0, proven_peer=True) == 101
    assert sockmodel.syn_queue_limit(100, 4096, 8, 0) == 7
