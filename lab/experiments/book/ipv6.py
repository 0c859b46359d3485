"""IPv6 (§2.7, and §1.6's ARP as IPv6 does it): the header's fields, TCP over IPv6, neighbour discovery.

All three run on book-lan6, the book's LAN in both families; the client and server are the
book's (Kongming20 and ernest-laptop), addressed by their IPv6 addresses.
"""

from __future__ import annotations

from ipaddress import IPv6Address

from lab.capture.records import Packet
from lab.experiments import expect
from lab.experiments.context import Run
from lab.experiments.engine import experiment

A, B = "kongming20", "ernest-laptop"
TOPOLOGY = "book-lan6.yaml"
IPV6_HEADER, TCP_HEADER = 40, 20


def solicited_node(address: str) -> str:
    """RFC 4291's solicited-node multicast group of an address: ff02::1:ff + its last 24 bits."""
    low = int(IPv6Address(address)) & 0xFFFFFF
    return str(IPv6Address(int(IPv6Address("ff02::1:ff00:0")) | low))


def multicast_mac(group: str) -> str:
    """RFC 2464: an IPv6 multicast group's Ethernet address is 33:33 and the group's last 32 bits."""
    return "33:33:" + IPv6Address(group).packed[-4:].hex(":")


def _icmp6(type_: int) -> expect.Predicate:
    return lambda p: p.icmp is not None and p.icmp.version == 6 and p.icmp.type == type_


# ---------------------------------------------------------------- §2.7 the IPv6 header


@experiment(
    id="ipv6-header-fields",
    title="The IPv6 header: version 6, a flow label per direction, payload length, next header 6, "
          "hop limit from the sysctl",
    section="§2.7",
    topology=TOPOLOGY,
    book="""\
§2.7.1 IPv6固定头部结构 (40 bytes):
  4-bit version (6) | 8-bit traffic class | 20-bit flow label
  16-bit payload length | 8-bit next header | 8-bit hop limit
  128-bit source address | 128-bit destination address
"流标签...用于对实时业务...的服务质量控制"; the payload length counts the extension headers and the
data, not the fixed header; hop limit plays TTL's part.""",
    modern="""The fields are the book's. The flow label is no longer left 0: since 3.x Linux sets one for
    each connected socket from a hash of its flow (net.ipv6.auto_flowlabels = 1), so each direction of a
    TCP connection has its own label, the same on each of its segments (it changes only if TCP rethinks
    its path, after an RTO). The hop limit is the sending interface's net.ipv6.conf.IF.hop_limit (64);
    this run sets the client's. Traffic class 0, as the client asks for none. No extension header
    follows a plain TCP segment: next header is TCP (6) and the payload length is TCP's header and data.""",
)
def ipv6_header_fields(run: Run, port: int = 7, hop_limit: int = 50) -> None:
    server_ip = run.ip(B, family=6)
    run.sysctl(A, "net.ipv6.conf.eth0.hop_limit", hop_limit)
    run.serve(B, "echo", server_ip, str(port))
    with run.capture([f"{A}:eth0"], f"ip6 and tcp port {port}"):
        r = run.py(A, "halfclose_client", server_ip, str(port), "--message", "hello")
    run.expect(expect.output_contains(r.stdout, "connected", "the client connected over IPv6"))
    run.expect(expect.output_contains(r.stdout, "received", "the echo came back"))
    tcp = [p for p in run.packets if p.ip is not None and p.tcp is not None]
    sent = [p for p in tcp if p.src != server_ip]
    received = [p for p in tcp if p.src == server_ip]
    run.expect(expect.count(expect.syns(tcp), 1, "one SYN, over IPv6"))
    run.expect(expect.every(tcp, lambda p: p.ip is not None and p.ip.version == 6, "every segment is IPv6",
                            "version 6"))
    run.expect(expect.every(tcp, lambda p: p.ip is not None and p.ip.extensions == [] and p.ip.proto == 6,
                            "no extension header: next header is TCP (6)", "next header 6"))
    run.expect(expect.every(tcp, _payload_length_is_tcp, "payload length = TCP header + data "
                            "(the 40-byte fixed header is not counted)", "payload length = 4 × data offset + data"))
    run.expect(expect.every(sent, lambda p: p.ip is not None and p.ip.hop_limit == hop_limit,
                            f"the client's hop limit is its interface's hop_limit sysctl ({hop_limit})",
                            f"hop limit {hop_limit}"))
    run.expect(expect.every(received, lambda p: p.ip is not None and p.ip.hop_limit == 64,
                            "the server's hop limit is the default 64", "hop limit 64"))
    run.expect(expect.every(tcp, lambda p: p.ip is not None and p.ip.tos == 0, "traffic class 0", "class 0"))
    for who, packets in (("client", sent), ("server", received)):
        labels = sorted({p.ip.flow_label for p in packets if p.ip is not None})
        run.expect(expect.check(f"the {who}'s segments carry one non-zero flow label (auto_flowlabels)",
                                len(labels) == 1 and labels[0] != 0, "one label, not 0",
                                ", ".join(f"0x{x:05x}" for x in labels) or "no segments", packets[:3]))
    client_labels = {p.ip.flow_label for p in sent if p.ip is not None}
    server_labels = {p.ip.flow_label for p in received if p.ip is not None}
    if client_labels and server_labels:
        run.expect(expect.check("each direction has its own label", client_labels != server_labels,
                                "two labels", f"client {sorted(client_labels)}, server {sorted(server_labels)}"))


def _payload_length_is_tcp(p: Packet) -> bool:
    return p.ip is not None and p.tcp is not None and \
        p.ip.total_length - IPV6_HEADER == p.tcp.data_offset * 4 + p.tcp.length


# ---------------------------------------------------------------- TCP over IPv6


@experiment(
    id="tcp-over-ipv6",
    title="The handshake over IPv6: the same three segments, MSS = MTU − 60",
    section="§3.3.1, §2.7",
    topology=TOPOLOGY,
    book="""\
The handshake of §3.3.1 (IPv4):
IP 192.168.1.109.58210 > 192.168.1.108.7: Flags [S], seq 3499889100, win 14600, options [mss 1460,...]
IP 192.168.1.108.7 > 192.168.1.109.58210: Flags [S.], seq 2484101219, ack 3499889101, win 14480, options [mss 1460,...]
IP 192.168.1.109.58210 > 192.168.1.108.7: Flags [.], ack 1, win 229, length 0
(MSS = MTU − 20 − 20; IPv6's fixed header is 40 bytes, so over IPv6 it is MTU − 60)""",
    modern="""The same exchange over IPv6 on 6.x: SYN, SYN-ACK, ACK, each side announcing MSS = MTU − 40 − 20
    (1440 on a 1500-byte link, 1340 with -p mtu=1400); the rest of the options (sackOK, TS, wscale) as
    over IPv4. The close is the IPv4 one.""",
)
def tcp_over_ipv6(run: Run, port: int = 7, mtu: int = 1500) -> None:
    server_ip = run.ip(B, family=6)
    if mtu != 1500:
        for node in (A, B):
            run.change(node, ["ip", "link", "set", "dev", "eth0", "mtu", str(mtu)],
                       undo=[["ip", "link", "set", "dev", "eth0", "mtu", "1500"]], title=f"ip link set eth0 mtu {mtu}")
    run.serve(B, "echo", server_ip, str(port))
    with run.capture([f"{A}:eth0"], f"ip6 and tcp port {port}"):
        r = run.py(A, "connect_timer", server_ip, str(port), "--hold", "0.2")
    run.expect(expect.output_contains(r.stdout, "connected", "the client connected over IPv6"))
    pk = run.packets
    syn, synack = expect.syns(pk), expect.synacks(pk)
    run.expect(expect.count(syn, 1, "exactly one SYN"))
    run.expect(expect.count(synack, 1, "exactly one SYN-ACK"))
    want = mtu - IPV6_HEADER - TCP_HEADER
    for name, packets in (("SYN", syn), ("SYN-ACK", synack)):
        if packets and packets[0].tcp is not None:
            run.expect(expect.equals(f"the {name} announces MSS = MTU {mtu} − 40 (IPv6) − 20 (TCP)", want,
                                     packets[0].tcp.mss, packets[:1]))
    if syn and synack and syn[0].tcp and synack[0].tcp:
        s, sa = syn[0].tcp, synack[0].tcp
        run.expect(expect.equals("the SYN-ACK acknowledges the client's ISN + 1", s.seq + 1, sa.ack,
                                 [syn[0], synack[0]]))
        third = expect.first(pk, lambda p: p.tcp is not None and p.tcp.flag_str == "." and p.tcp.ack == sa.seq + 1)
        run.expect(expect.check("the third segment is a bare ACK of the server's ISN + 1", third is not None,
                                f"ack {sa.seq + 1}", third.summary() if third else "none", [third] if third else []))
    run.expect(expect.every(pk, lambda p: p.ip is not None and p.ip.version == 6, "every segment is IPv6",
                            "IP6"))
    run.expect(expect.count(expect.fins(pk), 2, "one FIN from each side"))


# ---------------------------------------------------------------- §1.6 ARP, as IPv6 does it


@experiment(
    id="ndp-solicit-advert",
    title="Neighbour discovery: a solicitation to the solicited-node group, the advertisement, then the SYN; "
          "none with a warm cache",
    section="§1.6.3 (ARP), for IPv6",
    topology=TOPOLOGY,
    book="""\
§1.6's ARP, IPv4:
1. 00:16:d3:5c:b9:e3 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 192.168.1.109 tell
   192.168.1.108, length 28
2. 08:00:27:53:10:67 > 00:16:d3:5c:b9:e3, ethertype ARP (0x0806), length 60: Reply 192.168.1.109 is-at
   08:00:27:53:10:67, length 46
IPv6 has no ARP: ICMPv6 neighbour discovery (RFC 4861) does its work.""",
    modern="""IPv6 asks the same question with ICMPv6: a neighbor solicitation ("who has B") sent not to
    everyone but to B's solicited-node multicast group ff02::1:ffXX:XXXX (the last 24 bits of B's address;
    Ethernet 33:33:ff:XX:XX:XX), carrying A's MAC; B answers with a unicast neighbor advertisement
    (solicited and override flags, B's MAC), and the queued SYN follows. Hop limit 255 on both, so a
    router could not have forwarded them. `ip -6 neigh flush dev eth0` plays `arp -d`; with the entry
    warm the second connection sends none.""",
)
def ndp_solicit_advert(run: Run, port: int = 7, hold: float = 0.2) -> None:
    client, server = B, A  # as the book's ARP experiment: ernest-laptop connects to Kongming20
    server_ip, client_ip = run.ip(server, family=6), run.ip(client, family=6)
    client_mac, server_mac = run.mac(client), run.mac(server)
    group = solicited_node(server_ip)
    run.serve(server, "echo", server_ip, str(port))
    neighbour_discovery = "icmp6 and (ip6[40] == 135 or ip6[40] == 136)"  # solicitations and advertisements
    with run.capture([f"{client}:eth0"], f"ip6 and (({neighbour_discovery}) or tcp port {port})"):
        run.sh(client, ["ip", "-6", "neigh", "flush", "dev", "eth0"], title="ip -6 neigh flush dev eth0 (arp -d)")
        first = run.py(client, "connect_timer", server_ip, str(port), "--hold", str(hold),
                       title="connect over IPv6 (cold cache)")
        second = run.py(client, "connect_timer", server_ip, str(port), "--hold", str(hold),
                        title="connect again without flushing (negative control)")
    run.expect(expect.output_contains(first.stdout, "connected", "the first connection was made"))
    run.expect(expect.output_contains(second.stdout, "connected", "the second connection was made"))
    pk = run.packets
    syns = expect.syns(pk)
    run.expect(expect.count(syns, 2, "two connections, two SYNs"))
    solicit = expect.first(pk, lambda p: _icmp6(135)(p) and p.icmp is not None and p.icmp.target == server_ip)
    run.expect(expect.sequence(pk, [("solicitation for B", lambda p: _icmp6(135)(p) and p.icmp is not None
                                     and p.icmp.target == server_ip),
                                    ("advertisement of B", lambda p: _icmp6(136)(p) and p.icmp is not None
                                     and p.icmp.target == server_ip),
                                    ("SYN", lambda p: p.tcp is not None and p.tcp.is_syn)],
                               "solicitation, advertisement, then the first SYN"))
    if solicit is not None and solicit.icmp is not None and solicit.ip is not None:
        run.expect(expect.equals(
            "the solicitation goes to B's solicited-node group (IPv6 and Ethernet), with A's MAC, hop limit 255",
            f"> {group} ({multicast_mac(group)}) lladdr {client_mac} hlim 255",
            f"> {solicit.dst} ({solicit.eth_dst}) lladdr {solicit.icmp.lladdr} hlim {solicit.ip.hop_limit}",
            [solicit]))
    advert = expect.first(pk, lambda p: _icmp6(136)(p) and p.icmp is not None and p.icmp.target == server_ip)
    if advert is not None and advert.icmp is not None and advert.ip is not None:
        run.expect(expect.equals(
            "the advertisement is unicast to A, solicited and override, with B's MAC, hop limit 255",
            f"{server_mac} > {client_mac} solicited, override lladdr {server_mac} hlim 255",
            f"{advert.eth_src} > {advert.eth_dst} {advert.icmp.nd_flags} lladdr {advert.icmp.lladdr} "
            f"hlim {advert.ip.hop_limit}", [advert]))
    else:
        run.expect(expect.error("an advertisement of B", "no neighbor advertisement for B was captured"))
    if syns:
        run.expect(expect.equals("the SYN goes to B's MAC, learnt from the advertisement", server_mac,
                                 syns[0].eth_dst, [syns[0]]))
        if len(syns) > 1:
            later = [p for p in expect.between(pk, after=syns[1]) if _icmp6(135)(p) or _icmp6(136)(p)]
            before_second = [p for p in expect.between(pk, after=syns[0], before=syns[1])
                             if _icmp6(135)(p) and p.src == client_ip and p.icmp is not None
                             and p.icmp.target == server_ip and p.dst == group]
            run.expect(expect.count(before_second, 0, "negative control: no multicast solicitation for B "
                                                      "once the cache holds it"))
            run.note(f"{len(later)} neighbour discovery messages after the second SYN (unicast probes, if any)")
