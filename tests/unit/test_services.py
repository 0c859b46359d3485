"""Daemon configurations rendered from a topology (no Docker): DNS records, squid's ACL, web documents."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from lab import services
from lab.errors import InputError, TopologyError
from lab.plan import make_plan
from lab.topology import load_topology, load_topology_text

ROOT = Path(__file__).resolve().parents[2]
BOOK_WEB = ROOT / "topologies" / "book-web.yaml"


def book_web() -> tuple[object, object]:
    topo, _ = load_topology(BOOK_WEB)
    return topo, make_plan(topo)


def daemons_by_node() -> dict[str, services.Daemon]:
    topo, plan = book_web()
    return {d.node: d for d in services.plan_daemons(plan, topo, BOOK_WEB.parent)}  # type: ignore[arg-type]


def text(d: services.Daemon, path: str) -> str:
    return d.files[path].decode()


def test_book_web_runs_one_daemon_per_service_node():
    found = daemons_by_node()
    assert {n: d.what for n, d in found.items()} == {
        "dns": "dnsmasq", "web1": "nginx", "web2": "nginx", "ernest-laptop": "squid"}


def test_dnsmasq_serves_the_cname_and_both_a_records_and_nothing_upstream():
    d = daemons_by_node()["dns"]
    conf = text(d, "/etc/lab/dnsmasq.conf")
    lines = set(conf.splitlines())
    assert {"no-resolv", "no-hosts", "listen-address=10.0.2.53", "cname=www.baidu.com,www.a.shifen.com"} <= lines
    assert not any(line.startswith("server=") for line in lines), "an upstream server would let queries leave"
    hosts = [line.split() for line in text(d, "/etc/lab/dns.hosts").splitlines() if not line.startswith("#")]
    assert hosts == [["10.0.2.1", "www.a.shifen.com"], ["10.0.2.2", "www.a.shifen.com"]]
    assert (d.ready.kind, d.ready.address, d.ready.port) == ("dns", "10.0.2.53", 53)


def test_squid_follows_the_book_setup():
    d = daemons_by_node()["ernest-laptop"]
    lines = set(text(d, "/etc/lab/squid.conf").splitlines())
    assert {
        "http_port 3128", "visible_hostname ernest-laptop", "acl localnet src 192.168.1.0/24",
        "http_access allow localnet", "http_access deny all", "dns_nameservers 10.0.2.53",
        "cache deny all", "pinger_enable off", "access_log stdio:/var/log/squid/access.log",
    } <= lines
    assert (d.ready.kind, d.ready.address, d.ready.port) == ("tcp", "192.168.1.108", 3128)


def test_web_documents_come_from_the_file_the_topology_names():
    d = daemons_by_node()["web1"]
    assert d.files["/var/www/lab/index.html"] == (BOOK_WEB.parent / "book-web" / "index.html").read_bytes()
    assert "listen 80 default_server;" in text(d, "/etc/lab/nginx.conf")
    assert daemons_by_node()["web2"].files["/var/www/lab/index.html"] == d.files["/var/www/lab/index.html"]


TOPO = """
name: svc
networks:
  lan: {subnet: 192.168.7.0/24}
  dmz: {subnet: 172.20.0.0/24}
nodes:
  px:
    kind: container
    image: proxy
    interfaces:
      eth0: {network: lan, address: 192.168.7.2/24}
      eth1: {network: dmz, address: 172.20.0.2/24}
    PROXY
  ns:
    kind: container
    image: dns
    interfaces:
      eth0: {network: dmz, address: 172.20.0.53/24}
    DNS
  www:
    kind: container
    image: web
    interfaces:
      eth0: {network: dmz, address: 172.20.0.80/24}
    WEB
"""


def render(proxy: str = "proxy: {}", dns: str = "dns: {records: []}", web: str = "web: {}", base: Path = ROOT):
    topo, _ = load_topology_text(TOPO.replace("PROXY", proxy).replace("DNS", dns).replace("WEB", web))
    return {d.node: d for d in services.plan_daemons(make_plan(topo), topo, base)}


def test_proxy_allows_its_own_networks_by_default_and_what_it_is_told_otherwise():
    conf = render()["px"].files["/etc/lab/squid.conf"].decode()
    assert "acl localnet src 192.168.7.0/24 172.20.0.0/24" in conf
    conf = render("proxy: {allow: [dmz, 10.9.0.0/16], cache: true, port: 8080}")["px"].files[
        "/etc/lab/squid.conf"].decode()
    assert "acl localnet src 172.20.0.0/24 10.9.0.0/16" in conf
    assert "cache deny all" not in conf and "http_port 8080" in conf
    assert "dns_nameservers" not in conf


def test_proxy_allow_naming_an_unknown_network_is_refused():
    with pytest.raises(InputError, match=r"proxy.allow names network 'wan'.*networks: dmz, lan"):
        render("proxy: {allow: [wan]}")


def test_ptr_records_and_explicit_nameservers():
    found = render(
        "proxy: {nameservers: [172.20.0.53]}",
        "dns: {records: [{name: www.example, value: 172.20.0.80}, {name: 172.20.0.80, type: PTR, value: www.example},"
        " {name: 53.0.20.172.in-addr.arpa., type: PTR, value: ns.example}]}")
    conf = found["ns"].files["/etc/lab/dnsmasq.conf"].decode()
    assert "ptr-record=80.0.20.172.in-addr.arpa,www.example" in conf
    assert "ptr-record=53.0.20.172.in-addr.arpa,ns.example" in conf
    assert "dns_nameservers 172.20.0.53" in found["px"].files["/etc/lab/squid.conf"].decode()


def test_a_cname_to_a_name_the_server_does_not_serve_is_refused():
    with pytest.raises(InputError, match="no record here for elsewhere.example"):
        render(dns="dns: {records: [{name: a.example, type: CNAME, value: elsewhere.example}]}")


def test_inline_documents_and_a_missing_document_file(tmp_path):
    found = render(web="web: {documents: {/index.html: '<h1>hi</h1>', /a/b.txt: 'b'}}")
    assert found["www"].files["/var/www/lab/index.html"] == b"<h1>hi</h1>"
    assert found["www"].files["/var/www/lab/a/b.txt"] == b"b"
    with pytest.raises(InputError, match=r"node 'www': web document /x.html: no file .*nothere.html"):
        render(web="web: {documents: {/x.html: {file: nothere.html}}}", base=tmp_path)


@pytest.mark.parametrize("bad, expected", [
    ("web: {documents: {/../etc/passwd: x}}", "web.documents./../etc/passwd: not valid"),
    ("web: {documents: {index.html: x}}", "web.documents.index.html: not valid"),
    ("dns: {records: [{name: a.example, value: not-an-ip}]}", "an A record's value is an IPv4 address"),
    ("dns: {records: [{name: a.example, type: CNAME, value: 10.0.0.1}]}", "a host name"),
    ("dns: {records: [{name: a.example, type: PTR, value: b.example}]}", "PTR record's name"),
    ("dns: {records: [{name: 'a\nb', value: 10.0.0.1}]}", "dns.records.0.name: not valid"),
    ("dns: {records: [{name: a.example, type: MX, value: b.example}]}", "dns.records.0.type: input should be"),
])
def test_bad_service_sections_are_topology_errors(bad, expected):
    with pytest.raises(TopologyError, match=re.escape(expected)):
        render(dns=bad if bad.startswith("dns") else "dns: {}", web=bad if bad.startswith("web") else "web: {}")


def test_a_service_on_a_namespace_node_is_refused():
    with pytest.raises(TopologyError, match="needs kind: container"):
        load_topology_text("name: x\nnodes:\n  a:\n    dns: {records: []}\n")


def test_resolv_conf_is_planned_for_nodes_that_ask():
    _, plan = book_web()
    assert plan.resolv_files == {  # type: ignore[attr-defined]
        "lab-book-web.ernest-laptop": "# lab: written from the topology's resolv: section\nnameserver 10.0.2.53\n"}


def test_the_readiness_query_is_the_31_byte_query_host_sends():
    q = services.dns_query("www.baidu.com", 0x1234)
    assert len(q) == 31  # the book's "A? www.baidu.com. (31)"
    assert struct.unpack("!HHHHHH", q[:12]) == (0x1234, 0x0100, 1, 0, 0, 0)
    assert q[12:-4] == b"\x03www\x05baidu\x03com\x00"


def test_a_document_file_outside_the_topology_directory_is_refused(tmp_path):
    import pytest

    from lab.errors import InputError
    from lab.services import _inside

    (tmp_path / "index.html").write_text("hi")
    assert _inside("web", "/index.html", tmp_path, "index.html") == (tmp_path / "index.html").resolve()
    for hostile in ("../../etc/shadow", "/etc/shadow", "sub/../../x"):
        with pytest.raises(InputError, match="outside the topology's directory"):
            _inside("web", "/x", tmp_path, hostile)


TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
"""
TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue
   0: 00000000000000000000000000000000:0C38 00000000000000000000000000000000:0000 0A 00000000:00000000
   1: 000000FD000000000000000080000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000
"""


def test_listens_reads_both_tables_and_a_dual_stack_wildcard() -> None:
    from lab.services import listens

    assert listens(TCP, "127.0.0.1", 53) and not listens(TCP, "10.0.0.1", 53)
    assert listens(TCP6, "10.66.0.3", 3128) and listens(TCP6, "fd00:66::31", 3128)  # squid on [::]:3128
    assert listens(TCP + TCP6, "fd00::80", 80) and not listens(TCP6, "fd00::81", 80)
    assert not listens(TCP6, "fd00::80", 81)
