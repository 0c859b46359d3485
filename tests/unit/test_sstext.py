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
    ("59sec", 59.0), ("1min30sec", 90.0), ("116ms", 0.116), ("1.5sec", 1.5), ("2min", 120.0), ("", None),
    ("soon", None),
])
def test_duration(text, seconds):
    assert sstext.duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_lines_without_a_state_column_are_skipped():
    assert sstext.parse("0 0 1.2.3.4:5 6.7.8.9:10\n\n") == []
