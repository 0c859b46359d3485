"""Ch.4 the whole web case through the squid proxy (the book's figure 4-1): one wget on the client.

Runs on ``book-web.yaml`` (squid on ernest-laptop, dnsmasq on ``dns``, nginx on web1/web2 behind the
router). Every expected value — the addresses the URL's host resolves to, the proxy's port, the
gateway and its MAC, the document's bytes, whether squid may cache — is read from the lab's own
topology and from the live nodes (:mod:`lab.experiments.book.web_case` reads them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lab.capture.pcapfile import merge
from lab.capture.records import Packet
from lab.errors import InputError
from lab.experiments import expect
from lab.experiments.book.web_case import (
    DnsServer,
    addresses_of,
    check_node,
    cite,
    dns_server_for,
    document,
    gateway_towards,
    lab_topology,
    owner_of,
)
from lab.experiments.book.web_model import (
    VIA,
    AccessEntry,
    Resolution,
    Url,
    header_value,
    parse_access_log,
    parse_url,
    split_http,
    tcp_stream,
)
from lab.experiments.context import Run
from lab.experiments.engine import experiment
from lab.topology.model import Topology

# Where lab's squid writes its access log (lab.services.squid_daemon renders it into squid.conf).
ACCESS_LOG = "/var/log/squid/access.log"
# squid keeps a DNS answer for at least negative_dns_ttl (default 60 s; dnsmasq's TTL 0 is raised to it),
# and an idle connection to a server for server_idle_pconn_timeout (60 s); plus a margin.
SQUID_MEMORY = 65.0


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
    check_node(topo, p.client, "client")
    check_node(topo, p.proxy, "proxy")
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
        owner = next((n for n in topo.nodes if address in addresses_of(topo, n)), None)
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

    path = _Path(proxy_ip, client_ip, gateway, router, router_mac, dns_ip, web_ips)
    _judge_one_hop(run, at_proxy, path, res, url, steps[0][1], steps[2][1])
    syn = expect.first(at_proxy, lambda q: q.tcp is not None and q.tcp.is_syn and q.dst in web_ips)
    web_ip = syn.dst if syn else None
    stream = _judge_reply(run, at_proxy, case, path, web_ip, wget_err)
    _judge_logs(run, case, log_after_first, log_after_second, (client_ip, web_ip, web_ips, syn), stream, rc2,
                wget_err2)


@dataclass
class _Path:
    """The addresses on the proxy's way out: who asks, who answers, the router between."""

    proxy_ip: str
    client_ip: str
    gateway: str
    router: str
    router_mac: str
    dns_ip: str
    web_ips: set[str]


def _judge_one_hop(run: Run, at_proxy: list[Packet], path: _Path, res: Resolution, url: Url,
                   is_request: expect.Predicate, is_query: expect.Predicate) -> None:
    """(c) one hop to the router: ARP for the gateway, frames to its MAC, IP to the final hosts; and the
    proxy's request to the server in origin-form, with Via."""
    proxy_ip, gateway, router, router_mac = path.proxy_ip, path.gateway, path.router, path.router_mac
    dns_ip, web_ips = path.dns_ip, path.web_ips
    # (c) one hop to the router: ARP for the gateway, frames to its MAC, IP to the final hosts
    # Only the ARP the proxy sends on its way out counts: with the client's cache still warm (a reused
    # lab), the flushed proxy may first have to ask for the client's address to answer its SYN.
    request = expect.first(at_proxy, is_request)
    query = expect.first(at_proxy, is_query)
    outgoing_arp = [q for q in expect.between(at_proxy, request, query)
                    if q.arp is not None and q.arp.is_request and q.src == proxy_ip]
    run.expect(expect.check(f"(c) the proxy's ARP before its DNS query asks for the gateway {gateway} "
                            "(not the DNS server)",
                            bool(outgoing_arp) and all(q.arp is not None and q.arp.tpa == gateway
                                                       for q in outgoing_arp),
                            f"who-has {gateway}", cite(outgoing_arp), outgoing_arp))
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
    to_web = [q for q in expect.http(at_proxy, "request") if q.src == proxy_ip and q.dst in web_ips]
    run.expect(expect.equals("the proxy asks the server for the path (origin-form), not the absolute URI",
                             f"GET {url.path} HTTP/1.x",
                             _request_line(to_web), to_web[:1]))
    via_req = to_web[0].http.header("Via") if to_web and to_web[0].http else None
    run.expect(_via_check("the proxy's request to the server carries Via", via_req, to_web[:1]))



def _judge_reply(run: Run, at_proxy: list[Packet], case: WebCase, path: _Path, web_ip: str | None,
                 wget_err: str) -> bytes:
    """(d) what the client got: status, Via, Content-Length, and the served file byte for byte."""
    proxy_ip, client_ip, url = path.proxy_ip, path.client_ip, case.url
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

    return stream


def _judge_logs(run: Run, case: WebCase, log_after_first: list[AccessEntry], log_after_second: list[AccessEntry],
                fetched: tuple[str, str | None, set[str], Packet | None], stream: bytes, rc2: int | None,
                wget_err2: str) -> None:
    """(e) squid's log of the first fetch, and the second fetch: a MISS again, or a HIT where squid caches."""
    client_ip, web_ip, web_ips, syn = fetched
    p, url = run.p, case.url
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

