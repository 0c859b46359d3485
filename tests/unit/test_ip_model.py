"""The IPv4 models against the numbers the book and the catalogue measured (entries 3, 4, 6)."""

import pytest

from lab.experiments.book.ip_model import (
    Fragment,
    arp_failure_time,
    fragment_plan,
    host_in_network,
    syn_datagram_length,
    syn_options_length,
)


def test_ping_1473_on_ethernet_is_the_books_two_fragments():
    plan = fragment_plan(1473 + 8, 1500)
    assert plan == [Fragment(0, 1500, True), Fragment(1480, 21, False)]
    assert plan[1].offset_units == 185


def test_frag_needed_mtu_1400_gives_the_catalogues_1396_and_124():
    assert [f.total_length for f in fragment_plan(1472 + 8, 1400)] == [1396, 124]
    assert fragment_plan(1472 + 8, 1400)[1].offset == 1376


def test_a_datagram_that_fits_is_one_piece_without_mf():
    assert fragment_plan(1472 + 8, 1500) == [Fragment(0, 1500, False)]
    assert fragment_plan(0, 68) == [Fragment(0, 20, False)]


def test_three_fragments_and_offsets_are_multiples_of_eight():
    plan = fragment_plan(3008, 1500)
    assert [(f.offset, f.total_length, f.mf) for f in plan] == [(0, 1500, True), (1480, 1500, True),
                                                                (2960, 68, False)]
    odd = fragment_plan(200, 77)  # room 57 → 56 bytes per fragment
    assert all(f.offset % 8 == 0 for f in odd)
    assert sum(f.total_length - 20 for f in odd) == 200


def test_fragment_plan_refuses_nonsense():
    with pytest.raises(ValueError):
        fragment_plan(100, 27)
    with pytest.raises(ValueError):
        fragment_plan(-1, 1500)


@pytest.mark.parametrize(("ts", "sack", "ws", "options"), [
    (True, True, True, 20),    # mss, sackOK, TS, nop, wscale: the book's 60-byte SYN
    (False, True, True, 12),   # mss, nop, nop, sackOK, nop, wscale
    (True, False, True, 20),   # mss, nop, nop, TS, nop, wscale
    (False, False, False, 4),  # mss only
    (False, True, False, 8),
])
def test_syn_options(ts, sack, ws, options):
    assert syn_options_length(ts, sack, ws) == options
    assert syn_datagram_length(ts, sack, ws) == 40 + options


def test_syn_datagram_with_defaults_is_60():
    assert syn_datagram_length(True, True, True) == 60


def test_arp_failure_default_is_three_requests_and_three_seconds():
    assert arp_failure_time(3, 0, 1000) == ([0.0, 1.0, 2.0], 3.0)
    assert arp_failure_time(2, 0, 500) == ([0.0, 0.5], 1.0)
    with pytest.raises(ValueError):
        arp_failure_time(0, 0, 1000)


def test_host_in_network():
    assert host_in_network("10.0.1.10/24", 99) == "10.0.1.99"
    with pytest.raises(ValueError):
        host_in_network("10.0.1.10/24", 255)
    with pytest.raises(ValueError):
        host_in_network("10.0.1.10/24", 0)
