"""Chapters 1–2 below TCP: ARP (§1.6.3), the IPv4 header (§2.2.2), fragmentation (§2.3),
ICMP redirects (§2.4–2.6), ICMP errors (ext) and name resolution through /etc/hosts (§4.4, 5-12).

All run on ``book-lan.yaml``: kongming20 (A) and ernest-laptop (B) on the LAN, the
router R at 192.168.1.1, a p2p link to the isp router, and far-host (W) behind it.
Routes, neighbour flushes, MTUs and per-node /etc files are changed with plain
commands and put back in ``finally`` blocks; sysctls go through ``run.sysctl``.
"""

from __future__ import annotations

import json
import re
import socket
import time

from lab.capture.records import Packet
from lab.errors import InputError
from lab.experiments import expect
from lab.experiments.book.ip_model import (
    ICMP_ECHO_HEADER,
    IP_HEADER,
    Fragment,
    arp_failure_time,
    fragment_plan,
    host_in_network,
    syn_datagram_length,
    syn_options_length,
)
from lab.experiments.context import Run
from lab.experiments.engine import experiment

A, B = "kongming20", "ernest-laptop"
ROUTER, ISP, FAR = "router", "isp", "far-host"
BROADCAST = "ff:ff:ff:ff:ff:ff"
ZERO_MAC = "00:00:00:00:00:00"


# ---------------------------------------------------------------- small helpers


def _mtu(run: Run, node: str, ifname: str = "eth0") -> int:
    r = run.sh(node, ["ip", "-j", "link", "show", "dev", ifname], record=False)
    return int(json.loads(r.stdout)[0]["mtu"])


def _echo_requests(packets: list[Packet], src: str) -> list[Packet]:
    return [p for p in expect.icmp(packets, type=8) if p.src == src]


def _frags(packets: list[Packet], src: str) -> list[Packet]:
    return [p for p in expect.fragments(packets) if p.src == src]


def _check_fragments(run: Run, frags: list[Packet], plan: list[Fragment], who: str) -> None:
    """The fragments of one datagram match ``plan``: count, one IP id, offsets, lengths, MF bits."""
    wanted = plan if len(plan) > 1 else []
    run.expect(expect.count(frags, len(wanted), f"{who}: {len(wanted)} fragments"))
    if not wanted or len(frags) != len(wanted):
        return
    ids = {p.ip.id for p in frags if p.ip}
    run.expect(expect.check(f"{who}: every fragment carries the same IP id", len(ids) == 1, "one id",
                            ", ".join(map(str, sorted(ids))), frags))
    for i, (p, want) in enumerate(zip(frags, wanted, strict=True), 1):
        ip = p.ip
        assert ip is not None
        seen = f"offset {ip.frag_offset} (×8 = {ip.frag_offset_bytes}), length {ip.total_length}, MF={int(ip.mf)}"
        run.expect(expect.equals(
            f"{who}: fragment {i} at offset field {want.offset_units}, total length {want.total_length}, "
            f"MF={int(want.mf)}",
            f"offset {want.offset_units} (×8 = {want.offset}), length {want.total_length}, MF={int(want.mf)}",
            seen, [p]))
    run.expect(expect.every(frags, lambda p: p.ip is not None and not p.ip.df,
                            f"{who}: fragments carry no DF bit", "DF=0"))


def _restore_mtus(run: Run, saved: list[tuple[str, str, int]]) -> None:
    for node, ifname, mtu in reversed(saved):
        run.sh(node, ["ip", "link", "set", "dev", ifname, "mtu", str(mtu)],
               title=f"put {node} {ifname} back to mtu {mtu}")


# ---------------------------------------------------------------- §1.6.3 ARP


@experiment(
    id="arp-request-reply",
    title="ARP: a broadcast who-has, a unicast is-at, then the SYN; no ARP with a warm cache",
    section="§1.6.3",
    topology="book-lan.yaml",
    params={"port": 7, "hold": 0.2},
    book="""\
$ sudo arp -d 192.168.1.109
$ sudo tcpdump -i eth0 -ent '(dst 192.168.1.109 and src 192.168.1.108) or (dst 192.168.1.108 and src 192.168.1.109)'
$ telnet 192.168.1.109 echo
1. 00:16:d3:5c:b9:e3 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 192.168.1.109 tell
   192.168.1.108, length 28
2. 08:00:27:53:10:67 > 00:16:d3:5c:b9:e3, ethertype ARP (0x0806), length 60: Reply 192.168.1.109 is-at
   08:00:27:53:10:67, length 46
(the cache entry must be deleted first, "否则ARP通信不被执行": otherwise no ARP takes place)""",
    modern="""The exchange is the book's. Both frames are 42 bytes here: the 60-byte reply in the book was
    padded to Ethernet's minimum by the NIC, and a veth pair does no padding. `ip neigh flush dev eth0`
    replaces `arp -d`. Without the flush the entry is REACHABLE (or STALE, still usable) and the second
    connection sends no ARP; a STALE entry only triggers unicast probes (DELAY→PROBE, delay_first_probe_time
    = 5 s) when no upper layer confirms the neighbour, which TCP's ACKs do.""",
)
def arp_request_reply(run: Run) -> None:
    client, server = B, A  # the book telnets from ernest-laptop to Kongming20's echo service
    client_ip, server_ip = run.ip(client), run.ip(server)
    client_mac, server_mac = run.mac(client), run.mac(server)
    port, hold = str(run.p.port), str(run.p.hold)
    run.serve(server, "echo", server_ip, port)
    with run.capture([f"{client}:eth0"], f"arp or host {server_ip}"):
        run.sh(client, ["ip", "neigh", "flush", "dev", "eth0"], title="ip neigh flush dev eth0 (the book's arp -d)")
        first = run.py(client, "connect_timer", server_ip, port, "--hold", hold, title="connect to echo (cold cache)")
        second = run.py(client, "connect_timer", server_ip, port, "--hold", hold,
                        title="connect again without flushing (negative control)")
    run.expect(expect.output_contains(first.stdout, "connected", "the first connection was made"))
    run.expect(expect.output_contains(second.stdout, "connected", "the second connection was made"))

    pk = run.packets
    syns = expect.syns(pk)
    run.expect(expect.count(syns, 2, "two connections, two SYNs"))
    run.expect(expect.sequence(pk, [("ARP request", expect.is_arp("request")), ("ARP reply", expect.is_arp("reply")),
                                    ("SYN", lambda p: p.tcp is not None and p.tcp.is_syn)],
                               "ARP request, ARP reply, then the first SYN"))
    head = pk[:2]
    run.expect(expect.check("the first two frames are the ARP exchange",
                            len(head) == 2 and head[0].arp is not None and head[1].arp is not None
                            and head[0].arp.is_request and head[1].arp.is_reply,
                            "#1 request, #2 reply", ", ".join(f"#{p.no} {p.summary()}" for p in head) or "no frames",
                            head))
    request = expect.first(pk, expect.is_arp("request"))
    reply = expect.first(pk, expect.is_arp("reply"))
    if request is not None and request.arp is not None:
        a = request.arp
        run.expect(expect.equals(
            "request: broadcast, type 0x0806, op 1, who-has B tell A, target MAC zero",
            f"{client_mac} > {BROADCAST} 0x0806 op 1 spa {client_ip} tpa {server_ip} sha {client_mac} tha {ZERO_MAC}",
            f"{request.eth_src} > {request.eth_dst} 0x{request.eth_type:04x} op {a.op} spa {a.spa} tpa {a.tpa} "
            f"sha {a.sha} tha {a.tha}", [request]))
    if reply is not None and reply.arp is not None:
        a = reply.arp
        run.expect(expect.equals(
            "reply: op 2, B is-at B's MAC (= the frame's source), sent to A's MAC",
            f"{server_mac} > {client_mac} op 2 spa {server_ip} sha {server_mac} tpa {client_ip}",
            f"{reply.eth_src} > {reply.eth_dst} op {a.op} spa {a.spa} sha {a.sha} tpa {a.tpa}", [reply]))
    arps = expect.arp(pk)
    run.expect(expect.every(arps, lambda p: p.length in (42, 60), "every ARP frame is 42 or 60 bytes",
                            "42 (veth, unpadded) or 60 (padded)"))
    if syns:
        run.expect(expect.equals("the SYN goes to B's MAC, learnt from the reply", server_mac, syns[0].eth_dst,
                                 [syns[0]]))
        later = expect.arp(expect.between(pk, after=syns[0]))
        run.expect(expect.count(later, 0, "negative control: no ARP once the cache holds B (second connection)"))


# ---------------------------------------------------------------- §2.2.2 the IPv4 header


@experiment(
    id="ip-header-fields",
    title="The IPv4 header of a SYN: version 4, IHL 5, DF, TTL = ip_default_ttl, protocol 6, length 60",
    section="§2.2.2",
    topology="book-lan.yaml",
    params={"port": 7, "ttl": 64, "timestamps": 1, "sack": 1, "window_scaling": 1},
    book="""\
$ sudo tcpdump -ntx -i lo
$ telnet 127.0.0.1
IP (tos 0x10, ttl 64, id …, offset 0, flags [DF], proto TCP (6), length 60)
    127.0.0.1.… > 127.0.0.1.23: Flags [S], … length 0
    0x0000:  4510 003c …  (4 = version, 5 = IHL in 32-bit words, 10 = tos, 003c = 60)""",
    modern="""Same header on 6.x, except tos: the book's telnet set IPTOS_LOWDELAY (0x10), our client and
    inetutils telnet send 0x0 (not asserted). DF is set because PMTU discovery is on (ip_no_pmtu_disc=0:
    TCP sockets use IP_PMTUDISC_WANT). TTL is net.ipv4.ip_default_ttl (per namespace; this run sets it).
    The length is 20 + 20 + the SYN's options, which follow tcp_timestamps, tcp_sack and
    tcp_window_scaling (all on: mss, sackOK, TS, nop, wscale = 20 bytes → 60). The SYN-ACK has IP id 0:
    ip_build_and_send_pkt leaves the id at 0 on DF packets.""",
)
def ip_header_fields(run: Run) -> None:
    p = run.p
    server_ip = run.ip(B)
    run.sysctl(A, "net.ipv4.ip_default_ttl", p.ttl)
    run.sysctl(A, "net.ipv4.tcp_timestamps", p.timestamps)
    run.sysctl(A, "net.ipv4.tcp_sack", p.sack)
    run.sysctl(A, "net.ipv4.tcp_window_scaling", p.window_scaling)
    run.serve(B, "echo", server_ip, str(p.port))
    with run.capture([f"{A}:eth0"], f"tcp port {p.port}"):
        r = run.py(A, "connect_timer", server_ip, str(p.port), "--hold", "0.1")
    run.expect(expect.output_contains(r.stdout, "connected", "the client connected"))
    syns, synacks = expect.syns(run.packets), expect.synacks(run.packets)
    run.expect(expect.count(syns, 1, "one SYN"))
    if not syns or syns[0].ip is None or syns[0].tcp is None:
        return
    syn, ip = syns[0], syns[0].ip
    length = syn_datagram_length(bool(p.timestamps), bool(p.sack), bool(p.window_scaling))
    fields = [("version", 4, ip.version), ("IHL (32-bit words)", 5, ip.ihl), ("DF", True, ip.df), ("MF", False, ip.mf),
              ("fragment offset", 0, ip.frag_offset), ("TTL = ip_default_ttl", p.ttl, ip.ttl),
              ("protocol (TCP)", 6, ip.proto), ("total length", length, ip.total_length)]
    for name, want, got in fields:
        run.expect(expect.equals(f"SYN {name}", want, got, [syn]))
    options = syn_options_length(bool(p.timestamps), bool(p.sack), bool(p.window_scaling))
    run.expect(expect.equals("the TCP header is 20 bytes + the SYN's options", 20 + options,
                             syn.tcp.data_offset * 4 if syn.tcp else None, [syn]))
    run.note(f"the SYN's tos is 0x{ip.tos:02x} (the book's telnet sent 0x10); id {ip.id}")
    if synacks and synacks[0].ip is not None:
        sa = synacks[0].ip
        run.expect(expect.equals("the SYN-ACK has DF set and IP id 0", "DF id 0",
                                 f"{'DF' if sa.df else 'no DF'} id {sa.id}", [synacks[0]]))
    else:
        run.expect(expect.count(synacks, 1, "one SYN-ACK"))


# ---------------------------------------------------------------- §2.3 fragmentation


@experiment(
    id="ip-fragmentation",
    title="ping -s 1473: two fragments (1500 + 21 bytes) sharing one IP id, the reply likewise",
    section="§2.3",
    topology="book-lan.yaml",
    params={"size": 1473, "small": 56},
    book="""\
$ ping ernest-laptop -s 1473
$ sudo tcpdump -ntv icmp
1. IP (tos 0x0, ttl 64, id X, offset 0, flags [+], proto ICMP (1), length 1500) A > B: ICMP echo request, …, length 1480
2. IP (tos 0x0, ttl 64, id X, offset 1480, flags [none], proto ICMP (1), length 21) A > B: icmp
(1473 data bytes + 8 ICMP header = 1481 > 1480 = MTU 1500 − 20: the last byte goes in a second fragment)""",
    modern="""Identical on 6.x, replies included (the responder's kernel fragments its echo reply the same
    way). Small pings carry DF: iputils' default pmtudisc is "want" (IP_PMTUDISC_WANT), so datagrams that
    fit go out with DF and oversized ones are fragmented locally without it. Offsets are multiples of 8
    (field 185 = 1480 bytes).""",
)
def ip_fragmentation(run: Run) -> None:
    size, small = run.p.size, run.p.small
    a_ip, b_ip = run.ip(A), run.ip(B)
    mtu = _mtu(run, A)
    if small + ICMP_ECHO_HEADER + IP_HEADER > mtu:
        raise InputError(f"-p small={small}: that ping does not fit the LAN's MTU {mtu}",
                         f"use at most {mtu - ICMP_ECHO_HEADER - IP_HEADER}")
    plan = fragment_plan(size + ICMP_ECHO_HEADER, mtu)
    with run.capture([f"{A}:eth0"], "icmp"):
        big = run.sh(A, ["ping", "-c1", "-W2", "-s", str(size), b_ip])
        little = run.sh(A, ["ping", "-c1", "-W2", "-s", str(small), b_ip])
    pk = run.packets
    _check_fragments(run, _frags(pk, a_ip), plan, f"echo request ({size + ICMP_ECHO_HEADER} ICMP bytes, MTU {mtu})")
    _check_fragments(run, _frags(pk, b_ip), plan, "echo reply")
    first = next((p for p in _frags(pk, a_ip) if p.icmp is not None), None)
    if len(plan) > 1:
        run.expect(expect.check("the first fragment carries the ICMP echo request header", first is not None
                                and first.icmp is not None and first.icmp.type == 8, "ICMP type 8",
                                first.summary() if first else "no fragment with an ICMP header",
                                [first] if first else []))
    run.expect(expect.output_contains(big.stdout, f"{size + ICMP_ECHO_HEADER} bytes from {b_ip}",
                                      "ping got the reassembled reply"))
    whole = [p for p in _echo_requests(pk, a_ip) if p.ip is not None and p.ip.total_length == small + 28]
    run.expect(expect.count(whole, 1, f"one unfragmented echo request of {small + 28} bytes"))
    run.expect(expect.every(whole, lambda p: p.ip is not None and p.ip.df and not p.ip.is_fragment,
                            "the small echo request carries DF (iputils pmtudisc 'want')", "DF=1, not a fragment"))
    run.expect(expect.output_contains(little.stdout, f"{small + ICMP_ECHO_HEADER} bytes from {b_ip}",
                                      "the small ping got its reply"))


# ---------------------------------------------------------------- §2.4–2.6 ICMP redirect


@experiment(
    id="icmp-redirect",
    title="A default route via the wrong gateway: it forwards and sends ICMP redirect (5/1) naming the router",
    section="§2.4–2.6",
    topology="book-lan.yaml",
    params={"count": 2, "interval": 0.2, "warm_arp": True},
    book="""\
(§2.6) ICMP redirect, type 5: code 0 redirects a network, code 1 a host; the message carries the better
gateway's address. A host accepts it when /proc/sys/net/ipv4/conf/all/accept_redirects is 1; a router
(ip_forward=1) that forwards a datagram back out of the interface it came in on sends one
(send_redirects=1).
$ sudo route -Cn        # the route cache: the far host now has a cached route via the router""",
    modern="""The route cache (`route -Cn`) was removed in Linux 3.6; a redirect now creates a next-hop
    exception, shown by `ip route get W` as `via R … cache <redirected> expires 300sec`. ping prints
    `Redirect Host(New nexthop: R)`. shared_media=1 (the default) lets A accept a redirect to any
    on-link gateway. A 6.x detail the book could not show: __ip_do_redirect only records the exception
    if the new gateway's neighbour entry is already valid; otherwise it just sends an ARP request for it
    and drops the redirect. So with R in A's ARP cache (warm_arp, the usual case: R was A's gateway) the
    second echo request goes to R's MAC; with a cold cache the first redirect only triggers ARP, the
    second redirect is the one recorded, and only the third echo goes to R.""",
)
def icmp_redirect(run: Run) -> None:
    p = run.p
    if p.interval < 0.1:
        raise InputError(f"-p interval={p.interval}: G rate-limits its redirects (ip_rt_redirect_load = 20 ms, "
                         "doubling after each one), so echoes closer than 0.1 s apart may get none",
                         "use -p interval=0.1 or more")
    gateway, router = B, ROUTER  # G: the wrong gateway, a LAN host that forwards; R: the real router
    a_ip, g_ip, r_ip, w_ip = run.ip(A), run.ip(gateway), run.ip(router, "eth0"), run.ip(FAR)
    g_mac, r_mac = run.mac(gateway), run.mac(router, "eth0")
    run.sysctl(gateway, "net.ipv4.ip_forward", 1)
    run.sysctl(gateway, "net.ipv4.conf.all.send_redirects", 1)
    run.sysctl(gateway, "net.ipv4.conf.eth0.send_redirects", 1)
    run.sysctl(A, "net.ipv4.ip_forward", 0)
    run.sysctl(A, "net.ipv4.conf.all.accept_redirects", 1)
    run.sysctl(A, "net.ipv4.conf.eth0.accept_redirects", 1)
    run.sh(A, ["ip", "neigh", "flush", "dev", "eth0"], title="start from an empty ARP cache")
    if p.warm_arp:
        run.sh(A, ["ping", "-c1", "-W1", r_ip], title="ping the router once: R is in A's ARP cache")
    # the first echo that goes to R's MAC (see modern=): every echo before it is forwarded by G
    redirected_from = 2 if p.warm_arp else 3
    try:
        run.sh(A, ["ip", "route", "replace", "default", "via", g_ip], title=f"A's default route via G ({g_ip})")
        with run.capture([f"{A}:eth0"]):
            ping = run.sh(A, ["ping", "-c", str(p.count), "-i", str(p.interval), "-W2", w_ip])
        route = run.sh(A, ["ip", "route", "get", w_ip])
    finally:
        run.sh(A, ["ip", "route", "replace", "default", "via", r_ip], title="A's default route back via R")
        run.sh(A, ["ip", "route", "flush", "cache"], title="drop the redirect exception")

    pk = run.packets
    echoes = _echo_requests(pk, a_ip)
    redirects = [q for q in expect.icmp(pk, type=5) if q.src == g_ip]
    n_redirects = min(p.count, redirected_from - 1)
    run.expect(expect.count(echoes, p.count, f"{p.count} echo requests"))
    run.expect(expect.count(redirects, n_redirects, f"G sends {n_redirects} redirect(s)"))
    if redirects and redirects[0].icmp is not None:
        r0 = redirects[0].icmp
        inner = r0.inner
        run.expect(expect.equals("the redirect is type 5 code 1 (host)", "5/1", f"{r0.type}/{r0.code}",
                                 [redirects[0]]))
        run.expect(expect.equals("its gateway field is the router R", r_ip, r0.gateway, [redirects[0]]))
        run.expect(expect.equals("the quoted datagram is A's echo request to W", f"{a_ip} > {w_ip} proto 1",
                                 f"{inner.src} > {inner.dst} proto {inner.proto}" if inner else "nothing quoted",
                                 [redirects[0]]))
    for i, echo in enumerate(echoes, 1):
        via, mac = ("G", g_mac) if i < redirected_from else ("R", r_mac)
        run.expect(expect.equals(f"echo request {i} goes to {via}'s MAC", mac, echo.eth_dst, [echo]))
    replies = [q for q in expect.icmp(pk, type=0) if q.src == w_ip]
    run.expect(expect.count(replies, p.count, "every echo is answered (via R, which has a direct route back)"))
    if n_redirects:
        run.expect(expect.output_matches(ping.stdout, re.escape(f"Redirect Host(New nexthop: {r_ip})"),
                                         "ping reports the redirect"))
    if p.count >= redirected_from - 1:
        run.expect(expect.output_contains(route.stdout, f"via {r_ip}", "ip route get W: via R"))
        run.expect(expect.output_contains(route.stdout, "redirected", "ip route get W: the route is <redirected>"))
    else:
        run.expect(expect.check("ip route get W: no redirect was recorded yet", "redirected" not in route.stdout,
                                "no <redirected>", route.stdout.strip()))


# ---------------------------------------------------------------- ICMP errors (ext)

_ERRORS_BOOK = """\
(the book has no capture of these: §1.2 and §2.1 name the ICMP error types)
type 3  目标不可到达 destination unreachable (code 1 host, 3 port, 4 fragmentation needed and DF set)
type 5  重定向 redirect
type 11 超时 time exceeded: "某个中转路由器发现IP数据报在网络上存活的时间太长 … 返回一个ICMP错误消息（超时错误）"
"""


@experiment(
    id="icmp-errors-ttl-exceeded",
    title="ICMP errors: ping -t1 — the router that decrements the TTL to 0 answers time exceeded (11/0)",
    section="§2.1 (ext)",
    topology="book-lan.yaml",
    params={"ttl": 1},
    book=_ERRORS_BOOK + "$ ping -t 1 W   →   From R icmp_seq=1 Time to live exceeded",
    modern="""Every router on the path that would forward a datagram with TTL 1 drops it and sends
    ICMP 11/0 from the address of its interface toward the sender: ttl=1 is answered by R
    (192.168.1.1), ttl=2 by the isp router (10.0.0.2), ttl=3 reaches W. The error quotes the
    offending header (TTL 1 as it arrived) and 8 bytes of its payload; icmp_ratelimit (1 s per
    destination for the types in icmp_ratemask) does not bite on one probe.""",
)
def icmp_errors_ttl(run: Run) -> None:
    ttl = run.p.ttl
    if ttl < 1:
        raise InputError(f"-p ttl={ttl}: the TTL must be at least 1")
    a_ip, w_ip = run.ip(A), run.ip(FAR)
    hops = [run.ip(ROUTER, "eth0"), run.ip(ISP, "eth0")]  # the routers on the way to W, in order
    with run.capture([f"{A}:eth0"], "icmp"):
        ping = run.sh(A, ["ping", "-c1", "-W2", "-t", str(ttl), w_ip])
    pk = run.packets
    echoes, exceeded = _echo_requests(pk, a_ip), expect.icmp(pk, type=11)
    run.expect(expect.count(echoes, 1, "one echo request"))
    if echoes and echoes[0].ip is not None:
        run.expect(expect.equals("it leaves with the TTL asked for", ttl, echoes[0].ip.ttl, echoes[:1]))
    if ttl > len(hops):
        run.expect(expect.count(exceeded, 0, f"TTL {ttl} outlives the {len(hops)} routers: no time exceeded"))
        run.expect(expect.output_contains(ping.stdout, f"bytes from {w_ip}", "W answers"))
        return
    hop = hops[ttl - 1]
    run.expect(expect.count(exceeded, 1, "one time exceeded"))
    if not exceeded or exceeded[0].icmp is None:
        return
    te, msg = exceeded[0], exceeded[0].icmp
    run.expect(expect.equals(f"type 11 code 0 from router {ttl} on the path", f"11/0 from {hop}",
                             f"{msg.type}/{msg.code} from {te.src}", [te]))
    inner = msg.inner
    want = f"{a_ip} > {w_ip} proto 1 id {echoes[0].ip.id if echoes and echoes[0].ip else '?'}"
    run.expect(expect.equals("it quotes the echo request's IP header", want,
                             f"{inner.src} > {inner.dst} proto {inner.proto} id {inner.id}" if inner else "nothing",
                             [te, *echoes[:1]]))
    run.expect(expect.output_contains(ping.stdout, f"From {hop} icmp_seq=1 Time to live exceeded",
                                      "ping reports it"))


@experiment(
    id="icmp-errors-port-unreachable",
    title="ICMP errors: UDP to a closed port — port unreachable (3/3), ECONNREFUSED on a connected socket",
    section="§2.1 (ext)",
    topology="book-lan.yaml",
    params={"port": 9999},
    book=_ERRORS_BOOK + "UDP to W:9999  →  ICMP W udp port 9999 unreachable",
    modern="""As the RFCs say: W has no socket on the port, so it answers with 3/3 quoting the datagram's
    IP header and UDP header. Only a *connected* UDP socket hears about it (the kernel matches the quoted
    ports to the socket): the next recv() fails with ECONNREFUSED. Port unreachable is in icmp_ratemask,
    so W sends at most about one per second per destination (icmp_ratelimit=1000 ms, with a small burst);
    one datagram is well inside that.""",
)
def icmp_errors_port(run: Run) -> None:
    port = run.p.port
    a_ip, w_ip = run.ip(A), run.ip(FAR)
    with run.capture([f"{A}:eth0"], "icmp or udp"):
        r = run.py(A, "udp_client", w_ip, str(port), "--timeout", "2")
    pk = run.packets
    sent = expect.udp(pk, dport=port, src=a_ip)
    errors = expect.icmp(pk, type=3)
    run.expect(expect.count(sent, 1, f"one datagram to W:{port}"))
    run.expect(expect.count(errors, 1, "one destination unreachable"))
    if errors and errors[0].icmp is not None:
        e, msg = errors[0], errors[0].icmp
        run.expect(expect.equals("type 3 code 3 (port) from W", f"3/3 from {w_ip}",
                                 f"{msg.type}/{msg.code} from {e.src}", [e]))
        inner = msg.inner
        sport = sent[0].udp.sport if sent and sent[0].udp else None
        run.expect(expect.equals("it quotes the datagram's addresses and ports",
                                 f"{a_ip}:{sport} > {w_ip}:{port} proto 17",
                                 f"{inner.src}:{inner.sport} > {inner.dst}:{inner.dport} proto {inner.proto}"
                                 if inner else "nothing", [e, *sent[:1]]))
    run.expect(expect.errno("ECONNREFUSED", r.stdout, "the connected socket's recv() fails with ECONNREFUSED"))


@experiment(
    id="icmp-errors-host-unreachable",
    title="ICMP errors: ping an absent far host — the last router ARPs, gives up, sends host unreachable (3/1)",
    section="§2.1 (ext)",
    topology="book-lan.yaml",
    params={"absent_host": 99, "mcast_solicit": 3, "retrans_ms": 1000},
    book=_ERRORS_BOOK + "ping W2 (absent)  →  after ~3 s: ICMP host W2 unreachable",
    modern="""The isp router has a route to the far LAN but no neighbour W2: it queues the datagram, sends
    mcast_solicit broadcast ARP requests retrans_time_ms apart (3 × 1 s by default), and when the entry
    turns FAILED one retrans interval after the last request, answers each queued packet with 3/1 from
    its address toward the sender. ping prints "Destination Host Unreachable". This run sets both
    neighbour sysctls on the isp's far interface, so the wait follows the parameters.""",
)
def icmp_errors_host(run: Run) -> None:
    p = run.p
    a_ip, isp_ip = run.ip(A), run.ip(ISP, "eth0")
    far_if = run.node(FAR).interfaces["eth0"]["address"]
    try:
        w2 = host_in_network(far_if, p.absent_host)
    except ValueError as exc:
        raise InputError(f"-p absent_host={p.absent_host}: {exc}") from None
    taken = {str(iface.get("address") or "").split("/")[0] for n in run.lab_info["nodes"]
             for iface in run.node(n).interfaces.values()}
    if w2 in taken:
        raise InputError(f"-p absent_host={p.absent_host}: {w2} belongs to a node; pick a free host number")
    run.sysctl(ISP, "net.ipv4.neigh.eth1.mcast_solicit", p.mcast_solicit)
    run.sysctl(ISP, "net.ipv4.neigh.eth1.app_solicit", 0)
    run.sysctl(ISP, "net.ipv4.neigh.eth1.retrans_time_ms", p.retrans_ms)
    requests_at, fail_at = arp_failure_time(p.mcast_solicit, 0, p.retrans_ms)
    with run.capture([f"{A}:eth0", f"{ISP}:eth1"], "icmp or arp"):
        ping = run.sh(A, ["ping", "-c1", "-W", str(int(fail_at) + 3), w2], timeout=fail_at + 10)
    pk = run.packets
    asks = [q for q in expect.arp(expect.at(pk, f"{ISP}:eth1"), "request") if q.arp and q.arp.tpa == w2]
    run.expect(expect.count(asks, len(requests_at), f"the isp router asks who-has {w2} {len(requests_at)} times"))
    run.expect(expect.every(asks, lambda q: q.is_broadcast, "the requests are broadcast", "eth.dst ff:ff:ff:ff:ff:ff"))
    run.expect(expect.gaps_match(asks, [b - a for a, b in zip(requests_at, requests_at[1:], strict=False)],
                                 tolerance=expect.timer_tolerance,
                                 description=f"ARP requests {p.retrans_ms} ms apart (retrans_time_ms)"))
    run.expect(expect.count(expect.arp(expect.at(pk, f"{ISP}:eth1"), "reply"), 0, "nobody answers"))
    echo = expect.first(_echo_requests(expect.at(pk, f"{A}:eth0"), a_ip))
    errors = [q for q in expect.icmp(expect.at(pk, f"{A}:eth0"), type=3)]
    run.expect(expect.count(errors, 1, "one destination unreachable reaches A"))
    if not errors or errors[0].icmp is None or echo is None:
        return
    e, msg = errors[0], errors[0].icmp
    run.expect(expect.equals("type 3 code 1 (host) from the isp router", f"3/1 from {isp_ip}",
                             f"{msg.type}/{msg.code} from {e.src}", [e]))
    inner = msg.inner
    run.expect(expect.equals("it quotes the echo request to W2", f"{a_ip} > {w2} proto 1",
                             f"{inner.src} > {inner.dst} proto {inner.proto}" if inner else "nothing", [e]))
    lo, hi = expect.timer_tolerance(fail_at)
    run.expect(expect.within(f"it comes ≈ {fail_at:g} s after the echo request (ARP gave up)", e.time - echo.time,
                             lo, hi + 0.2, [echo, e]))
    run.expect(expect.output_contains(ping.stdout, f"From {isp_ip} icmp_seq=1 Destination Host Unreachable",
                                      "ping reports it"))


@experiment(
    id="icmp-errors-frag-needed",
    title="ICMP errors: DF datagram too big for the next hop — frag needed (3/4) with its MTU, then PMTU cached",
    section="§2.1, §2.3 (ext)",
    topology="book-lan.yaml",
    params={"mtu": 1400, "size": 1472},
    book=_ERRORS_BOOK + """\
ping -M do -s 1472 W   →  ICMP W unreachable - need to frag (mtu 1400)
again                  →  local error: message too long, mtu=1400
ping -M dont -s 1472 W →  fragments of 1396 + 124 bytes""",
    modern="""With the router↔isp link and the far LAN at a smaller MTU, R cannot forward A's 1500-byte
    DF datagram: it sends 3/4 with the next-hop MTU in the header (RFC 1191), quoting as much of the
    datagram as fits in 576 bytes. A records a PMTU exception for W (`ip route get W` shows `mtu 1400`,
    expiring after ip_rt_mtu_expires = 600 s), so a second DF ping fails locally with EMSGSIZE and
    nothing reaches the wire; without DF A fragments to the cached PMTU itself. Frag-needed is exempt
    from icmp_ratelimit (it is not in icmp_ratemask's default: it would break PMTU discovery).""",
)
def icmp_errors_frag_needed(run: Run) -> None:
    p = run.p
    a_ip, r_ip, w_ip = run.ip(A), run.ip(ROUTER, "eth0"), run.ip(FAR)
    lan_mtu = _mtu(run, A)
    datagram = p.size + ICMP_ECHO_HEADER + IP_HEADER
    if not p.mtu < datagram <= lan_mtu:
        raise InputError(f"-p size={p.size} -p mtu={p.mtu}: the ping datagram ({datagram} bytes) must fit the LAN "
                         f"(MTU {lan_mtu}) and not the path (MTU {p.mtu})", "choose mtu < size + 28 ≤ LAN MTU")
    if p.mtu < 576:
        raise InputError(f"-p mtu={p.mtu}: below 576 the kernel clamps PMTU to min_pmtu (552)")
    plan = fragment_plan(p.size + ICMP_ECHO_HEADER, p.mtu)
    narrow = [(ROUTER, "eth1"), (ISP, "eth0"), (ISP, "eth1"), (FAR, "eth0")]
    saved: list[tuple[str, str, int]] = []
    try:
        for node, ifname in narrow:
            saved.append((node, ifname, _mtu(run, node, ifname)))
            run.sh(node, ["ip", "link", "set", "dev", ifname, "mtu", str(p.mtu)], title=f"{node} {ifname} mtu {p.mtu}")
        with run.capture([f"{A}:eth0"], "icmp"):
            first = run.sh(A, ["ping", "-c1", "-W2", "-M", "do", "-s", str(p.size), w_ip], title="ping with DF")
            second = run.sh(A, ["ping", "-c1", "-W2", "-M", "do", "-s", str(p.size), w_ip],
                            title="ping with DF again (PMTU now cached)")
            route = run.sh(A, ["ip", "route", "get", w_ip])
            dont = run.sh(A, ["ping", "-c1", "-W2", "-M", "dont", "-s", str(p.size), w_ip], title="ping without DF")
    finally:
        _restore_mtus(run, saved)
        run.sh(A, ["ip", "route", "flush", "cache"], title="forget the cached PMTU")

    pk = run.packets
    full = [q for q in _echo_requests(pk, a_ip) if q.ip is not None and q.ip.df and q.ip.total_length == datagram]
    run.expect(expect.count(full, 1, f"one {datagram}-byte DF echo request on the wire (the second try stays local)"))
    errors = [q for q in expect.icmp(pk, type=3) if q.src == r_ip]
    run.expect(expect.count(errors, 1, "R answers once"))
    if errors and errors[0].icmp is not None:
        e, msg = errors[0], errors[0].icmp
        run.expect(expect.equals("type 3 code 4 (fragmentation needed and DF set)", "3/4", f"{msg.type}/{msg.code}",
                                 [e]))
        run.expect(expect.equals("the next-hop MTU field", p.mtu, msg.mtu, [e]))
        inner = msg.inner
        want_id = full[0].ip.id if full and full[0].ip else "?"
        run.expect(expect.equals("it quotes the DF echo request", f"{a_ip} > {w_ip} proto 1 id {want_id}",
                                 f"{inner.src} > {inner.dst} proto {inner.proto} id {inner.id}" if inner else "nothing",
                                 [e, *full[:1]]))
    run.expect(expect.output_contains(first.stdout, f"From {r_ip} icmp_seq=1 Frag needed and DF set (mtu = {p.mtu})",
                                      "ping reports the frag-needed"))
    run.expect(expect.output_contains(second.output, f"message too long, mtu={p.mtu}",
                                      "the second DF ping fails locally (EMSGSIZE, PMTU cached)"))
    run.expect(expect.output_contains(route.stdout, f"mtu {p.mtu}", "ip route get W shows the cached PMTU"))
    _check_fragments(run, _frags(pk, a_ip), plan, f"without DF, A fragments to the PMTU {p.mtu}")
    run.expect(expect.output_contains(dont.stdout, f"{p.size + ICMP_ECHO_HEADER} bytes from {w_ip}",
                                      "the fragmented ping is answered"))


# ---------------------------------------------------------------- §4.4 /etc/hosts, 5-12 daytime


@experiment(
    id="hosts-file-resolution",
    title="/etc/hosts first: with an entry no DNS query for the address; without one the resolver asks DNS",
    section="§4.4, 5-12",
    topology="book-lan.yaml",
    params={"port": 13, "nameserver": ROUTER, "dns_timeout": 1},
    book="""\
$ cat /etc/host.conf
order hosts,bind
multi on
(如果程序在/etc/hosts文件中未找到目标机器名对应的IP地址，它将求助于DNS服务:
 a name not found in /etc/hosts is looked up with DNS)
5-12 daytime client: gethostbyname(host); getservbyname("daytime", "tcp")
daytime port is 13
the day time is: …""",
    modern="""glibc follows /etc/nsswitch.conf (`hosts: files dns`); `order` in host.conf is ignored.
    With the name in /etc/hosts, an IPv4 lookup (the book's gethostbyname, getaddrinfo AF_INET,
    `getent ahostsv4`) sends 0 DNS packets. But `getent hosts` asks for IPv6 first
    (gethostbyname2(AF_INET6)): the file has no IPv6 address for the name, so glibc goes on to DNS with
    AAAA? before it finds the IPv4 entry in the file, and no A? is sent. Without the entry,
    `getent hosts` asks AAAA? then A?, and the daytime client A?. The nameserver here is a node inside
    the lab that runs no DNS server (the router by default): each query draws an ICMP port unreachable
    (icmp_ratelimit is set to 0 there so none is held back and glibc never waits out its timeout), and
    the lookup fails at once ("Temporary failure in name resolution", getent exit 2). "daytime port is
    13" comes from /etc/services (Debian's netbase); there is no inetd, so the project's daytime server
    stands in. The run rewrites the client's /etc/netns files (hosts, resolv.conf) and puts them back.""",
)
def hosts_file_resolution(run: Run) -> None:
    p = run.p
    server_ip, ns_ip = run.ip(B), run.ip(p.nameserver)
    service_port = socket.getservbyname("daytime", "tcp")  # what /etc/services says, as the client will read it
    client_args = [] if p.port == service_port else ["--port", str(p.port)]
    run.sysctl(p.nameserver, "net.ipv4.icmp_ratelimit", 0)
    run.serve(B, "daytime", server_ip, str(p.port))
    saved = {name: run.read_etc(A, name) for name in ("hosts", "resolv.conf")}
    others = [line for line in saved["hosts"].splitlines() if B not in line.split()[1:]]
    with_entry = "\n".join(others + [f"{server_ip}\t{B}"]) + "\n"
    without_entry = "\n".join(others) + "\n"
    try:
        run.write_etc(A, "resolv.conf", f"# lab: hosts-file-resolution — {p.nameserver} runs no DNS server\n"
                                        f"nameserver {ns_ip}\noptions timeout:{p.dns_timeout}\n")
        run.write_etc(A, "hosts", with_entry)
        run.sh(A, ["cat", "/etc/hosts", "/etc/resolv.conf"], title="the client's files, with the entry")
        with run.capture([f"{A}:eth0"], f"udp port 53 or icmp or tcp port {p.port}"):
            v4 = run.sh(A, ["getent", "ahostsv4", B], title=f"getent ahostsv4 {B} (in /etc/hosts)")
            day1 = run.py(A, "daytime_client", B, *client_args, title=f"daytime_client {B} (in /etc/hosts)")
            mark1 = time.time()
            any1 = run.sh(A, ["getent", "hosts", B], title=f"getent hosts {B} (in /etc/hosts, IPv4 only)")
            mark2 = time.time()
            run.write_etc(A, "hosts", without_entry)
            run.sh(A, ["cat", "/etc/hosts"], title=f"the client's /etc/hosts, without {B}")
            any2 = run.sh(A, ["getent", "hosts", B], title=f"getent hosts {B} (not in /etc/hosts)")
            mark3 = time.time()
            day2 = run.py(A, "daytime_client", B, *client_args, title=f"daytime_client {B} (not in /etc/hosts)")
    finally:
        for name, text in saved.items():
            run.write_etc(A, name, text)

    pk = run.packets
    ipv4_with = [q for q in pk if q.time < mark1]
    any_with = [q for q in pk if mark1 <= q.time < mark2]
    any_without = [q for q in pk if mark2 <= q.time < mark3]
    day_without = [q for q in pk if q.time >= mark3]

    # with the entry
    run.expect(expect.count(expect.dns(ipv4_with), 0, "with the entry, IPv4 lookups: 0 DNS packets"))
    run.expect(expect.output_contains(v4.stdout, server_ip, "getent ahostsv4 gives B's address from the file"))
    run.expect(expect.output_contains(day1.stdout, f"daytime port is {service_port}",
                                      "daytime port from /etc/services"))
    run.expect(expect.output_contains(day1.stdout, f"host {B} is {server_ip}", "the client resolved B from the file"))
    run.expect(expect.output_contains(day1.stdout, "the day time is:", "and read the time from B"))
    run.expect(expect.count(expect.syns(expect.tcp(ipv4_with, dport=p.port)), 1, "one daytime connection"))
    _check_queries(run, any_with, ns_ip, {"AAAA"}, "with the entry, getent hosts")
    run.expect(expect.output_contains(any1.stdout, server_ip, "getent hosts still gives B's address from the file"))

    # without it
    _check_queries(run, any_without, ns_ip, {"AAAA", "A"}, "without the entry, getent hosts")
    run.expect(expect.exit_code(any2.rc, 2, "without the entry: getent exits 2 (not found)"))
    _check_queries(run, day_without, ns_ip, {"A"}, "without the entry, the daytime client")
    run.expect(expect.output_contains(day2.stdout, f"daytime port is {service_port}",
                                      "daytime port still from /etc/services"))
    run.expect(expect.output_contains(day2.stdout, f"lookup failed: host {B}", "the host lookup fails"))
    run.expect(expect.count(expect.syns(expect.tcp(day_without, dport=p.port)), 0, "no daytime connection"))
    run.expect(expect.count(expect.dns(pk, response=True), 0, "no DNS answer ever comes back (no server there)"))


def _check_queries(run: Run, packets: list[Packet], ns_ip: str, qtypes: set[str], who: str) -> None:
    """``who`` sent DNS queries, all for B to the nameserver, asking exactly the types ``qtypes``."""
    queries = expect.dns(packets, response=False)
    run.expect(expect.count(queries, min=1, description=f"{who}: DNS queries are sent"))
    run.expect(expect.every(queries, lambda q: q.dst == ns_ip and q.udp is not None and q.udp.dport == 53
                            and q.dns is not None and all(n == B for n, _ in q.dns.questions),
                            f"{who}: every query asks {ns_ip}:53 for {B}", f"{ns_ip}.53 ? {B}"))
    seen = [t for q in queries if q.dns for _, t in q.dns.questions]
    want = " and ".join(sorted(qtypes, key=len, reverse=True))
    run.expect(expect.check(f"{who}: asks {want}?", set(seen) == qtypes, ", ".join(sorted(qtypes)),
                            ", ".join(seen) or "none", queries))
