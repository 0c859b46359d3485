"""Decoding of pcaps the tests write themselves, checked field by field and against tcpdump's own output."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import dpkt
import pytest
from pcapgen import (
    MAC_A,
    MAC_B,
    MAC_R,
    REQUEST,
    RESPONSE,
    arp_frame,
    dns_query,
    dns_response,
    echo,
    eth,
    fragments,
    handshake_frames,
    icmp_frame,
    ipv4,
    redirect,
    syn_options,
    tcp_frame,
    tcp_segment,
    time_exceeded,
    timed,
    udp_frame,
    unreachable,
    write_pcap,
)

from lab.capture.decode import decode_frame
from lab.capture.pcapfile import merge, read_pcap
from lab.capture.records import ACK, PSH, SYN, URG, PcapError
from lab.capture.text import listing

A, B, R, W, DNS = "10.0.1.1", "10.0.1.2", "10.0.1.254", "10.0.2.1", "10.0.2.53"
T = dpkt.tcp


def misc_frames() -> list[bytes]:
    """ARP, RST, URG, SACK, DNS, ICMP errors and fragments: one frame of each kind the experiments read."""
    inner = ipv4(A, W, 1, echo(2, 1, b"y" * 56), ident=9)
    udp_inner = ipv4(A, W, 17, dpkt.udp.UDP(sport=40000, dport=9999, ulen=13, data=b"hello"), ident=10)
    big = ipv4(A, W, 1, echo(3, 1, b"z" * 1464), ident=12)
    frames = [
        arp_frame(1, MAC_A, A, "00:00:00:00:00:00", B),
        arp_frame(2, MAC_B, B, MAC_A, A),
        arp_frame(2, MAC_B, B, MAC_A, A, pad=18),  # a NIC pads the reply to 60 bytes
        arp_frame(1, MAC_A, A, MAC_B, B, eth_dst=MAC_B),  # a unicast probe
        tcp_frame(A, B, tcp_segment(43211, 81, 777, 0, T.TH_SYN, 64240, syn_options())),
        tcp_frame(B, A, tcp_segment(81, 43211, 0, 778, T.TH_RST | T.TH_ACK, 0), MAC_B, MAC_A),
        tcp_frame(A, B, tcp_segment(5000, 12345, 1000, 0, T.TH_SYN, 64240, syn_options())),
        tcp_frame(B, A, tcp_segment(12345, 5000, 2000, 1001, T.TH_SYN | T.TH_ACK, 65160, syn_options()),
                  MAC_B, MAC_A),
        tcp_frame(A, B, tcp_segment(5000, 12345, 1001, 2001, T.TH_ACK | T.TH_PUSH, 502, b"", b"123")),
        tcp_frame(A, B, tcp_segment(5000, 12345, 1004, 2001, T.TH_ACK | T.TH_PUSH | T.TH_URG, 502, b"",
                                    b"abc", urp=3)),
        tcp_frame(B, A, tcp_segment(12345, 5000, 2001, 1004, T.TH_ACK, 509,
                                    b"\x01\x01\x05\x0a" + struct.pack("!II", 1004, 1007)),
                  MAC_B, MAC_A),
        tcp_frame(B, A, tcp_segment(12345, 5000, 9999, 0, T.TH_RST, 0), MAC_B, MAC_A),
        udp_frame(A, DNS, 57428, 53, dns_query(57428, "www.baidu.com")),
        udp_frame(DNS, A, 53, 57428, dns_response(57428, "www.baidu.com", "www.a.shifen.com",
                                                  ["10.0.2.1", "10.0.2.2"]), MAC_B, MAC_A),
        udp_frame(A, DNS, 57429, 53, dns_query(57429, "www.baidu.com", dpkt.dns.DNS_AAAA)),
        udp_frame(A, W, 40000, 9999, b"hello"),
        icmp_frame(A, B, echo(1, 1, b"x" * 56), df=True),
        icmp_frame(B, A, echo(1, 1, b"x" * 56, reply=True), MAC_B, MAC_A),
        icmp_frame(B, A, redirect(1, R, inner), MAC_B, MAC_A),
        icmp_frame(R, A, time_exceeded(inner), MAC_R, MAC_A),
        icmp_frame(W, A, unreachable(3, udp_inner), MAC_R, MAC_A),
        icmp_frame(R, A, unreachable(1, inner), MAC_R, MAC_A),
        icmp_frame(R, A, unreachable(4, big, mtu=1400), MAC_R, MAC_A),
        *fragments(A, B, 1, echo(4, 1, b"q" * 1473), 1500, 4321),
        eth(MAC_A, MAC_B, b"\x00" * 40, eth_type=0x88B5),
    ]
    return frames


@pytest.fixture
def handshake(tmp_path: Path) -> Path:
    return write_pcap(tmp_path / "handshake.pcap", timed(handshake_frames()))


@pytest.fixture
def misc(tmp_path: Path) -> Path:
    return write_pcap(tmp_path / "misc.pcap", timed(misc_frames()))


def tcpdump_lines(path: Path, *flags: str) -> list[str]:
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed (apt-get install tcpdump)")
    result = subprocess.run(["tcpdump", "-nt", *flags, "-r", str(path)], capture_output=True, text=True,
                            check=True)
    return [line for line in result.stdout.splitlines() if not line.startswith("\t")]


# ---------------------------------------------------------------- TCP


def test_handshake_fields(handshake: Path) -> None:
    pk = read_pcap(handshake, "kongming20:eth0")
    assert [p.no for p in pk] == list(range(1, 9))
    assert [p.tcp.flag_str for p in pk if p.tcp] == ["S", "S.", ".", "P.", "P.", "F.", "F.", "."]
    syn, synack = pk[0].tcp, pk[1].tcp
    assert syn is not None and synack is not None
    assert syn.is_syn and not syn.is_synack and synack.is_synack
    assert syn.data_offset == 10
    assert syn.option_kinds == [2, 4, 8, 1, 3]
    assert (syn.mss, syn.sack_ok, syn.ts_val, syn.ts_ecr, syn.wscale) == (1460, True, 100, 0, 7)
    assert synack.wscale == 9 and synack.window == 65160
    assert synack.ack == syn.seq + 1
    assert pk[0].ip is not None and pk[0].ip.df and pk[0].ip.ttl == 64 and pk[0].ip.total_length == 60
    assert pk[1].ip is not None and pk[1].ip.id == 0
    assert syn.conn == synack.conn == (("10.0.1.1", 43210), ("10.0.1.2", 80))
    assert pk[0].eth_src == MAC_A and pk[0].eth_dst == MAC_B and pk[0].eth_type == 0x0800
    assert pk[0].length == 74 and pk[0].proto == "tcp"


def test_relative_numbers(handshake: Path) -> None:
    pk = read_pcap(handshake, "a")
    rel = [(p.tcp.rel_seq, p.tcp.rel_ack) for p in pk if p.tcp]
    nq, nr = len(REQUEST), len(RESPONSE)
    assert rel == [(0, None), (0, 1), (1, 1), (1, 1), (1, 1 + nq), (1 + nq, 1 + nr), (1 + nr, 2 + nq),
                   (2 + nq, 2 + nr)]


def test_http_decoding(handshake: Path) -> None:
    pk = read_pcap(handshake, "a")
    request, response = pk[3].http, pk[4].http
    assert request is not None and response is not None
    assert (request.kind, request.method, request.uri, request.version) == ("request", "GET", "/index.html",
                                                                           "HTTP/1.1")
    assert request.header("user-agent") == "Wget/1.21.3"
    assert response.kind == "response" and response.status == 200
    assert response.header("Via") == "1.1 ernest-laptop (squid/5.7)"
    assert response.body == b"hello"
    assert pk[3].proto == "http" and pk[2].http is None


def test_handshake_summary_matches_tcpdump(handshake: Path) -> None:
    pk = read_pcap(handshake, "a")
    assert [p.summary() for p in pk] == tcpdump_lines(handshake)
    assert pk[0].summary() == (
        "IP 10.0.1.1.43210 > 10.0.1.2.80: Flags [S], seq 3499745539, win 64240, "
        "options [mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7], length 0"
    )
    assert pk[2].summary().endswith("Flags [.], ack 1, win 502, options [nop,nop,TS val 101 ecr 200], "
                                    "length 0")


def test_lab_capture_lists_the_options_as_text(handshake: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``[nop,nop,TS val …]`` would be taken for rich markup and vanish ("options ,")."""
    from lab.cli.capture import show_packets

    show_packets(read_pcap(handshake, "a:eth0"), handshake)
    shown = capsys.readouterr().out
    assert "options [mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7]" in shown, shown
    assert "options ," not in shown


def test_misc_summaries_match_tcpdump(misc: Path) -> None:
    pk = read_pcap(misc, "a")
    reference = tcpdump_lines(misc)
    assert len(pk) == len(reference)
    for packet, line in zip(pk, reference, strict=True):
        if packet.ip is not None and packet.ip.is_fragment:
            # our one addition: the fragment's id:size@offset
            assert packet.summary().startswith(line + " (frag 4321:")
        elif packet.note:
            # tcpdump hex-dumps what it cannot name; we say why instead
            assert packet.summary().startswith(line) and line.endswith("length 54: ")
        else:
            assert packet.summary() == line


def test_link_level_summary_matches_tcpdump_e(misc: Path) -> None:
    pk = read_pcap(misc, "a")
    reference = tcpdump_lines(misc, "-e")
    for packet, line in list(zip(pk, reference, strict=True))[:6]:
        assert packet.summary(link=True) == line


def test_rst_to_closed_port(misc: Path) -> None:
    pk = read_pcap(misc, "a")
    rst = pk[5]
    assert rst.tcp is not None and rst.tcp.flag_str == "R." and rst.tcp.is_rst
    assert (rst.tcp.seq, rst.tcp.ack, rst.tcp.window, rst.tcp.options) == (0, 778, 0, [])
    assert rst.tcp.rel_ack == 1
    assert "Flags [R.], seq 0, ack 778, win 0, length 0" in rst.summary()
    bare = pk[11].tcp
    assert bare is not None and bare.flag_str == "R" and bare.rel_ack is None
    assert pk[11].summary().endswith("Flags [R], seq 9999, win 0, length 0")


def test_urgent_segment(misc: Path) -> None:
    pk = read_pcap(misc, "a")
    urg = pk[9].tcp
    assert urg is not None
    assert urg.flag_str == "P.U" and urg.has(PSH | ACK | URG) and not urg.has(SYN)
    assert (urg.urg, urg.payload, urg.rel_seq, urg.length) == (3, b"abc", 4, 3)
    assert urg.payload[urg.urg - 1 : urg.urg] == b"c"
    assert "Flags [P.U], seq 4:7, ack 1, win 502, urg 3, length 3" in pk[9].summary()


def test_sack_blocks_are_relative_like_tcpdump(misc: Path) -> None:
    pk = read_pcap(misc, "a")
    sack = pk[10].tcp
    assert sack is not None and sack.sack_blocks == [(1004, 1007)]
    assert "options [nop,nop,sack 1 {4:7}]" in pk[10].summary()


# ---------------------------------------------------------------- ARP, DNS, ICMP, fragments


def test_arp(misc: Path) -> None:
    pk = read_pcap(misc, "a")
    request, reply, padded, probe = pk[0], pk[1], pk[2], pk[3]
    assert request.arp is not None and request.arp.is_request
    assert (request.arp.spa, request.arp.tpa, request.arp.tha) == (A, B, "00:00:00:00:00:00")
    assert request.is_broadcast and request.eth_type == 0x0806 and request.length == 42
    assert reply.arp is not None and reply.arp.is_reply and reply.arp.sha == MAC_B == reply.eth_src
    assert reply.eth_dst == MAC_A
    assert padded.length == 60 and padded.summary().endswith("length 46")
    assert request.summary() == "ARP, Request who-has 10.0.1.2 tell 10.0.1.1, length 28"
    assert reply.summary() == f"ARP, Reply 10.0.1.2 is-at {MAC_B}, length 28"
    assert probe.summary() == f"ARP, Request who-has 10.0.1.2 ({MAC_B}) tell 10.0.1.1, length 28"
    assert (request.src, request.dst, request.proto) == (A, B, "arp")


def test_dns(misc: Path) -> None:
    pk = read_pcap(misc, "a")
    query, answer, aaaa = pk[12].dns, pk[13].dns, pk[14].dns
    assert query is not None and answer is not None and aaaa is not None
    assert (query.id, query.qr, query.rd, query.size) == (57428, 0, True, 31)
    assert query.questions == [("www.baidu.com", "A")]
    assert (answer.id, answer.qr, answer.aa, answer.rcode, answer.ancount) == (57428, 1, True, 0, 3)
    assert answer.answers[0][:3] == ("www.baidu.com", "CNAME", "www.a.shifen.com")
    assert answer.values("A") == ["10.0.2.1", "10.0.2.2"]
    assert pk[12].summary().endswith("57428+ A? www.baidu.com. (31)")
    assert "57428* 3/0/0 CNAME www.a.shifen.com., A 10.0.2.1, A 10.0.2.2 (" in pk[13].summary()
    assert aaaa.questions == [("www.baidu.com", "AAAA")]
    assert pk[15].summary().endswith("UDP, length 5") and pk[15].dns is None


def test_icmp(misc: Path) -> None:
    pk = read_pcap(misc, "a")
    request, reply, redir, ttl, port, host, frag = (p.icmp for p in pk[16:23])
    assert request is not None and (request.type, request.id, request.seq, request.length) == (8, 1, 1, 64)
    assert reply is not None and reply.name == "echo reply"
    assert redir is not None and (redir.type, redir.code, redir.gateway) == (5, 1, R)
    assert redir.inner is not None and (redir.inner.src, redir.inner.dst, redir.inner.proto) == (A, W, 1)
    assert pk[18].summary().endswith("ICMP redirect 10.0.2.1 to host 10.0.1.254, length 36")
    assert ttl is not None and (ttl.type, ttl.code) == (11, 0) and ttl.is_error
    assert port is not None and port.inner is not None
    assert (port.inner.sport, port.inner.dport) == (40000, 9999)
    assert pk[20].summary().endswith("ICMP 10.0.2.1 udp port 9999 unreachable, length 36")
    assert host is not None and (host.type, host.code) == (3, 1)
    assert frag is not None and (frag.type, frag.code, frag.mtu) == (3, 4, 1400)
    assert pk[22].summary().endswith("unreachable - need to frag (mtu 1400), length 36")


def test_fragments(misc: Path) -> None:
    pk = read_pcap(misc, "a")
    first, second = pk[23], pk[24]
    assert first.ip is not None and second.ip is not None
    assert first.ip.id == second.ip.id == 4321
    assert (first.ip.mf, first.ip.frag_offset, first.ip.total_length) == (True, 0, 1500)
    assert (second.ip.mf, second.ip.frag_offset, second.ip.frag_offset_bytes, second.ip.total_length) == (
        False, 185, 1480, 21)
    assert first.icmp is not None and first.icmp.length == 1480 and second.icmp is None
    assert first.ip.is_fragment and second.ip.is_fragment
    assert first.summary().endswith("ICMP echo request, id 4, seq 1, length 1480 (frag 4321:1480@0+)")
    assert second.summary() == "IP 10.0.1.1 > 10.0.1.2: ip-proto-1 (frag 4321:1@1480)"
    assert first.summary(ip_header=True).startswith(
        "IP (tos 0x0, ttl 64, id 4321, offset 0, flags [+], proto ICMP (1), length 1500) 10.0.1.1 > ")


def test_undecodable_frames_keep_raw_fields() -> None:
    odd = decode_frame(eth(MAC_A, MAC_B, b"\x00" * 40, eth_type=0x88B5), 1.0, "a", 1)
    assert odd.note and "0x88b5" in odd.note and odd.eth_src == MAC_A and len(odd.data) == 54
    runt = decode_frame(b"\x01\x02", 1.0, "a", 2)
    assert runt.note == "runt frame (2 bytes)"
    bad_ip = decode_frame(eth(MAC_A, MAC_B, b"\x45\x00\x00"), 1.0, "a", 3)
    assert bad_ip.ip is None and bad_ip.note and "IPv4" in bad_ip.note


# ---------------------------------------------------------------- files and merging


def test_merge_two_points_renumbers_and_keeps_per_point_numbers(tmp_path: Path) -> None:
    frames = handshake_frames()
    client = write_pcap(tmp_path / "client.pcap", timed(frames, 1000.0, 0.010))
    server = write_pcap(tmp_path / "server.pcap", timed(frames[1:], 1000.0105, 0.010))  # misses the first SYN
    pk = merge({"client:eth0": client, "server:eth0": server})
    assert [p.no for p in pk] == list(range(1, 16))
    assert [p.time for p in pk] == sorted(p.time for p in pk)
    assert [p.point for p in pk[:4]] == ["client:eth0", "client:eth0", "server:eth0", "client:eth0"]
    server_synack = pk[2]
    assert server_synack.tcp is not None and server_synack.tcp.rel_seq == 0 and server_synack.tcp.rel_ack == 1
    # the server never saw the SYN, yet its listing shows the same relative numbers tcpdump would
    server_ack = next(p for p in pk if p.point == "server:eth0" and p.tcp and p.tcp.flag_str == ".")
    assert "Flags [.], ack 1," in server_ack.summary()
    text = listing(pk)
    lines = text.splitlines()
    assert len(lines) == 15
    assert lines[0].split()[:3] == ["1", "0.000000", "client:eth0"]
    assert lines[2].split()[:3] == ["3", "0.010500", "server:eth0"]


def test_nanosecond_pcap(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "ns.pcap", [(1700000000.123456789, handshake_frames()[0])], nano=True)
    (packet,) = read_pcap(path, "a")
    assert packet.time == pytest.approx(1700000000.123456789, abs=1e-6)


def test_torn_capture_keeps_whole_records(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "torn.pcap", timed(handshake_frames()))
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    assert len(read_pcap(path, "a")) == 7


def test_bad_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(PcapError, match="no such capture file"):
        read_pcap(tmp_path / "missing.pcap", "a")
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    with pytest.raises(PcapError, match="empty capture file"):
        read_pcap(empty, "a")
    text = tmp_path / "text.pcap"
    text.write_text("hello world, not a capture")
    with pytest.raises(PcapError, match="not a pcap file"):
        read_pcap(text, "a")
    cooked = write_pcap(tmp_path / "any.pcap", [(1.0, b"\x00" * 20)], linktype=113)
    with pytest.raises(PcapError, match="link type 113") as info:
        read_pcap(cooked, "a")
    assert info.value.hint and "-i any" in info.value.hint
