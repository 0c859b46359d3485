"""ICMP errors (ext, §2.4): TTL exceeded, port and host unreachable, fragmentation needed.

Same lab and helpers as :mod:`ip_layer` (book-lan.yaml: A, B, the router R, far-host W).
"""

from __future__ import annotations

from lab.errors import InputError
from lab.experiments import expect
from lab.experiments.book.ip_layer import (
    FAR,
    ISP,
    ROUTER,
    A,
    check_fragments,
    echo_requests,
    fragments_from,
    mtu_of,
)
from lab.experiments.book.ip_model import (
    ICMP_ECHO_HEADER,
    IP_HEADER,
    arp_failure_time,
    fragment_plan,
    host_in_network,
)
from lab.experiments.context import Run
from lab.experiments.engine import experiment

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
    echoes, exceeded = echo_requests(pk, a_ip), expect.icmp(pk, type=11)
    run.expect(expect.count("one echo request", echoes, 1))
    if echoes and echoes[0].ip is not None:
        run.expect(expect.equals("it leaves with the TTL asked for", ttl, echoes[0].ip.ttl, echoes[:1]))
    else:  # a missing packet is an error, not a claim left out
        run.expect(expect.error("it leaves with the TTL asked for", "no echo request in the capture"))
    if ttl > len(hops):
        run.expect(expect.count(f"TTL {ttl} outlives the {len(hops)} routers: no time exceeded", exceeded, 0))
        run.expect(expect.output_contains("W answers", ping.stdout, f"bytes from {w_ip}"))
        return
    hop = hops[ttl - 1]
    run.expect(expect.count("one time exceeded", exceeded, 1))
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
    run.expect(expect.output_contains("ping reports it", ping.stdout,
                                      f"From {hop} icmp_seq=1 Time to live exceeded"))


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
    run.expect(expect.count(f"one datagram to W:{port}", sent, 1))
    run.expect(expect.count("one destination unreachable", errors, 1))
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
    else:  # a missing packet is an error, not a claim left out
        run.expect(expect.error("the port-unreachable error", "no ICMP error in the capture"))
    run.expect(expect.errno("the connected socket's recv() fails with ECONNREFUSED", "ECONNREFUSED", r.stdout))


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
    run.expect(expect.count(f"the isp router asks who-has {w2} {len(requests_at)} times", asks, len(requests_at)))
    run.expect(expect.every("the requests are broadcast", asks, lambda q: q.is_broadcast, "eth.dst ff:ff:ff:ff:ff:ff"))
    run.expect(expect.gaps_match(f"ARP requests {p.retrans_ms} ms apart (retrans_time_ms)", asks,
                                 [b - a for a, b in zip(requests_at, requests_at[1:], strict=False)],
                                 tolerance=expect.timer_tolerance))
    run.expect(expect.count("nobody answers", expect.arp(expect.at(pk, f"{ISP}:eth1"), "reply"), 0))
    echo = expect.first(echo_requests(expect.at(pk, f"{A}:eth0"), a_ip))
    errors = [q for q in expect.icmp(expect.at(pk, f"{A}:eth0"), type=3)]
    run.expect(expect.count("one destination unreachable reaches A", errors, 1))
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
    run.expect(expect.output_contains("ping reports it", ping.stdout,
                                      f"From {isp_ip} icmp_seq=1 Destination Host Unreachable"))


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
    lan_mtu = mtu_of(run, A)
    datagram = p.size + ICMP_ECHO_HEADER + IP_HEADER
    if not p.mtu < datagram <= lan_mtu:
        raise InputError(f"-p size={p.size} -p mtu={p.mtu}: the ping datagram ({datagram} bytes) must fit the LAN "
                         f"(MTU {lan_mtu}) and not the path (MTU {p.mtu})", "choose mtu < size + 28 ≤ LAN MTU")
    if p.mtu < 576:
        raise InputError(f"-p mtu={p.mtu}: below 576 the kernel clamps PMTU to min_pmtu (552)")
    plan = fragment_plan(p.size + ICMP_ECHO_HEADER, p.mtu)
    narrow = [(ROUTER, "eth1"), (ISP, "eth0"), (ISP, "eth1"), (FAR, "eth0")]
    # changes are undone newest first: the MTUs come back, then the cached PMTU is forgotten
    run.change(A, ["ip", "route", "flush", "cache"], undo=[["ip", "route", "flush", "cache"]],
               title="start with no cached PMTU (and forget it at the end)")
    for node, ifname in narrow:
        run.change(node, ["ip", "link", "set", "dev", ifname, "mtu", str(p.mtu)],
                   undo=[["ip", "link", "set", "dev", ifname, "mtu", str(mtu_of(run, node, ifname))]],
                   title=f"{node} {ifname} mtu {p.mtu}")
    with run.capture([f"{A}:eth0"], "icmp"):
        first = run.sh(A, ["ping", "-c1", "-W2", "-M", "do", "-s", str(p.size), w_ip], title="ping with DF")
        second = run.sh(A, ["ping", "-c1", "-W2", "-M", "do", "-s", str(p.size), w_ip],
                        title="ping with DF again (PMTU now cached)")
        route = run.sh(A, ["ip", "route", "get", w_ip])
        dont = run.sh(A, ["ping", "-c1", "-W2", "-M", "dont", "-s", str(p.size), w_ip], title="ping without DF")

    pk = run.packets
    full = [q for q in echo_requests(pk, a_ip) if q.ip is not None and q.ip.df and q.ip.total_length == datagram]
    run.expect(expect.count(f"one {datagram}-byte DF echo request on the wire (the second try stays local)", full, 1))
    errors = [q for q in expect.icmp(pk, type=3) if q.src == r_ip]
    run.expect(expect.count("R answers once", errors, 1))
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
    else:  # a missing packet is an error, not a claim left out
        run.expect(expect.error("the fragmentation-needed error", "no ICMP error in the capture"))
    run.expect(expect.output_contains("ping reports the frag-needed", first.stdout,
                                      f"From {r_ip} icmp_seq=1 Frag needed and DF set (mtu = {p.mtu})"))
    run.expect(expect.output_contains("the second DF ping fails locally (EMSGSIZE, PMTU cached)", second.output,
                                      f"message too long, mtu={p.mtu}"))
    run.expect(expect.output_contains("ip route get W shows the cached PMTU", route.stdout, f"mtu {p.mtu}"))
    check_fragments(run, fragments_from(pk, a_ip), plan, f"without DF, A fragments to the PMTU {p.mtu}")
    run.expect(expect.output_contains("the fragmented ping is answered", dont.stdout,
                                      f"{p.size + ICMP_ECHO_HEADER} bytes from {w_ip}"))
