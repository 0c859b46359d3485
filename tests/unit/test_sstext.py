"""Parsing ss -tanoiH output (the lines below were printed by ss in lab namespaces)."""

import pytest

from lab.experiments.book import sstext

FIN_WAIT = """\
FIN-WAIT-1 0      1      192.168.1.108:12345 192.168.1.109:38724 timer:(on,116ms,0)
\t ts sack bbr wscale:10,10 rto:204 rtt:0.028/0.014 mss:1448 pmtu:1500 rcvmss:536 advmss:1448 cwnd:10
LISTEN     0      5      192.168.1.108:12345 0.0.0.0:*
TIME-WAIT  0      0      192.168.1.109:12345 192.168.1.108:80 timer:(timewait,59sec,0)
"""


def test_parse_states_queues_timers_and_rto():
    socks = sstext.parse(FIN_WAIT)
    assert [s.state for s in socks] == ["FIN-WAIT-1", "LISTEN", "TIME-WAIT"]
    fw, listen, tw = socks
    assert (fw.recv_q, fw.send_q, fw.local, fw.peer) == (0, 1, "192.168.1.108:12345", "192.168.1.109:38724")
    assert (fw.timer, fw.timer_left, fw.rto) == ("on", pytest.approx(0.116), pytest.approx(0.204))
    assert (fw.rtt, fw.rttvar) == (0.028, 0.014) and listen.rtt is None
    assert listen.timer is None and listen.rto is None
    assert (tw.timer, tw.timer_left, tw.local_port) == ("timewait", 59.0, 12345)
    assert sstext.in_state(socks, "TIME-WAIT", 12345) == [tw]
    assert sstext.in_state(socks, "TIME-WAIT", 80) == []


@pytest.mark.parametrize(("text", "seconds"), [
    # every form iproute2's print_ms_timer() (misc/ss.c) prints, by the milliseconds T left
    ("", 0.0),  # T == 0: nothing between the commas, timer:(on,,0)
    ("116ms", 0.116), ("692ms", 0.692), ("999ms", 0.999), ("050ms", 0.05), ("005ms", 0.005),  # T < 1 s
    ("1sec", 1.0), ("4sec", 4.0), ("9sec", 9.0),  # 1 s <= T < 10 s, no milliseconds
    ("4.700ms", 4.7), ("9.001ms", 9.001), ("1.001ms", 1.001), ("4.692ms", 4.692),  # ... with: seconds, not ms
    ("4.700sec", 4.7), ("9.501sec", 9.501),  # the same after "ss: fix expired time format of timer" (2024)
    ("10sec", 10.0), ("59sec", 59.0),  # 10 s <= T < 1 min
    ("1min", 60.0), ("1min30sec", 90.0), ("1min39sec", 99.0), ("2min", 120.0), ("9min59sec", 599.0),
    ("10min", 600.0), ("11min", 660.0), ("119min", 7140.0),  # T >= 10 min: minutes only
    # not printed by ss, read all the same
    ("1.5sec", 1.5), (" 59sec ", 59.0),
    # not durations
    ("soon", None), ("ms", None), ("sec", None), ("min", None), ("4.700", None), ("59 sec", None),
    ("1min30", None), ("-5sec", None),
])
def test_duration(text, seconds):
    assert sstext.duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_a_fraction_before_ms_is_seconds():
    """print_ms_timer() prints 4 s 700 ms as ``4.700ms``: the bug read it as 4.7 ms."""
    assert sstext.duration("4.700ms") == pytest.approx(4.7)
    assert sstext.duration("9.001ms") == pytest.approx(9.001)
    later, sooner = sstext.duration("1.001ms"), sstext.duration("999ms")
    assert later is not None and sooner is not None and later > sooner


# printed by ss (iproute2 6.1.0) on 127.0.0.1, 0.3 s after connecting sockets with
# SO_KEEPALIVE and TCP_KEEPIDLE 1, 5, 9, 30, 100 and 700 s
KEEPALIVE = """\
ESTAB 0      0      127.0.0.1:42688 127.0.0.1:45171 timer:(keepalive,692ms,0)
ESTAB 0      0      127.0.0.1:42698 127.0.0.1:45171 timer:(keepalive,4.692ms,0)
ESTAB 0      0      127.0.0.1:42708 127.0.0.1:45171 timer:(keepalive,8.692ms,0)
ESTAB 0      0      127.0.0.1:42710 127.0.0.1:45171 timer:(keepalive,29sec,0)
ESTAB 0      0      127.0.0.1:42718 127.0.0.1:45171 timer:(keepalive,1min39sec,0)
ESTAB 0      0      127.0.0.1:42724 127.0.0.1:45171 timer:(keepalive,11min,0)
"""
# written by hand: print_ms_timer(0) is "", so a timer that is due reads like this
DUE = "ESTAB 0      1      127.0.0.1:42730 127.0.0.1:45171 timer:(on,,3)\n"


def test_parse_keepalive_timers_as_ss_printed_them():
    socks = sstext.parse(KEEPALIVE)
    assert [s.timer for s in socks] == ["keepalive"] * 6
    assert [s.timer_left for s in socks] == pytest.approx([0.692, 4.692, 8.692, 29.0, 99.0, 660.0])


def test_parse_a_due_timer_has_nothing_left():
    (due,) = sstext.parse(DUE)
    assert (due.timer, due.timer_left, due.send_q) == ("on", 0.0, 1)


def test_lines_without_a_state_column_are_skipped():
    assert sstext.parse("0 0 1.2.3.4:5 6.7.8.9:10\n\n") == []
