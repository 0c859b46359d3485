"""Chapters 1–2 below TCP: ARP (§1.6.3), the IPv4 header (§2.2.2), fragmentation (§2.3) and
ICMP redirects (§2.4–2.6); ICMP errors are in icmp_errors.py, /etc/hosts in resolution.py.

All run on ``book-lan.yaml``: kongming20 (A) and ernest-laptop (B) on the LAN, the
router R at 192.168.1.1, a p2p link to the isp router, and far-host (W) behind it.
Routes, neighbour flushes, MTUs and per-node /etc files are changed with plain
commands and put back in ``finally`` blocks; sysctls go through ``run.sysctl``.
"""

from __future__ import annotations

import json
import re

from lab.capture.records import Packet
from lab.errors import InputError
from lab.experiments import expect
from lab.experiments.book.ip_model import (
    ICMP_ECHO_HEADER,
    IP_HEADER,
    Fragment,
    fragment_plan,
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


def mtu_of(run: Run, node: str, ifname: str = "eth0") -> int:
    r = run.sh(node, ["ip", "-j", "link", "show", "dev", ifname], record=False)
    return int(json.loads(r.stdout)[0]["mtu"])


def echo_requests(packets: list[Packet], src: str) -> list[Packet]:
    return [p for p in expect.icmp(packets, type=8) if p.src == src]


def fragments_from(packets: list[Packet], src: str) -> list[Packet]:
    return [p for p in expect.fragments(packets) if p.src == src]


def check_fragments(run: Run, frags: list[Packet], plan: list[Fragment], who: str) -> None:
    """The fragments of one datagram match ``plan``: count, one IP id, offsets, lengths, MF bits."""
    wanted = plan if len(plan) > 1 else []
    run.expect(expect.count(f"{who}: {len(wanted)} fragments", frags, len(wanted)))
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
    run.expect(expect.every(f"{who}: fragments carry no DF bit", frags,
                            lambda p: p.ip is not None and not p.ip.df, "DF=0"))


# ---------------------------------------------------------------- §1.6.3 ARP


def connect_cold_then_warm(run: Run, client: str, server: str, server_ip: str, port: str, hold: str, bpf: str,
                           flush: list[str], flush_title: str) -> list[Packet]:
    """Address resolution's experiment, either family: an echo server, the client's neighbour cache
    flushed, then two connections (cold cache, then warm: the negative control); the capture's packets."""
    run.serve(server, "echo", server_ip, port)
    with run.capture([f"{client}:eth0"], bpf):
        run.sh(client, flush, title=flush_title)
        first = run.py(client, "connect_timer", server_ip, port, "--hold", hold, title="connect (cold cache)")
        second = run.py(client, "connect_timer", server_ip, port, "--hold", hold,
                        title="connect again without flushing (negative control)")
    run.expect(expect.output_contains("the first connection was made", first.stdout, "connected"))
    run.expect(expect.output_contains("the second connection was made", second.stdout, "connected"))
    run.expect(expect.count("two connections, two SYNs", expect.syns(run.packets), 2))
    return run.packets


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
    pk = connect_cold_then_warm(run, client, server, server_ip, port, hold, f"arp or host {server_ip}",
                                ["ip", "neigh", "flush", "dev", "eth0"], "ip neigh flush dev eth0 (the book's arp -d)")
    syns = expect.syns(pk)
    run.expect(expect.sequence("ARP request, ARP reply, then the first SYN", pk,
                               [("ARP request", expect.is_arp("request")), ("ARP reply", expect.is_arp("reply")),
                                    ("SYN", lambda p: p.tcp is not None and p.tcp.is_syn)]))
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
    else:  # a missing packet is an error, not a claim left out
        run.expect(expect.error("the ARP request's fields", "no ARP request in the capture"))
    if reply is not None and reply.arp is not None:
        a = reply.arp
        run.expect(expect.equals(
            "reply: op 2, B is-at B's MAC (= the frame's source), sent to A's MAC",
            f"{server_mac} > {client_mac} op 2 spa {server_ip} sha {server_mac} tpa {client_ip}",
            f"{reply.eth_src} > {reply.eth_dst} op {a.op} spa {a.spa} sha {a.sha} tpa {a.tpa}", [reply]))
    else:  # a missing packet is an error, not a claim left out
        run.expect(expect.error("the ARP reply's fields", "no ARP reply in the capture"))
    arps = expect.arp(pk)
    run.expect(expect.every("every ARP frame is 42 or 60 bytes", arps, lambda p: p.length in (42, 60),
                            "42 (veth, unpadded) or 60 (padded)"))
    if syns:
        run.expect(expect.equals("the SYN goes to B's MAC, learnt from the reply", server_mac, syns[0].eth_dst,
                                 [syns[0]]))
        later = expect.arp(expect.between(pk, after=syns[0]))
        run.expect(expect.count("negative control: no ARP once the cache holds B (second connection)", later, 0))
    else:  # a missing packet is an error, not a claim left out
        run.expect(expect.error("the SYN after the ARP exchange", "no SYN in the capture"))


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
    run.expect(expect.output_contains("the client connected", r.stdout, "connected"))
    syns, synacks = expect.syns(run.packets), expect.synacks(run.packets)
    run.expect(expect.count("one SYN", syns, 1))
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
        run.expect(expect.count("one SYN-ACK", synacks, 1))


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
    mtu = mtu_of(run, A)
    if small + ICMP_ECHO_HEADER + IP_HEADER > mtu:
        raise InputError(f"-p small={small}: that ping does not fit the LAN's MTU {mtu}",
                         f"use at most {mtu - ICMP_ECHO_HEADER - IP_HEADER}")
    plan = fragment_plan(size + ICMP_ECHO_HEADER, mtu)
    with run.capture([f"{A}:eth0"], "icmp"):
        big = run.sh(A, ["ping", "-c1", "-W2", "-s", str(size), b_ip])
        little = run.sh(A, ["ping", "-c1", "-W2", "-s", str(small), b_ip])
    pk = run.packets
    check_fragments(run, fragments_from(pk, a_ip), plan,
                    f"echo request ({size + ICMP_ECHO_HEADER} ICMP bytes, MTU {mtu})")
    check_fragments(run, fragments_from(pk, b_ip), plan, "echo reply")
    first = next((p for p in fragments_from(pk, a_ip) if p.icmp is not None), None)
    if len(plan) > 1:
        run.expect(expect.check("the first fragment carries the ICMP echo request header", first is not None
                                and first.icmp is not None and first.icmp.type == 8, "ICMP type 8",
                                first.summary() if first else "no fragment with an ICMP header",
                                [first] if first else []))
    run.expect(expect.output_contains("ping got the reassembled reply", big.stdout,
                                      f"{size + ICMP_ECHO_HEADER} bytes from {b_ip}"))
    whole = [p for p in echo_requests(pk, a_ip) if p.ip is not None and p.ip.total_length == small + 28]
    run.expect(expect.count(f"one unfragmented echo request of {small + 28} bytes", whole, 1))
    run.expect(expect.every("the small echo request carries DF (iputils pmtudisc 'want')", whole,
                            lambda p: p.ip is not None and p.ip.df and not p.ip.is_fragment, "DF=1, not a fragment"))
    run.expect(expect.output_contains("the small ping got its reply", little.stdout,
                                      f"{small + ICMP_ECHO_HEADER} bytes from {b_ip}"))


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
    run.change(A, ["ip", "route", "replace", "default", "via", g_ip],
               undo=[["ip", "route", "replace", "default", "via", r_ip], ["ip", "route", "flush", "cache"]],
               title=f"A's default route via G ({g_ip}); at the end back via R, the redirect exception dropped")
    with run.capture([f"{A}:eth0"]):
        ping = run.sh(A, ["ping", "-c", str(p.count), "-i", str(p.interval), "-W2", w_ip])
    route = run.sh(A, ["ip", "route", "get", w_ip])

    pk = run.packets
    echoes = echo_requests(pk, a_ip)
    redirects = [q for q in expect.icmp(pk, type=5) if q.src == g_ip]
    n_redirects = min(p.count, redirected_from - 1)
    run.expect(expect.count(f"{p.count} echo requests", echoes, p.count))
    run.expect(expect.count(f"G sends {n_redirects} redirect(s)", redirects, n_redirects))
    if redirects and redirects[0].icmp is not None:
        r0 = redirects[0].icmp
        inner = r0.inner
        run.expect(expect.equals("the redirect is type 5 code 1 (host)", "5/1", f"{r0.type}/{r0.code}",
                                 [redirects[0]]))
        run.expect(expect.equals("its gateway field is the router R", r_ip, r0.gateway, [redirects[0]]))
        run.expect(expect.equals("the quoted datagram is A's echo request to W", f"{a_ip} > {w_ip} proto 1",
                                 f"{inner.src} > {inner.dst} proto {inner.proto}" if inner else "nothing quoted",
                                 [redirects[0]]))
    else:  # a missing packet is an error, not a claim left out
        run.expect(expect.error("the redirect's fields", "no ICMP redirect in the capture"))
    for i, echo in enumerate(echoes, 1):
        via, mac = ("G", g_mac) if i < redirected_from else ("R", r_mac)
        run.expect(expect.equals(f"echo request {i} goes to {via}'s MAC", mac, echo.eth_dst, [echo]))
    replies = [q for q in expect.icmp(pk, type=0) if q.src == w_ip]
    run.expect(expect.count("every echo is answered (via R, which has a direct route back)", replies, p.count))
    if n_redirects:
        run.expect(expect.output_matches("ping reports the redirect", ping.stdout,
                                         re.escape(f"Redirect Host(New nexthop: {r_ip})")))
    if p.count >= redirected_from - 1:
        run.expect(expect.output_contains("ip route get W: via R", route.stdout, f"via {r_ip}"))
        run.expect(expect.output_contains("ip route get W: the route is <redirected>", route.stdout, "redirected"))
    else:
        run.expect(expect.check("ip route get W: no redirect was recorded yet", "redirected" not in route.stdout,
                                "no <redirected>", route.stdout.strip()))
