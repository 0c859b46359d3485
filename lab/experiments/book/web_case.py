"""§1.7 and ch.4: a DNS query answered with a CNAME, and the whole web case through the squid proxy.

Both run on ``book-web.yaml``, whose nodes run real daemons in containers:
dnsmasq on ``dns`` (the records come from the topology), squid on
ernest-laptop, nginx on web1/web2 behind the router. Every expected value —
the addresses a name resolves to, the proxy's port, the gateway and its MAC,
the document's bytes, whether squid may cache — is read from the lab's own
topology and from the live nodes, so a topology with other records, another
port or another document is checked against itself, never against the book's
numbers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from lab import services
from lab.capture.pcapfile import merge
from lab.capture.records import Packet
from lab.errors import InputError
from lab.experiments import expect
from lab.experiments.book.web_model import (
    VIA,
    AccessEntry,
    Resolution,
    Url,
    dns_query_length,
    header_value,
    parse_access_log,
    parse_url,
    records_of,
    resolve,
    split_http,
    tcp_stream,
)
from lab.experiments.context import Run
from lab.experiments.engine import experiment
from lab.topology import load_topology_text
from lab.topology.model import Topology, WebFile

# Where lab's squid writes its access log (lab.services.squid_daemon renders it into squid.conf).
ACCESS_LOG = "/var/log/squid/access.log"
# squid keeps a DNS answer for at least negative_dns_ttl (default 60 s; dnsmasq's TTL 0 is raised to it),
# and an idle connection to a server for server_idle_pconn_timeout (60 s); plus a margin.
SQUID_MEMORY = 65.0


# ---------------------------------------------------------------- reading the lab's topology


def lab_topology(run: Run) -> Topology:
    """The topology the running lab was built from (as rendered), for its DNS records and services."""
    topo, _ = load_topology_text(run.topology_text(), f"lab {run.lab}'s topology.yaml")
    return topo


def _node(topo: Topology, name: str, what: str) -> None:
    if name not in topo.nodes:
        raise InputError(f"the topology has no node {name!r} ({what})", f"nodes: {', '.join(sorted(topo.nodes))}")


def _addresses(topo: Topology, node: str) -> list[str]:
    return [str(i.address.ip) for i in topo.nodes[node].interfaces.values() if i.address is not None]


@dataclass
class DnsServer:
    node: str
    address: str
    resolution: Resolution


def dns_server_for(topo: Topology, nameservers: list[str], name: str, who: str) -> DnsServer:
    """The lab node that answers ``who``'s queries (its first nameserver) and what it answers for ``name``."""
    if not nameservers:
        raise InputError(f"node {who!r} has no DNS server",
                         f"give it one: nodes.{who}.resolv.nameservers (or proxy.nameservers)")
    address = nameservers[0]
    owner = next((n for n in topo.nodes if address in _addresses(topo, n)), None)
    spec = topo.nodes[owner].dns if owner else None
    if owner is None or spec is None:
        raise InputError(f"{who}'s DNS server {address} is not a node of the lab with a dns: section",
                         "point its resolv.nameservers at the node that runs dnsmasq")
    try:
        found = resolve(records_of(spec.records), name)
    except ValueError as exc:
        raise InputError(f"node {owner!r}: {exc}") from None
    if found is None or not found.addresses:
        served = sorted({r.name for r in spec.records})
        raise InputError(f"the DNS server on {owner!r} has no address for {name!r}",
                         f"names it serves: {', '.join(served) or 'none'}")
    return DnsServer(owner, address, found)


def document(run: Run, topo: Topology, node: str, path: str) -> bytes:
    """The bytes web node ``node`` serves at ``path``, read as lab.services does (a reading: ``lab check``
    gets the run's bytes back, not today's file)."""
    web = topo.nodes[node].web
    if web is None or path not in web.documents:
        docs = ", ".join(sorted(web.documents)) if web else "none (no web: section)"
        raise InputError(f"web node {node!r} serves no document {path!r}", f"its documents: {docs}")
    doc = web.documents[path]
    if isinstance(doc, WebFile):
        file = doc.file
        text = run.observe("document", node, lambda: (services.topology_dir(run.lab) / file).read_bytes()
                           .decode("latin-1"))
        return str(text).encode("latin-1")
    return doc.encode()


def owner_of(run: Run, address: str) -> tuple[str, str]:
    """(node, interface) that holds ``address`` in the running lab."""
    for name, spec in run.lab_info["nodes"].items():
        for ifname, iface in spec["interfaces"].items():
            if str(iface.get("address") or "").split("/")[0] == address:
                return name, ifname
    raise InputError(f"no node of lab {run.lab!r} has the address {address}")


def gateway_towards(run: Run, node: str, address: str) -> str:
    """The next hop ``node``'s kernel uses for ``address`` (``ip route get``); the address itself if on-link."""
    r = run.sh(node, ["ip", "-j", "route", "get", address], title=f"ip route get {address}")
    if r.rc != 0:
        raise InputError(f"{node}: no route to {address}: {r.stderr.strip()}")
    route = json.loads(r.stdout)[0]
    return str(route.get("gateway") or address)


def _cite(packets: list[Packet]) -> str:
    return "; ".join(f"#{p.no} {p.summary()}" for p in packets[:4]) or "none"


# ---------------------------------------------------------------- §1.7 DNS


@experiment(
    id="dns-a-cname",
    title="DNS: host -t A gets a CNAME and the alias's two A records from the lab's DNS server",
    section="§1.7",
    topology="book-web.yaml",
    params={"client": "ernest-laptop", "name": "www.baidu.com"},
    book="""\
$ sudo tcpdump -i eth0 -nt -s 500 port domain
$ host -t A www.baidu.com
www.baidu.com is an alias for www.a.shifen.com.
www.a.shifen.com has address 119.75.217.56
www.a.shifen.com has address 119.75.218.77
1. IP 192.168.1.108.34319 > 219.239.26.42.53: 57428+ A? www.baidu.com. (31)
2. IP 219.239.26.42.53 > 192.168.1.108.34319: 57428 3/4/4 CNAME www.a.shifen.com., A 119.75.218.77,
   A 119.75.217.56 (226)""",
    modern="""The query is the book's: `host` sends a plain question with RD set (`+`) and no EDNS,
    12 + name + 4 bytes (31 for www.baidu.com); dig would add an OPT record (`[1au]`) and a longer query.
    The answer comes from the lab's dnsmasq, which is authoritative for the records the topology gives
    it: the AA flag is set (tcpdump's `*`) and the authority and additional sections are empty
    (`3/0/0`, 93 bytes instead of 226: the book's answer came from an ISP's recursive resolver, which
    adds NS and glue records). The CNAME comes first, then the target's A records, in an order dnsmasq
    chooses. Clients that use getaddrinfo (wget, getent) send A and AAAA together; `host -t A` asks only A.""",
)
def dns_a_cname(run: Run) -> None:
    p = run.p
    topo = lab_topology(run)
    _node(topo, p.client, "client")
    resolv = topo.nodes[p.client].resolv
    server = dns_server_for(topo, [str(a) for a in resolv.nameservers] if resolv else [], p.name, p.client)
    res = server.resolution
    client_ip = run.ip(p.client)

    with run.capture([p.client], "port 53"):
        r = run.sh(p.client, ["host", "-t", "A", p.name], title=f"host -t A {p.name}")
    run.expect(expect.exit_code("host exits 0", r.rc, 0))

    pk = run.packets
    queries, answers = expect.dns(pk, response=False), expect.dns(pk, response=True)
    run.expect(expect.count("one query (host -t A asks only A)", queries, 1))
    run.expect(expect.count("one response", answers, 1))
    if not queries or not answers:
        return
    q, a = queries[0], answers[0]
    qd, ad = q.dns, a.dns
    assert qd is not None and ad is not None and q.udp is not None and a.udp is not None
    want_len = dns_query_length(p.name)
    run.expect(expect.equals(f"the query goes from {p.client} to its DNS server {server.address}:53",
                             f"{client_ip} > {server.address}.53", f"{q.src} > {q.dst}.{q.udp.dport}", [q]))
    run.expect(expect.equals(f"the query asks A? {p.name}. with RD set (tcpdump's '+')",
                             f"A? {res.name}., QR 0, RD 1",
                             f"{', '.join(f'{t}? {n.lower()}.' for n, t in qd.questions) or 'no question'}, "
                             f"QR {qd.qr}, RD {int(qd.rd)}", [q]))
    run.expect(expect.equals(f"the query is {want_len} bytes: header 12 + name {want_len - 16} + type/class 4 "
                             "(host adds no EDNS record)",
                             f"{want_len} bytes, arcount 0", f"{qd.size} bytes, arcount {qd.arcount}", [q]))
    run.expect(expect.equals("the response carries the query's ID, back to the query's port",
                             f"id {qd.id} to port {q.udp.sport}", f"id {ad.id} to port {a.udp.dport}", [q, a]))
    run.expect(expect.equals("the response has QR=1, RD=1 (copied), rcode 0 (NOERROR)", "QR 1, RD 1, rcode 0",
                             f"QR {ad.qr}, RD {int(ad.rd)}, rcode {ad.rcode}", [a]))
    run.expect(expect.equals(f"ancount = {len(res.chain)} CNAME + {len(res.addresses)} A",
                             res.answer_count, ad.ancount, [a]))
    if res.chain:
        lead = [f"{t} {v}" for _, t, v, _ in ad.answers[: len(res.chain)]]
        run.expect(expect.equals(f"the answer starts with the CNAME chain (rr0: CNAME {res.chain[0]}.)",
                                 [f"CNAME {c}" for c in res.chain], lead, [a]))
    run.expect(expect.equals(f"the A records are the addresses the topology gives {res.canonical}",
                             sorted(res.addresses), sorted(ad.values("A")), [a]))
    run.expect(expect.equals("dnsmasq answers authoritatively (AA, tcpdump's '*') with empty authority "
                             "and additional sections", "AA 1, 0 NS, 0 additional",
                             f"AA {int(ad.aa)}, {ad.nscount} NS, {ad.arcount} additional", [a]))

    names = [res.name, *res.chain]
    aliases = [f"{alias} is an alias for {target}." for alias, target in zip(names, names[1:], strict=False)]
    run.expect(expect.equals(f"host prints {len(aliases)} alias line(s)"
                             + (f": '{aliases[0]}'" if len(aliases) == 1 else ""),
                             aliases, re.findall(r"^\S+ is an alias for \S+$", r.stdout, re.MULTILINE)))
    lines = re.findall(r"^(\S+) has address (\S+)$", r.stdout, re.MULTILINE)
    run.expect(expect.equals(f"host prints {len(res.addresses)} 'has address' lines, for {res.canonical}",
                             sorted(f"{res.canonical} has address {ip}" for ip in res.addresses),
                             sorted(f"{n} has address {ip}" for n, ip in lines)))


# ---------------------------------------------------------------- ch.4 the web case through squid


@dataclass
class WebCase:
    """Everything the squid experiment expects, worked out from the topology before anything is sent."""

    url: Url
    proxy_port: int
    cache: bool
    dns: DnsServer
    documents: dict[str, bytes]  # web address → the bytes served at url.path


def plan_web_case(run: Run, topo: Topology) -> WebCase:
    p = run.p
    _node(topo, p.client, "client")
    _node(topo, p.proxy, "proxy")
    spec = topo.nodes[p.proxy].proxy
    if spec is None:
        raise InputError(f"node {p.proxy!r} runs no proxy", "give it a proxy: section, or -p proxy=<node>")
    try:
        url = parse_url(p.url)
    except ValueError as exc:
        raise InputError(f"-p url: {exc}", "for example http://www.baidu.com/index.html") from None
    resolv = topo.nodes[p.proxy].resolv
    nameservers = [str(a) for a in (spec.nameservers or (resolv.nameservers if resolv else []))]
    dns = dns_server_for(topo, nameservers, url.host, p.proxy)
    documents = {}
    for address in dns.resolution.addresses:
        owner = next((n for n in topo.nodes if address in _addresses(topo, n)), None)
        if owner is None or topo.nodes[owner].web is None:
            raise InputError(f"{url.host} resolves to {address}, which is not a web node of the lab")
        web = topo.nodes[owner].web
        assert web is not None
        if web.port != url.port:
            raise InputError(f"web node {owner!r} listens on port {web.port}, not {url.port}",
                             f"use -p url=http://{url.host}:{web.port}{url.path}")
        documents[address] = document(run, topo, owner, url.path)
    return WebCase(url, spec.port, spec.cache, dns, documents)


def _access_log(run: Run, proxy: str, title: str) -> list[AccessEntry]:
    r = run.sh(proxy, ["cat", ACCESS_LOG], title=title)
    return parse_access_log(r.stdout) if r.rc == 0 else []


def _wget(run: Run, client: str, url: str, proxy_env: dict[str, str], title: str) -> tuple[int, str]:
    """The book's fetch: wget through http_proxy with Connection: close; -S shows the headers on stderr."""
    r = run.sh(client, ["wget", "-S", "-O", "/dev/null", "--header", "Connection: close", url],
               env=proxy_env, title=title)
    return r.rc, r.stderr


@experiment(
    id="squid-proxy-http",
    title="The ch.4 web case: wget through squid; ARP for the router, DNS, the fetch, the reply",
    section="ch.4 §4.1–4.6",
    topology="book-web.yaml",
    params={"client": "kongming20", "proxy": "ernest-laptop", "url": "http://www.baidu.com/index.html"},
    book="""\
$ export http_proxy="ernest-laptop:3128"
$ sudo arp -d 192.168.1.1
$ sudo tcpdump -s 2000 -i eth0 -ntX '(src 192.168.1.108) or (dst 192.168.1.108) or (arp)'
$ wget --header="Connection: close" http://www.baidu.com/index.html
Resolving ernest-laptop... 192.168.1.108
Connecting to ernest-laptop|192.168.1.108|:3128... connected.
Proxy request sent, awaiting response... 200 OK
Length: 8024 (7.8K) [text/html]
2012-07-03 00:51:12 (8.76 MB/s) - "index.html" saved [8024/8024]
(43 packets: 1-5 client <-> proxy; 6-7 ARP for the router; 8-9 DNS; 10-22, 26-31, 41 proxy <-> web)
GET http://www.baidu.com/index.html HTTP/1.0
User-Agent: Wget/1.12 (linux-gnu)
Host: www.baidu.com
Connection: close
HTTP/1.0 200 OK
Server: BWS/1.0
Content-Length: 8024
Content-Type: text/html;charset=gbk
Via: 1.0 localhost (squid/3.0.STABLE18)""",
    modern="""The flow is the book's: the client's handshake and request to :3128, then the proxy's ARP
    for the router (its cache was flushed), the DNS query and its CNAME + A + A answer, the proxy's
    connection to one of the two addresses, the reply, and the reply to the client. wget 1.21 speaks
    HTTP/1.1 (`GET http://… HTTP/1.1`, `Proxy-Connection: Keep-Alive`); squid 5 sends the origin-form
    `GET /index.html HTTP/1.1` to the server with `Via: 1.1 ernest-laptop (squid/5.7)`,
    `X-Forwarded-For` and `Connection: keep-alive`, and answers with `X-Cache: MISS` and the same Via
    (visible_hostname, not the book's `localhost`). Only A is asked because IPv6 is off in the lab
    (squid 5 would also ask AAAA). The lab's squid has `cache deny all` when the topology says
    `cache: false`, so a second fetch is a MISS again. With `cache: true` it is served from the
    cache (X-Cache: HIT), but squid still revalidates it (If-Modified-Since, 304,
    TCP_REFRESH_UNMODIFIED in access.log): the file's Last-Modified is seconds old, so the heuristic
    freshness of `refresh_pattern . 0 20% 4320` is close to nothing. squid keeps a DNS answer for at
    least negative_dns_ttl (60 s) even when dnsmasq's TTL is 0, so the second fetch sends no DNS
    query — and a proxy that already fetched from this host shows none at all, which is why the
    experiment refuses a lab whose proxy already did.""",
)
def squid_proxy_http(run: Run) -> None:
    p = run.p
    topo = lab_topology(run)
    case = plan_web_case(run, topo)
    url, res, dns_ip = case.url, case.dns.resolution, case.dns.address
    client_ip, proxy_ip = run.ip(p.client), run.ip(p.proxy)
    gateway = gateway_towards(run, p.proxy, dns_ip)
    router, router_if = owner_of(run, gateway)
    router_mac = run.mac(router, router_if)
    earlier = [e.time for e in _access_log(run, p.proxy, "squid's access.log before the fetch")
               if _host_of(e.url) == url.host]
    wait = max(earlier, default=0.0) + SQUID_MEMORY - run.now()
    if wait > 0:
        raise InputError(f"the proxy on {p.proxy!r} fetched from {url.host} {SQUID_MEMORY - wait:.0f} s ago: "
                         "squid still holds the DNS answer (and maybe a connection), so this run would show "
                         "no DNS query", f"run it on a fresh lab (without --lab), or in {wait:.0f} s")
    proxy_env = {"http_proxy": f"http://{p.proxy}:{case.proxy_port}"}

    with run.capture([p.client], "ip or arp"):
        with run.capture([p.proxy], f"(host {proxy_ip}) or arp"):
            # Nothing to put back afterwards: the neighbour table refills itself on the next packet.
            run.sh(p.proxy, ["ip", "neigh", "flush", "all"], title="ip neigh flush all (the book's arp -d)")
            rc, wget_err = _wget(run, p.client, p.url, proxy_env, f"wget --header='Connection: close' {p.url}")
    run.packets = merge(run.pcaps)  # both points in one listing; the packet numbers cited below are its own
    log_after_first = _access_log(run, p.proxy, "squid's access.log after the fetch")
    rc2, wget_err2 = _wget(run, p.client, p.url, proxy_env, "the same fetch again")
    log_after_second = _access_log(run, p.proxy, "squid's access.log after the second fetch")

    pk = run.packets
    at_client, at_proxy = expect.at(pk, p.client), expect.at(pk, p.proxy)
    run.expect(expect.exit_code("wget exits 0", rc, 0))

    # (a) the client talks only to the proxy, and resolves nothing with DNS
    client_dns = [q for q in at_client if q.dns is not None or 53 in (q.sport, q.dport)]
    run.expect(expect.count(f"(a) the client sends no DNS ({p.proxy} comes from /etc/hosts)", client_dns, 0))
    client_tcp = [q for q in at_client if q.tcp is not None]
    run.expect(expect.every(f"(a) all the client's TCP is with {proxy_ip}:{case.proxy_port}", client_tcp,
                            lambda q: _between(q, client_ip, proxy_ip, case.proxy_port),
                            f"{client_ip} <-> {proxy_ip}.{case.proxy_port}"))
    client_req = [q for q in expect.http(at_client, "request") if q.src == client_ip]
    run.expect(expect.equals("(a) the client's request line carries the absolute URI",
                             f"GET {p.url} HTTP/1.x",
                             _request_line(client_req),
                             client_req[:1]))

    # (b) the order of events at the proxy
    web_ips = set(res.addresses)
    steps: list[tuple[str, expect.Predicate]] = [
        ("client request", lambda q: q.http is not None and q.http.kind == "request" and q.src == client_ip),
        (f"ARP who-has {gateway}", lambda q: q.arp is not None and q.arp.is_request and q.arp.tpa == gateway),
        (f"DNS query A? {url.host}", lambda q: q.dns is not None and not q.dns.is_response and q.dst == dns_ip
         and (url.host, "A") in q.dns.questions),
        ("DNS answer", lambda q: q.dns is not None and q.dns.is_response and q.src == dns_ip),
        ("SYN to a web server", lambda q: q.tcp is not None and q.tcp.is_syn and q.dst in web_ips),
        ("web server's response", lambda q: q.http is not None and q.http.kind == "response" and q.src in web_ips),
        ("response to the client", lambda q: q.http is not None and q.http.kind == "response"
         and q.dst == client_ip),
    ]
    run.expect(expect.sequence("(b) at the proxy: request < ARP < DNS query < DNS answer "
                                                "< SYN to web < web response < response to client", at_proxy, steps))

    # (c) one hop to the router: ARP for the gateway, frames to its MAC, IP to the final hosts
    # Only the ARP the proxy sends on its way out counts: with the client's cache still warm (a reused
    # lab), the flushed proxy may first have to ask for the client's address to answer its SYN.
    request = expect.first(at_proxy, steps[0][1])
    query = expect.first(at_proxy, steps[2][1])
    outgoing_arp = [q for q in expect.between(at_proxy, request, query)
                    if q.arp is not None and q.arp.is_request and q.src == proxy_ip]
    run.expect(expect.check(f"(c) the proxy's ARP before its DNS query asks for the gateway {gateway} "
                            "(not the DNS server)",
                            bool(outgoing_arp) and all(q.arp is not None and q.arp.tpa == gateway
                                                       for q in outgoing_arp),
                            f"who-has {gateway}", _cite(outgoing_arp), outgoing_arp))
    arp_rep = expect.first(at_proxy, lambda q: q.arp is not None and q.arp.is_reply and q.src == gateway)
    run.expect(expect.equals(f"(c) {router} answers with its MAC", router_mac,
                             arp_rep.arp.sha if arp_rep and arp_rep.arp else "no ARP reply",
                             [arp_rep] if arp_rep else []))
    beyond = {dns_ip} | web_ips
    outbound = [q for q in at_proxy if q.ip is not None and q.src == proxy_ip and q.dst in beyond]
    run.expect(expect.every(f"(c) DNS and web packets from the proxy go to {router}'s MAC", outbound,
                            lambda q: q.eth_dst == router_mac,
                            f"eth.dst {router_mac}, ip.dst {dns_ip} or {', '.join(sorted(web_ips))}"))
    to_router = [q for q in at_proxy if q.ip is not None and q.eth_dst == router_mac]
    run.expect(expect.every("(c) frames to the router's MAC carry the final host as ip.dst, never the gateway",
                            to_router,
                            lambda q: q.dst in beyond,
                            f"ip.dst in {', '.join(sorted(beyond))}"))
    run.expect(expect.count(f"the proxy asks {dns_ip} once (A only: IPv6 is off)",
                            [q for q in at_proxy if q.dns is not None and q.dst == dns_ip], 1))
    answer = expect.first(at_proxy, lambda q: q.dns is not None and q.dns.is_response and q.src == dns_ip)
    run.expect(expect.equals(f"the answer names the topology's addresses for {url.host}",
                             f"{len(res.chain)} CNAME, A {', '.join(sorted(res.addresses))}",
                             f"{len(answer.dns.values('CNAME'))} CNAME, A {', '.join(sorted(answer.dns.values('A')))}"
                             if answer and answer.dns else "no answer", [answer] if answer else []))

    # the proxy's request to the server: origin-form, with Via
    syn = expect.first(at_proxy, lambda q: q.tcp is not None and q.tcp.is_syn and q.dst in web_ips)
    web_ip = syn.dst if syn else None
    to_web = [q for q in expect.http(at_proxy, "request") if q.src == proxy_ip and q.dst in web_ips]
    run.expect(expect.equals("the proxy asks the server for the path (origin-form), not the absolute URI",
                             f"GET {url.path} HTTP/1.x",
                             _request_line(to_web), to_web[:1]))
    via_req = to_web[0].http.header("Via") if to_web and to_web[0].http else None
    run.expect(_via_check("the proxy's request to the server carries Via", via_req, to_web[:1]))

    # (d) the reply to the client: status, Via, Content-Length and body = the served file
    doc = case.documents.get(web_ip or "", next(iter(case.documents.values())))
    stream = b""
    reply = [q for q in expect.http(at_proxy, "response") if q.dst == client_ip]
    if reply and reply[0].tcp:
        first = reply[0]
        t = first.tcp
        assert t is not None
        stream = tcp_stream(at_proxy, proxy_ip, t.sport, client_ip, t.dport)
    head, body = split_http(stream)
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1") if head else "no response"
    run.expect(expect.check("(d) the client gets 200", re.fullmatch(r"HTTP/1\.[01] 200 .*", status_line) is not None,
                            "HTTP/1.x 200 OK", status_line, reply[:1]))
    run.expect(_via_check("(d) the reply to the client carries Via", header_value(head, "Via"), reply[:1]))
    run.expect(expect.equals("(d) Content-Length is the size of the file the server serves",
                             str(len(doc)), header_value(head, "Content-Length"), reply[:1]))
    run.expect(expect.check("(d) the body the proxy sent is the file, byte for byte", body == doc,
                            f"{len(doc)} bytes equal to {url.path} as the topology serves it",
                            f"{len(body)} bytes" + ("" if body == doc else ", different"), reply[:1]))
    run.expect(expect.output_matches(f"wget saved {len(doc)} of {len(doc)} bytes", wget_err,
                                     rf"saved \[{len(doc)}/{len(doc)}\]"))

    # (e) squid's log: a MISS fetched directly from the server the capture shows
    new = [e for e in log_after_first if _host_of(e.url) == url.host]
    entry = new[-1] if new else None
    run.expect(expect.equals(
        "(e) access.log: TCP_MISS/200, the whole reply's bytes, HIER_DIRECT to the server the proxy connected to",
        f"{client_ip} TCP_MISS/200 {len(stream)} GET {p.url} HIER_DIRECT/{web_ip}",
        f"{entry.client} {entry.code}/{entry.status} {entry.bytes} {entry.method} {entry.url} "
        f"{entry.hierarchy}/{entry.peer}" if entry else f"no line for {p.url} in {ACCESS_LOG}",
        [syn] if syn else []))
    run.expect(expect.check("(e) the server squid used is one the DNS answer named", web_ip in web_ips,
                            " or ".join(sorted(web_ips)), web_ip or "no SYN to a web server", [syn] if syn else []))

    # the second fetch: MISS again with `cache deny all` (cache: false), HIT when the topology lets squid cache
    want = "HIT" if case.cache else "MISS"
    run.expect(expect.exit_code("the second wget exits 0", rc2, 0))
    x_cache = re.findall(r"^\s*X-Cache: (\S+)", wget_err2, re.MULTILINE)
    run.expect(expect.equals(f"the second fetch is a {want} (topology: proxy cache {str(case.cache).lower()})",
                             [want], x_cache or "no X-Cache header"))
    second = log_after_second[len(log_after_first):]
    run.expect(expect.check(f"the second fetch is logged as a {want}",
                            len(second) == 1 and second[0].from_cache == case.cache and second[0].status == 200,
                            f"one line, {'TCP_*HIT or TCP_REFRESH_UNMODIFIED' if case.cache else 'TCP_MISS'}/200",
                            "; ".join(f"{e.code}/{e.status} {e.hierarchy}/{e.peer}" for e in second) or "no line"))


def _host_of(url: str) -> str | None:
    try:
        return parse_url(url).host
    except ValueError:
        return None


def _between(q: Packet, client: str, server: str, port: int) -> bool:
    return q.tcp is not None and ((q.src, q.dst, q.tcp.dport) == (client, server, port)
                                  or (q.src, q.dst, q.tcp.sport) == (server, client, port))


def _request_line(packets: list[Packet]) -> str:
    """The first request's line with its version shown as HTTP/1.x (wget and squid speak 1.1, the book 1.0)."""
    if not packets or packets[0].http is None:
        return "no HTTP request"
    return re.sub(r"HTTP/1\.[01]$", "HTTP/1.x", packets[0].http.start_line)


def _via_check(description: str, via: str | None, packets: list[Packet]) -> expect.Verdict:
    return expect.check(description, via is not None and VIA.fullmatch(via) is not None, f"/{VIA.pattern}/",
                        via if via is not None else "no Via header", packets)

