"""IPv6 for real: book-lan6 in both families across two routers, addresses usable at once, faults and cable
pulls on IPv6, the daemons (dnsmasq AAAA and ip6.arpa, nginx) on IPv6, and IPv4-only labs without it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab import deploy, procs, state
from lab.cli import main

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]
BOOK_LAN6 = ROOT / "topologies" / "book-lan6.yaml"
BOOK_LAN = ROOT / "topologies" / "book-lan.yaml"


def test_both_families_cross_two_routers(lab_factory) -> None:  # type: ignore[no-untyped-def]
    lab = lab_factory(BOOK_LAN6, name="six-a")
    r = lab.exec("kongming20", ["ping", "-6", "-c1", "-W2", "fd00:2::10"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert lab.exec("kongming20", ["ping", "-4", "-c1", "-W2", "far-host"]).returncode == 0
    assert lab.exec("kongming20", ["ping", "-6", "-c1", "-W2", "far-host"]).returncode == 0  # /etc/hosts: both
    hops = lab.exec("kongming20", ["ip", "-6", "route", "get", "fd00:2::10"]).stdout
    assert "via fd00:1::1 dev eth0" in hops
    for node in ("kongming20", "router", "isp", "far-host"):  # only the lab's routes, in either family
        for line in lab.exec(node, ["ip", "-6", "route"]).stdout.splitlines():
            assert line.startswith(("default via fd00:", "fd00:", "fe80::/64", "multicast")), (node, line)


def test_addresses_are_usable_at_once_and_no_router_solicitation_waits(lab_factory) -> None:  # type: ignore[no-untyped-def]
    lab = lab_factory(BOOK_LAN6, name="six-b")
    addresses = json.loads(lab.exec("ernest-laptop", ["ip", "-j", "-6", "addr", "show", "dev", "eth0"]).stdout)
    info = addresses[0]["addr_info"]
    assert any(a["local"] == "fd00:1::108" for a in info)
    assert not any(a.get("tentative") for a in info), info  # no DAD: nothing is held tentative
    for node in ("kongming20", "router"):
        assert lab.exec(node, ["sysctl", "-n", "net.ipv6.conf.all.disable_ipv6"]).stdout.strip() == "0"
    assert lab.exec("router", ["sysctl", "-n", "net.ipv6.conf.all.forwarding"]).stdout.strip() == "1"


def test_an_ipv4_only_lab_has_no_ipv6(lab_factory) -> None:  # type: ignore[no-untyped-def]
    lab = lab_factory(BOOK_LAN, name="six-c")
    for node in ("kongming20", "router"):
        assert lab.exec(node, ["sysctl", "-n", "net.ipv6.conf.all.disable_ipv6"]).stdout.strip() == "1"
    assert "inet6" not in lab.exec("kongming20", ["ip", "addr"]).stdout


def test_a_drop_fault_holds_for_ipv6_too(lab_factory) -> None:  # type: ignore[no-untyped-def]
    lab = lab_factory(BOOK_LAN6, name="six-d")
    lab.serve("ernest-laptop", "echo", "fd00:1::108", "7")
    connect = [lab.python("kongming20"), "-m", "lab.servers.connect_timer", "fd00:1::108", "7", "--timeout", "1"]
    assert "connected" in lab.exec("kongming20", connect).stdout
    assert main(["fault", "add", "--lab", "six-d", "ernest-laptop:eth0", "--drop", "tcp syn dport 7"]) == 0
    rules = lab.exec("ernest-laptop", ["ip6tables", "-t", "raw", "-S", "PREROUTING"]).stdout
    assert "--dport 7" in rules and "lab-fault-" in rules
    assert "connected" not in lab.exec("kongming20", connect).stdout
    assert main(["fault", "clear", "--lab", "six-d"]) == 0
    assert "lab-fault-" not in lab.exec("ernest-laptop", ["ip6tables", "-t", "raw", "-S"]).stdout
    assert "connected" in lab.exec("kongming20", connect).stdout


def test_a_pulled_cable_puts_the_ipv6_routes_back(lab_factory, capsys) -> None:  # type: ignore[no-untyped-def]
    lab = lab_factory(BOOK_LAN6, name="six-e")
    far = ["ping", "-6", "-c1", "-W2", "fd00:2::10"]
    assert main(["link", "down", "--lab", "six-e", "router:eth1"]) == 0
    assert lab.exec("kongming20", far).returncode != 0
    assert main(["link", "up", "--lab", "six-e", "router:eth1"]) == 0
    assert lab.exec("kongming20", far).returncode == 0
    assert "fd00:2::/64 via fd00:ff::2 dev eth1" in lab.exec("router", ["ip", "-6", "route"]).stdout
    assert "fd00:ff::1/64" in lab.exec("router", ["ip", "-6", "addr", "show", "dev", "eth1"]).stdout  # kept
    capsys.readouterr()
    assert main(["inspect", "six-e", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["differences"] == []
    assert data["nodes"]["router"]["interfaces"]["eth1"]["addresses"] == ["10.0.0.1/30", "fd00:ff::1/64"]


SLAAC = """\
name: six-ra
networks:
  lan:  {subnet: 10.67.0.0/24, subnet6: "fd00:67::/64"}
  core: {subnet6: "fd00:68::/64"}
nodes:
  client:
    interfaces: {eth0: {network: lan}}
  router:
    kind: router
    interfaces:
      eth0: {network: lan, address: 10.67.0.1/24, address6: "fd00:67::1/64", ra: true}
      eth1: {network: core, address6: "fd00:68::1/64"}
  server:
    interfaces: {eth0: {network: core}}
    routes: [{to: default, via: "fd00:68::1"}]
"""


def test_a_router_that_advertises_gives_its_hosts_slaac_addresses(lab_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "six-ra.yaml"
    path.write_text(SLAAC)
    lab = lab_factory(path, name="six-ra")
    info = json.loads(lab.exec("client", ["ip", "-j", "-6", "addr", "show", "dev", "eth0", "scope", "global"]).stdout)
    slaac = [a for a in info[0]["addr_info"] if a.get("dynamic")]
    assert len(slaac) == 1 and slaac[0]["local"].startswith("fd00:67::") and slaac[0]["prefixlen"] == 64, info
    routes = lab.exec("client", ["ip", "-6", "route", "show", "default"]).stdout
    assert "proto ra" in routes and "via fe80::" in routes, routes  # the router's link-local address
    assert lab.exec("client", ["ping", "-6", "-c1", "-W2", "fd00:68::2"]).returncode == 0
    assert lab.exec("server", ["ping", "-6", "-c1", "-W2", slaac[0]["local"]]).returncode == 0
    radvd = [e for e in state.Journal(lab.name).entries() if str(e.get("name", "")).startswith("radvd ")]
    assert len(radvd) == 1
    deploy.down(lab.name)
    assert not procs.is_running(int(radvd[0]["pid"]), radvd[0].get("start_time"))


DAEMONS = """\
name: six-web
networks:
  lan: {subnet: 10.66.0.0/24, subnet6: "fd00:66::/64"}
nodes:
  client:
    interfaces: {eth0: {network: lan}}
    resolv: {nameservers: ["fd00:66::53"]}
  dns:
    kind: container
    image: dns
    interfaces: {eth0: {network: lan, address6: "fd00:66::53/64"}}
    dns:
      records:
        - {name: www.six.example, type: AAAA, value: "fd00:66::80"}
        - {name: www.six.example, type: A, value: 10.66.0.80}
        - {name: "fd00:66::80", type: PTR, value: www.six.example}
  web:
    kind: container
    image: web
    interfaces: {eth0: {network: lan, address: 10.66.0.80/24, address6: "fd00:66::80/64"}}
    web:
      documents: {/index.html: "hello over both families\\n"}
  proxy:
    kind: container
    image: proxy
    interfaces: {eth0: {network: lan, address6: "fd00:66::31/64"}}
    resolv: {nameservers: ["fd00:66::53"]}
    proxy: {}
"""


@pytest.mark.docker
def test_dns_and_web_daemons_serve_ipv6(lab_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "six-web.yaml"
    path.write_text(DAEMONS)
    lab = lab_factory(path)
    # the client's only nameserver is the DNS node's IPv6 address: dnsmasq answers over IPv6
    aaaa = lab.exec("client", ["dig", "+short", "AAAA", "www.six.example"])
    assert aaaa.stdout.split() == ["fd00:66::80"], aaaa.stdout + aaaa.stderr
    ptr = lab.exec("client", ["dig", "+short", "-x", "fd00:66::80"])
    assert ptr.stdout.split() == ["www.six.example."], ptr.stdout + ptr.stderr
    page = lab.exec("client", ["wget", "-q", "-O-", "http://[fd00:66::80]/index.html"])
    assert page.stdout == "hello over both families\n", page.stderr
    page4 = lab.exec("client", ["wget", "-q", "-O-", "http://10.66.0.80/index.html"])
    assert page4.stdout == "hello over both families\n", page4.stderr
    hosts = lab.exec("client", ["getent", "ahosts", "web"]).stdout
    assert "fd00:66::80" in hosts and "10.66.0.80" in hosts
    # squid: the client reaches it over IPv6 (its acl allows both of the LAN's subnets)
    proxied = lab.exec("client", ["curl", "-s", "-x", "http://[fd00:66::31]:3128", "http://www.six.example/index.html"])
    assert proxied.stdout == "hello over both families\n", proxied.stdout + proxied.stderr
