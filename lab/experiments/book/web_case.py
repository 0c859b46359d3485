"""§1.7: a DNS query answered with a CNAME; and what the web case (:mod:`lab.experiments.book.squid`)
reads from the lab's topology and nodes.

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
from lab.capture.records import Packet
from lab.errors import InputError
from lab.experiments import expect
from lab.experiments.book.web_model import (
    Resolution,
    dns_query_length,
    records_of,
    resolve,
)
from lab.experiments.context import Run
from lab.experiments.engine import experiment
from lab.topology import load_topology_text
from lab.topology.model import Topology, WebFile

# ---------------------------------------------------------------- reading the lab's topology


def lab_topology(run: Run) -> Topology:
    """The topology the running lab was built from (as rendered), for its DNS records and services."""
    topo, _ = load_topology_text(run.topology_text(), f"lab {run.lab}'s topology.yaml")
    return topo


def check_node(topo: Topology, name: str, what: str) -> None:
    if name not in topo.nodes:
        raise InputError(f"the topology has no node {name!r} ({what})", f"nodes: {', '.join(sorted(topo.nodes))}")


def addresses_of(topo: Topology, node: str) -> list[str]:
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
    owner = next((n for n in topo.nodes if address in addresses_of(topo, n)), None)
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


def cite(packets: list[Packet]) -> str:
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
    check_node(topo, p.client, "client")
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
