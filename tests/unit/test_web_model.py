"""The web case's models: resolution through the topology's records, query sizes, streams, squid's log."""

from __future__ import annotations

from pathlib import Path

import pytest
from pcapgen import (
    ACK,
    CLIENT,
    ISN_S,
    MAC_A,
    MAC_B,
    PSH,
    RESPONSE,
    SERVER,
    dns_query,
    handshake_frames,
    tcp_frame,
    tcp_segment,
    timed,
    ts_options,
    write_pcap,
)

from lab.capture.pcapfile import read_pcap
from lab.experiments.book.web_model import (
    VIA,
    Record,
    dns_query_length,
    header_value,
    parse_access_log,
    parse_url,
    records_of,
    resolve,
    split_http,
    tcp_stream,
)
from lab.topology.model import DnsRecord

BOOK = [Record("www.baidu.com", "CNAME", "www.a.shifen.com"), Record("www.a.shifen.com", "A", "10.0.2.1"),
        Record("www.a.shifen.com", "A", "10.0.2.2"), Record("other.example", "A", "10.0.2.9")]


def test_the_books_name_is_one_cname_then_the_aliases_two_addresses():
    res = resolve(BOOK, "www.baidu.com")
    assert res is not None
    assert res.chain == ("www.a.shifen.com",)
    assert res.addresses == ("10.0.2.1", "10.0.2.2")
    assert res.canonical == "www.a.shifen.com"
    assert res.answer_count == 3


def test_the_alias_itself_resolves_without_a_cname():
    res = resolve(BOOK, "WWW.A.SHIFEN.COM.")
    assert res is not None and res.chain == () and res.answer_count == 2 and res.name == "www.a.shifen.com"


def test_chains_are_followed_and_loops_refused():
    two = [Record("a.x", "CNAME", "b.x"), Record("b.x", "CNAME", "c.x"), Record("c.x", "A", "10.0.0.3")]
    res = resolve(two, "a.x")
    assert res is not None and res.chain == ("b.x", "c.x") and res.addresses == ("10.0.0.3",)
    with pytest.raises(ValueError, match="loop"):
        resolve([Record("a.x", "CNAME", "b.x"), Record("b.x", "CNAME", "a.x")], "a.x")


def test_unknown_names_resolve_to_nothing():
    assert resolve(BOOK, "example.com") is None


def test_records_come_from_the_topology_model_without_trailing_dots():
    records = records_of([DnsRecord(name="www.baidu.com.", type="CNAME", value="www.a.shifen.com."),
                          DnsRecord(name="www.a.shifen.com", value="10.0.2.1")])
    assert records == [Record("www.baidu.com", "CNAME", "www.a.shifen.com"),
                       Record("www.a.shifen.com", "A", "10.0.2.1")]


@pytest.mark.parametrize("name", ["www.baidu.com", "www.a.shifen.com", "a.b", "x"])
def test_query_length_is_what_a_plain_query_encodes_to(name):
    assert dns_query_length(name) == len(dns_query(1, name))


def test_the_books_query_is_31_bytes():
    assert dns_query_length("www.baidu.com.") == 31


def test_urls():
    u = parse_url("http://WWW.Baidu.com/index.html")
    assert (u.host, u.port, u.path) == ("www.baidu.com", 80, "/index.html")
    assert parse_url("http://h:8080").path == "/"
    assert parse_url("http://h/p?q=1").path == "/p?q=1"
    for bad in ("https://h/", "ftp://h/x", "www.baidu.com/index.html"):
        with pytest.raises(ValueError):
            parse_url(bad)


def _stream_packets(tmp_path: Path, frames: list[bytes]):
    return read_pcap(write_pcap(tmp_path / "c.pcap", timed(frames)), "c:eth0")


def test_stream_is_the_servers_bytes(tmp_path):
    packets = _stream_packets(tmp_path, handshake_frames())
    assert tcp_stream(packets, SERVER, 80, CLIENT, 43210) == RESPONSE
    head, body = split_http(RESPONSE)
    assert body == b"hello" and head.endswith(b"\r\n\r\n")
    assert header_value(head, "content-length") == "5"
    assert header_value(head, "Via") == "1.1 ernest-laptop (squid/5.7)"
    assert header_value(head, "X-Cache") is None


def test_stream_keeps_order_drops_retransmissions_and_stops_at_a_hole(tmp_path):
    frames = handshake_frames()
    s, c = ISN_S + 1, 1

    def down(offset: int, data: bytes) -> bytes:
        return tcp_frame(SERVER, CLIENT, tcp_segment(80, 43210, s + offset, c, ACK | PSH, 509, ts_options(1, 1), data),
                         MAC_B, MAC_A)

    # the SYN-ACK fixes the server's ISN; then segments out of order, one twice, and one after a hole
    base = frames[:3]
    packets = _stream_packets(tmp_path, [*base, down(5, b"world"), down(0, b"hello"), down(0, b"hello"),
                                         down(20, b"late")])
    assert tcp_stream(packets, SERVER, 80, CLIENT, 43210) == b"helloworld"
    assert tcp_stream(packets, CLIENT, 43210, SERVER, 80) == b""


def test_split_without_a_blank_line_is_all_head():
    assert split_http(b"HTTP/1.1 200 OK\r\nA: b") == (b"HTTP/1.1 200 OK\r\nA: b", b"")


@pytest.mark.parametrize("via, ok", [
    ("1.1 ernest-laptop (squid/5.7)", True),
    ("1.0 localhost (squid/3.0.18)", True),
    ("1.0 localhost (squid/3.0.STABLE18)", False),  # the book's: not digits and dots
    ("1.1 ernest-laptop (squid/5.7), 1.1 other", False),
    ("2 ernest-laptop (squid/5.7)", False),
])
def test_via(via, ok):
    assert (VIA.fullmatch(via) is not None) is ok


U = "http://www.baidu.com/index.html"
ACCESS = f"""\
1795234741.263      3 192.168.1.109 TCP_MISS/200 668 GET {U} - HIER_DIRECT/10.0.2.2 text/html
1795234886.296      0 192.168.1.109 TCP_REFRESH_UNMODIFIED/200 674 GET {U} - HIER_DIRECT/10.0.2.2 text/html
1795234890.000      0 10.0.2.53 TCP_DENIED/403 3900 GET {U} - HIER_NONE/- text/html
1795234891.000      0 192.168.1.109 TCP_MEM_HIT/200 668 GET {U} - HIER_NONE/- text/html
a line squid would never write
"""


def test_access_log():
    entries = parse_access_log(ACCESS)
    assert len(entries) == 4
    miss, refresh, denied, hit = entries
    assert (miss.client, miss.code, miss.status, miss.bytes, miss.method) == ("192.168.1.109", "TCP_MISS", 200, 668,
                                                                              "GET")
    assert (miss.url, miss.hierarchy, miss.peer) == (U, "HIER_DIRECT", "10.0.2.2")
    assert miss.elapsed_ms == 3 and miss.time == pytest.approx(1795234741.263)
    assert [e.from_cache for e in entries] == [False, True, False, True]
    assert (denied.status, denied.peer) == (403, "-")
    assert refresh.bytes == 674 and hit.hierarchy == "HIER_NONE"
