"""IPv6 (§2.7, and §1.6's ARP as IPv6 does it): the header's fields, TCP over IPv6, neighbour discovery.

All three run on book-lan6, the book's LAN in both families; the client and server are the
book's (Kongming20 and ernest-laptop), addressed by their IPv6 addresses.
"""

from __future__ import annotations

import re
from ipaddress import IPv6Address

from lab.capture.records import Packet
from lab.errors import InputError
from lab.experiments import expect
from lab.experiments.book.ip_layer import connect_cold_then_warm
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
    run.expect(expect.output_contains("the client connected over IPv6", r.stdout, "connected"))
    run.expect(expect.output_contains("the echo came back", r.stdout, "received"))
    tcp = [p for p in run.packets if p.ip is not None and p.tcp is not None]
    sent = [p for p in tcp if p.src != server_ip]
    received = [p for p in tcp if p.src == server_ip]
    run.expect(expect.count("one SYN, over IPv6", expect.syns(tcp), 1))
    run.expect(expect.every("every segment is IPv6", tcp, lambda p: p.ip is not None and p.ip.version == 6,
                            "version 6"))
    run.expect(expect.every("no extension header: next header is TCP (6)", tcp,
                            lambda p: p.ip is not None and p.ip.extensions == [] and p.ip.proto == 6, "next header 6"))
    run.expect(expect.every("payload length = TCP header + data "
                            "(the 40-byte fixed header is not counted)", tcp, _payload_length_is_tcp,
                            "payload length = 4 × data offset + data"))
    run.expect(expect.every(f"the client's hop limit is its interface's hop_limit sysctl ({hop_limit})", sent,
                            lambda p: p.ip is not None and p.ip.hop_limit == hop_limit,
                            f"hop limit {hop_limit}"))
    run.expect(expect.every("the server's hop limit is the default 64", received,
                            lambda p: p.ip is not None and p.ip.hop_limit == 64, "hop limit 64"))
    run.expect(expect.every("traffic class 0", tcp, lambda p: p.ip is not None and p.ip.tos == 0, "class 0"))
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
    else:  # a missing packet is an error, not a claim left out
        run.expect(expect.error("each direction has its own label", "no flow label in one direction"))


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
    run.expect(expect.output_contains("the client connected over IPv6", r.stdout, "connected"))
    pk = run.packets
    syn, synack = expect.syns(pk), expect.synacks(pk)
    run.expect(expect.count("exactly one SYN", syn, 1))
    run.expect(expect.count("exactly one SYN-ACK", synack, 1))
    want = mtu - IPV6_HEADER - TCP_HEADER
    for name, packets in (("SYN", syn), ("SYN-ACK", synack)):
        if packets and packets[0].tcp is not None:
            run.expect(expect.equals(f"the {name} announces MSS = MTU {mtu} − 40 (IPv6) − 20 (TCP)", want,
                                     packets[0].tcp.mss, packets[:1]))
        else:  # a missing packet is an error, not a claim left out
            run.expect(expect.error("the MSS announced", "no such segment in the capture"))
    if syn and synack and syn[0].tcp and synack[0].tcp:
        s, sa = syn[0].tcp, synack[0].tcp
        run.expect(expect.equals("the SYN-ACK acknowledges the client's ISN + 1", s.seq + 1, sa.ack,
                                 [syn[0], synack[0]]))
        third = expect.first(pk, lambda p: p.tcp is not None and p.tcp.flag_str == "." and p.tcp.ack == sa.seq + 1)
        run.expect(expect.check("the third segment is a bare ACK of the server's ISN + 1", third is not None,
                                f"ack {sa.seq + 1}", third.summary() if third else "none", [third] if third else []))
    else:  # a missing packet is an error, not a claim left out
        run.expect(expect.error("the handshake's sequence numbers", "no SYN and SYN-ACK pair in the capture"))
    run.expect(expect.every("every segment is IPv6", pk, lambda p: p.ip is not None and p.ip.version == 6,
                            "IP6"))
    run.expect(expect.count("one FIN from each side", expect.fins(pk), 2))


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
    neighbour_discovery = "icmp6 and (ip6[40] == 135 or ip6[40] == 136)"  # solicitations and advertisements
    pk = connect_cold_then_warm(run, client, server, server_ip, str(port), str(hold),
                                f"ip6 and (({neighbour_discovery}) or tcp port {port})",
                                ["ip", "-6", "neigh", "flush", "dev", "eth0"], "ip -6 neigh flush dev eth0 (arp -d)")
    syns = expect.syns(pk)
    solicit = expect.first(pk, lambda p: _icmp6(135)(p) and p.icmp is not None and p.icmp.target == server_ip)
    run.expect(expect.sequence("solicitation, advertisement, then the first SYN", pk,
                               [("solicitation for B", lambda p: _icmp6(135)(p) and p.icmp is not None
                                     and p.icmp.target == server_ip),
                                    ("advertisement of B", lambda p: _icmp6(136)(p) and p.icmp is not None
                                     and p.icmp.target == server_ip),
                                    ("SYN", lambda p: p.tcp is not None and p.tcp.is_syn)]))
    if solicit is not None and solicit.icmp is not None and solicit.ip is not None:
        run.expect(expect.equals(
            "the solicitation goes to B's solicited-node group (IPv6 and Ethernet), with A's MAC, hop limit 255",
            f"> {group} ({multicast_mac(group)}) lladdr {client_mac} hlim 255",
            f"> {solicit.dst} ({solicit.eth_dst}) lladdr {solicit.icmp.lladdr} hlim {solicit.ip.hop_limit}",
            [solicit]))
    else:  # a missing packet is an error, not a claim left out
        run.expect(expect.error("the neighbour solicitation's fields", "no neighbour solicitation in the capture"))
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
            run.expect(expect.count("negative control: no multicast solicitation for B "
                                                      "once the cache holds it", before_second, 0))
            run.note(f"{len(later)} neighbour discovery messages after the second SYN (unicast probes, if any)")
    else:  # a missing packet is an error, not a claim left out
        run.expect(expect.error("the SYN after neighbour discovery", "no SYN in the capture"))


# ---------------------------------------------------------------- §2.7.2 fragmentation, IPv6's way

ROUTER, ISP, FAR = "router", "isp", "far-host"
ECHO_HEADER, FRAGMENT_HEADER = 8, 8


@experiment(
    id="icmpv6-packet-too-big",
    title="A router on a narrower link answers Packet Too Big with its MTU; the sender then fragments, "
          "routers never do",
    section="§2.7.2, §2.3",
    topology=TOPOLOGY,
    book="""\
§2.7.2 IPv6扩展头部: 分片 (Fragment) 头部 — "IPv6的分片只能由源端进行，路由器不能对数据报进行分片"
(in IPv6 only the source fragments; routers do not). §2.3's IPv4 router fragments a datagram
that does not fit the next hop unless DF is set.""",
    modern="""As the book says, on 6.x: the router whose next hop is too narrow drops the datagram and
    answers ICMPv6 Packet Too Big (type 2) with the link's MTU; the sender records that path MTU
    (ip -6 route get shows it) and sends the next datagrams in fragments of its own, each with a
    Fragment header (next header 44) sharing one identification, the first as large as the MTU
    allows with an offset step of 8 bytes. Nothing on the narrow link was fragmented by a router:
    every fragment there carries the original sender's address. The far host's replies meet the
    same narrow link from the other side and get their own Packet Too Big, so the first replies
    are lost until both ends know the path MTU.""",
)
def icmpv6_packet_too_big(run: Run, mtu: int = 1400, size: int = 1452, count: int = 4) -> None:
    a_ip, far_ip = run.ip(A, family=6), run.ip(FAR, family=6)
    router_ip = run.ip(ROUTER, "eth0", family=6)
    datagram = IPV6_HEADER + ECHO_HEADER + size
    if not 1280 <= mtu < datagram <= 1500:
        raise InputError(f"-p size={size} -p mtu={mtu}: the ping ({datagram} bytes) must fit the LAN (1500) and "
                         f"not the narrow link, whose MTU IPv6 wants at least 1280",
                         "choose 1280 ≤ mtu < size + 48 ≤ 1500")
    run.change(A, ["ip", "-6", "route", "flush", "cache"], undo=[["ip", "-6", "route", "flush", "cache"]],
               title="start with no cached path MTU (and forget it at the end)")
    for node, ifname in ((ROUTER, "eth1"), (ISP, "eth0")):
        run.change(node, ["ip", "link", "set", "dev", ifname, "mtu", str(mtu)],
                   undo=[["ip", "link", "set", "dev", ifname, "mtu", "1500"]], title=f"{node} {ifname} mtu {mtu}")
    bpf = "icmp6 or (ip6 and ip6[6] == 44)"  # ICMPv6, and fragments (their next header is Fragment, 44)
    with run.capture([f"{A}:eth0", f"{ROUTER}:eth1"], bpf):
        ping = run.sh(A, ["ping", "-6", "-n", "-c", str(count), "-i", "0.3", "-W", "2", "-s", str(size), far_ip],
                      title=f"ping -6 -s {size} the far host")
        route = run.sh(A, ["ip", "-6", "route", "get", far_ip])
    pk = run.packets
    at_a = expect.at(pk, f"{A}:eth0")
    narrow = expect.at(pk, f"{ROUTER}:eth1")
    too_big = [p for p in at_a if p.icmp is not None and p.icmp.version == 6 and p.icmp.type == 2]
    run.expect(expect.count("the router answers once with Packet Too Big", too_big, 1))
    if too_big and too_big[0].icmp is not None:
        e, msg = too_big[0], too_big[0].icmp
        run.expect(expect.equals("from the router, with the narrow link's MTU", f"{router_ip} mtu {mtu}",
                                 f"{e.src} mtu {msg.mtu}", [e]))
        inner = msg.inner
        run.expect(expect.equals("it quotes A's echo request to the far host", f"{a_ip} > {far_ip}",
                                 f"{inner.src} > {inner.dst}" if inner else "nothing", [e]))
    else:  # a missing packet is an error, not a claim left out
        run.expect(expect.error("the Packet Too Big's fields", "no Packet Too Big in the capture"))
    whole = [p for p in at_a if p.src == a_ip and p.ip is not None and not p.ip.has_fragment_header
             and p.ip.total_length == datagram]
    run.expect(expect.count(f"one whole {datagram}-byte request leaves A: the first, before it knew", whole, 1))
    pieces = [p for p in at_a if p.src == a_ip and p.ip is not None and p.ip.has_fragment_header]
    ids = sorted({p.ip.id for p in pieces if p.ip is not None})
    run.expect(expect.count(f"the {count - 1} later requests leave in two fragments each", pieces, 2 * (count - 1)))
    run.expect(expect.every(f"every fragment fits the path MTU {mtu}", pieces,
                            lambda p: p.ip is not None and p.ip.total_length <= mtu, f"≤ {mtu} bytes"))
    firsts = [p for p in pieces if p.ip is not None and p.ip.frag_offset == 0]
    largest = (mtu - IPV6_HEADER - FRAGMENT_HEADER) // 8 * 8
    run.expect(expect.every(f"each first fragment carries {largest} bytes (the most that fits, a multiple of 8)",
                            firsts,
                            lambda p: p.ip is not None and p.ip.mf and p.ip.payload_length == largest,
                            f"Fragment header + {largest} bytes, more fragments"))
    run.expect(expect.check("each datagram's fragments share one identification", len(ids) == count - 1,
                            f"{count - 1} identifications", ", ".join(str(i) for i in ids) or "none", pieces[:4]))
    routers = {run.ip(ROUTER, "eth1", family=6), run.ip(ISP, "eth0", family=6), router_ip}
    on_link = [p for p in narrow if p.ip is not None and p.ip.has_fragment_header]
    run.expect(expect.count("fragments cross the narrow link", on_link, min=2))
    run.expect(expect.every("routers never fragment: every fragment on the narrow link is from A or the far host",
                            on_link,
                            lambda p: p.src in (a_ip, far_ip) and p.src not in routers,
                            f"source {a_ip} or {far_ip}"))
    run.expect(expect.every(f"nothing larger than {mtu} bytes crosses the narrow link", narrow,
                            lambda p: p.ip is not None and p.ip.total_length <= mtu, f"≤ {mtu}"))
    run.expect(expect.output_matches("the fragmented pings are answered", ping.stdout,
                                     rf"{size + ECHO_HEADER} bytes from {far_ip}"))
    run.expect(expect.output_contains("ip -6 route get shows the cached path MTU", route.stdout, f"mtu {mtu}"))


# ---------------------------------------------------------------- getaddrinfo with both families

# RFC 6724's default policy table, as gai.conf writes it (any precedence line replaces glibc's whole table)
RFC6724_GAI_CONF = """\
# lab: dual-stack-resolution — RFC 6724 §2.1's default policy table
precedence ::1/128 50
precedence ::/0 40
precedence ::ffff:0:0/96 35
precedence 2002::/16 30
precedence 2001::/32 5
precedence fc00::/7 3
precedence ::/96 1
precedence fec0::/10 1
precedence 3ffe::/16 1
"""
SEQUENTIAL_CLIENT = """\
import socket, sys, time
started = time.monotonic()
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
print(f"connected to {sock.getpeername()[0]} after {time.monotonic() - started:.3f} s")
"""


def stream_order(getent: str) -> list[str]:
    """The addresses ``getent ahosts NAME`` lists for SOCK_STREAM, in getaddrinfo's order."""
    return [line.split()[0] for line in getent.splitlines() if len(line.split()) >= 2 and line.split()[1] == "STREAM"]


@experiment(
    id="dual-stack-resolution",
    title="A name with both addresses: getaddrinfo's order (glibc's table, gai.conf), and the fall back to IPv4 "
          "when IPv6 is cut",
    section="§5.12.2 (getaddrinfo), with IPv6",
    topology=TOPOLOGY,
    book="""\
§5.12.2 getaddrinfo: "getaddrinfo函数既能通过主机名获得IP地址（内部使用的是gethostbyname函数），也能通过服务名
获得端口号"; it returns a linked list of addrinfo, "hints" choosing the family (AF_UNSPEC: both).
The book does not say in which order the list comes, nor what a client should do with it.""",
    modern="""With AF_UNSPEC glibc sorts the addresses by RFC 3484's policy table, its built-in default:
    IPv6 (::/0, precedence 40) before IPv4 (::ffff:0:0/96, 10), so a unique-local fd00:: address comes
    first. RFC 6724, which replaced RFC 3484, gives IPv4 35 and unique-local addresses 3, and an
    /etc/gai.conf with its table (any precedence line replaces the whole table) puts IPv4 first. A
    client that tries the list in order (Python's socket.create_connection, like most) waits out its
    whole connect timeout on an IPv6 path that drops its SYNs before it tries IPv4; one with Happy
    Eyeballs (RFC 8305; curl: --happy-eyeballs-timeout-ms, 200 ms) starts IPv4 after that short
    delay and keeps whichever connects first.""",
)
def dual_stack_resolution(run: Run, port: int = 8080, eyeballs_ms: int = 200, timeout: float = 1.0) -> None:
    b4, b6 = run.ip(B, family=4), run.ip(B, family=6)
    run.spawn(B, [run.python(B), "-u", "-m", "http.server", "--bind", "::", str(port)], ready="Serving HTTP",
              title=f"python3 -m http.server --bind :: {port} (one socket, both families)")
    saved = run.read_etc(A, "gai.conf")
    try:
        default = run.sh(A, ["getent", "ahosts", B], title=f"getent ahosts {B} (glibc's default order)")
        run.write_etc(A, "gai.conf", RFC6724_GAI_CONF)
        rfc6724 = run.sh(A, ["getent", "ahosts", B], title=f"getent ahosts {B} (gai.conf: RFC 6724's table)")
    finally:
        run.write_etc(A, "gai.conf", saved)
    run.expect(expect.equals("glibc's default (RFC 3484) puts the IPv6 address first", [b6, b4],
                             stream_order(default.stdout)))
    run.expect(expect.equals("RFC 6724's table (in gai.conf) puts IPv4 above a unique-local address", [b4, b6],
                             stream_order(rfc6724.stdout)))
    url = f"http://{B}:{port}/"
    curl = ["curl", "-s", "-o", "/dev/null", "--max-time", "10", "--happy-eyeballs-timeout-ms", str(eyeballs_ms),
            "-w", "%{remote_ip} %{time_connect}", url]
    both = run.sh(A, curl, title="curl by name, both paths open")
    run.expect(expect.equals("with both paths open the client uses the first address: IPv6", b6,
                             (both.stdout.split() or ["none"])[0]))
    run.drop(f"{B}:eth0", f"tcp syn dport {port} to {b6}")  # the IPv6 path is cut; IPv4 is not
    with run.capture([f"{A}:eth0"], f"tcp port {port}"):
        eyeballs = run.sh(A, curl, title=f"curl by name, IPv6 cut (Happy Eyeballs, {eyeballs_ms} ms)")
        sequential = run.sh(A, [run.python(A), "-c", SEQUENTIAL_CLIENT, B, str(port), str(timeout)],
                            title=f"socket.create_connection by name, IPv6 cut (timeout {timeout:g} s each)")
    fields = eyeballs.stdout.split()
    run.expect(expect.equals("Happy Eyeballs connects over IPv4", b4, fields[0] if fields else "none"))
    syns = expect.syns(run.packets)
    first6 = expect.first(syns, lambda p: p.dst == b6)
    first4 = expect.first(syns, lambda p: p.dst == b4)
    if first6 is not None and first4 is not None:
        gap = first4.time - first6.time
        run.expect(expect.within(f"curl's first IPv4 SYN follows its IPv6 SYN after ≈ {eyeballs_ms} ms", gap,
                                 eyeballs_ms / 1000 * 0.8, eyeballs_ms / 1000 + 0.15, [first6, first4]))
    else:
        run.expect(expect.error("an IPv6 SYN, then an IPv4 SYN", "the capture lacks one of them",
                                "an IPv6 SYN, then an IPv4 SYN"))
    answered6 = [p for p in expect.synacks(run.packets) if p.src == b6]
    run.expect(expect.count("no SYN-ACK comes back over IPv6 (its SYNs are dropped)", answered6, 0))
    run.expect(expect.output_matches("the in-order client ends up on IPv4 too", sequential.stdout,
                                     rf"connected to {b4} after"))
    took = [float(x) for x in re.findall(r"after ([\d.]+) s", sequential.stdout)]
    run.expect(expect.within(f"but only after waiting out its {timeout:g} s timeout on the IPv6 address",
                             took[0] if took else None, timeout * 0.95, timeout + 0.5))
