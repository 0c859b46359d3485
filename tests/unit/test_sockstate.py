"""nstat counters, TCP_INFO lines and ss filters (the texts below were printed in lab namespaces)."""

from lab.experiments.book import sockstate, sstext

NSTAT = """\
#kernel
IpInReceives                    4050               0.0
TcpExtSyncookiesSent            14                 0.0
TcpExtListenOverflows           11                 0.0
TcpExtListenDrops               11                 0.0
TcpExtTCPReqQFullDrop           0                  0.0
"""

SS = """\
ESTAB     0      0      192.168.1.109:34894 192.168.1.108:12345
SYN-SENT  0      1      192.168.1.109:34912 192.168.1.108:12345
TIME-WAIT 0      0      192.168.1.109:33570 192.168.1.108:5004
LISTEN    6      5      192.168.1.108:12345 0.0.0.0:*
"""

INFO = ("connected local=192.168.1.109:39280 peer=192.168.1.108:5003\n"
        "tcp_info when=start cc=cubic state=ESTAB ca_state=open cwnd=10 ssthresh=inf retrans=0/0 rto_ms=204\n"
        "sent 2000000 bytes secs=0.174 mbit_per_s=92.0\n"
        "tcp_info when=end cc=cubic state=CLOSE ca_state=open cwnd=4 ssthresh=3 retrans=0/30 rto_ms=204\n")


def test_parse_nstat_skips_the_header_and_reads_absolute_values():
    counters = sockstate.parse_nstat(NSTAT)
    assert counters["TcpExtListenOverflows"] == 11
    assert counters["TcpExtTCPReqQFullDrop"] == 0
    assert "#kernel" not in counters


def test_delta_treats_missing_counters_as_zero():
    before = {"TcpExtListenOverflows": 3}
    after = {"TcpExtListenOverflows": 11, "TcpExtSyncookiesSent": 2}
    assert sockstate.delta(before, after, "TcpExtListenOverflows") == 8
    assert sockstate.delta(before, after, "TcpExtSyncookiesSent") == 2
    assert sockstate.delta(before, after, "TcpExtNothing") == 0


def test_parse_tcp_info_picks_the_line_by_when():
    start, end = sockstate.parse_tcp_info(INFO, "start"), sockstate.parse_tcp_info(INFO, "end")
    assert start is not None and end is not None
    assert (start["cwnd"], start["ssthresh"], start["cc"]) == ("10", "inf", "cubic")
    assert (end["cwnd"], end["ssthresh"]) == ("4", "3")
    assert sockstate.retrans_total(end) == 30
    assert sockstate.retrans_total({"cwnd": "1"}) is None
    assert sockstate.parse_tcp_info(INFO, "sent") is None


def test_port_filters():
    socks = sstext.parse(SS)
    assert [s.state for s in sockstate.to_port(socks, 12345)] == ["ESTAB", "SYN-SENT"]
    listener = sockstate.on_port(socks, 12345)
    assert [(s.state, s.recv_q, s.send_q) for s in listener] == [("LISTEN", 6, 5)]
    assert sockstate.port_of("0.0.0.0:*") == 0
    assert sockstate.port_of("[::1]:80") == 80
