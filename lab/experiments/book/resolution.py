"""§4.4 and the book's 5-12: names from /etc/hosts (and the DNS queries that do not happen).

Same lab and helpers as :mod:`ip_layer`.
"""

from __future__ import annotations

import socket

from lab.capture.records import Packet
from lab.experiments import expect
from lab.experiments.book.ip_layer import ROUTER, A, B
from lab.experiments.context import Run
from lab.experiments.engine import experiment

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
            mark1 = run.now()
            any1 = run.sh(A, ["getent", "hosts", B], title=f"getent hosts {B} (in /etc/hosts, IPv4 only)")
            mark2 = run.now()
            run.write_etc(A, "hosts", without_entry)
            run.sh(A, ["cat", "/etc/hosts"], title=f"the client's /etc/hosts, without {B}")
            any2 = run.sh(A, ["getent", "hosts", B], title=f"getent hosts {B} (not in /etc/hosts)")
            mark3 = run.now()
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
    run.expect(expect.count("with the entry, IPv4 lookups: 0 DNS packets", expect.dns(ipv4_with), 0))
    run.expect(expect.output_contains("getent ahostsv4 gives B's address from the file", v4.stdout, server_ip))
    run.expect(expect.output_contains("daytime port from /etc/services", day1.stdout,
                                      f"daytime port is {service_port}"))
    run.expect(expect.output_contains("the client resolved B from the file", day1.stdout, f"host {B} is {server_ip}"))
    run.expect(expect.output_contains("and read the time from B", day1.stdout, "the day time is:"))
    run.expect(expect.count("one daytime connection", expect.syns(expect.tcp(ipv4_with, dport=p.port)), 1))
    _check_queries(run, any_with, ns_ip, {"AAAA"}, "with the entry, getent hosts")
    run.expect(expect.output_contains("getent hosts still gives B's address from the file", any1.stdout, server_ip))

    # without it
    _check_queries(run, any_without, ns_ip, {"AAAA", "A"}, "without the entry, getent hosts")
    run.expect(expect.exit_code("without the entry: getent exits 2 (not found)", any2.rc, 2))
    _check_queries(run, day_without, ns_ip, {"A"}, "without the entry, the daytime client")
    run.expect(expect.output_contains("daytime port still from /etc/services", day2.stdout,
                                      f"daytime port is {service_port}"))
    run.expect(expect.output_contains("the host lookup fails", day2.stdout, f"lookup failed: host {B}"))
    run.expect(expect.count("no daytime connection", expect.syns(expect.tcp(day_without, dport=p.port)), 0))
    run.expect(expect.count("no DNS answer ever comes back (no server there)", expect.dns(pk, response=True), 0))


def _check_queries(run: Run, packets: list[Packet], ns_ip: str, qtypes: set[str], who: str) -> None:
    """``who`` sent DNS queries, all for B to the nameserver, asking exactly the types ``qtypes``."""
    queries = expect.dns(packets, response=False)
    run.expect(expect.count(f"{who}: DNS queries are sent", queries, min=1))
    run.expect(expect.every(f"{who}: every query asks {ns_ip}:53 for {B}", queries,
                            lambda q: q.dst == ns_ip and q.udp is not None and q.udp.dport == 53
                            and q.dns is not None and all(n == B for n, _ in q.dns.questions), f"{ns_ip}.53 ? {B}"))
    seen = [t for q in queries if q.dns for _, t in q.dns.questions]
    want = " and ".join(sorted(qtypes, key=len, reverse=True))
    run.expect(expect.check(f"{who}: asks {want}?", set(seen) == qtypes, ", ".join(sorted(qtypes)),
                            ", ".join(seen) or "none", queries))
