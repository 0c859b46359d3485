"""IPv6 in the topology: subnet6/address6 beside today's keys, addresses of both families, strict checks,
and the plan (IPv6 on only where the lab asks for it, routes by family, /etc/hosts of both families)."""

from __future__ import annotations

import textwrap

import pytest

from lab.errors import TopologyError
from lab.plan import make_plan
from lab.topology import load_topology_text
from lab.topology.model import Topology

DUAL = """\
name: six
networks:
  lan:  {subnet: 192.168.1.0/24, subnet6: "fd00:1::/64"}
  core: {subnet6: "fd00:ff::/64"}
nodes:
  client:
    interfaces:
      eth0: {network: lan}
    routes:
      - {to: default, via: 192.168.1.1}
      - {to: default, via: "fd00:1::1"}
  router:
    kind: router
    interfaces:
      eth0: {network: lan, address: 192.168.1.1/24, address6: "fd00:1::1/64"}
      eth1: {network: core, address6: "fd00:ff::1/64"}
  server:
    interfaces:
      eth0: {network: core}
    routes:
      - {to: default, via: "fd00:ff::1"}
"""


def load(text: str) -> Topology:
    topo, _ = load_topology_text(textwrap.dedent(text), "t.yaml")
    return topo


def problems(text: str) -> list[str]:
    with pytest.raises(TopologyError) as info:
        load(text)
    return info.value.problems


def test_dual_stack_and_ipv6_only_networks_get_the_next_free_address_of_each_family() -> None:
    topo = load(DUAL)
    client, server = topo.nodes["client"].interfaces["eth0"], topo.nodes["server"].interfaces["eth0"]
    assert (str(client.address), str(client.address6)) == ("192.168.1.2/24", "fd00:1::2/64")
    assert (server.address, str(server.address6)) == (None, "fd00:ff::2/64")  # IPv6 only: no IPv4 address
    assert load(DUAL).nodes["client"].interfaces["eth0"].address6 == client.address6  # stable across runs


def test_todays_files_mean_what_they_meant() -> None:
    topo = load("name: four\nnetworks:\n  lan: {subnet: 10.0.0.0/24}\nnodes:\n"
                "  a: {interfaces: {eth0: {network: lan}}}\n")
    iface = topo.nodes["a"].interfaces["eth0"]
    assert (str(iface.address), iface.address6) == ("10.0.0.1/24", None)
    assert not topo.uses_ipv6


def test_route_family_follows_via_or_to() -> None:
    routes = load(DUAL).nodes["client"].routes
    assert [(r.family, r.destination) for r in routes] == [(4, "0.0.0.0/0"), (6, "::/0")]


def test_a_network_needs_a_subnet_of_some_family() -> None:
    [p] = problems("name: x\nnetworks:\n  lan: {mtu: 1500}\nnodes:\n  a: {interfaces: {eth0: {network: lan}}}\n")
    assert p.startswith("t.yaml:3: networks.lan: ") and "subnet: (IPv4), subnet6: (IPv6), or both" in p


def test_an_ipv4_value_where_ipv6_is_due_names_its_line() -> None:
    [p] = problems(DUAL.replace('address6: "fd00:ff::1/64"', "address6: 10.0.0.1/24"))
    assert p.startswith("t.yaml:16: nodes.router.interfaces.eth1.address6: ")


def test_an_ipv6_address_outside_its_subnet6() -> None:
    [p] = problems(DUAL.replace('address6: "fd00:ff::1/64"', 'address6: "fd00:fe::1/64"'))
    assert p == ("t.yaml:16: nodes.router.interfaces.eth1.address6: fd00:fe::1/64 is outside network 'core' "
                 "(fd00:ff::/64)")


def test_an_address_of_a_family_the_network_lacks() -> None:
    [p] = problems(DUAL.replace('address6: "fd00:ff::1/64"', 'address6: "fd00:ff::1/64", address: 10.0.0.1/24'))
    assert "nodes.router.interfaces.eth1.address: network 'core' has no subnet: for 10.0.0.1/24" in p


def test_the_subnet_router_anycast_address_is_not_a_host_address() -> None:
    [p] = problems(DUAL.replace('address6: "fd00:ff::1/64"', 'address6: "fd00:ff::/64"'))
    assert "fd00:ff:: is the subnet-router anycast address of fd00:ff::/64" in p


def test_a_duplicate_ipv6_address() -> None:
    text = DUAL.replace("      eth0: {network: core}\n", '      eth0: {network: core, address6: "fd00:ff::1/64"}\n')
    assert any("address fd00:ff::1 is already used by router:eth1" in p for p in problems(text))


def test_an_ipv6_gateway_not_on_a_connected_ipv6_subnet() -> None:
    [p] = problems(DUAL.replace('{to: default, via: "fd00:ff::1"}', '{to: default, via: "fd00:1::1"}'))
    assert p == ("t.yaml:21: nodes.server.routes.0.via: gateway fd00:1::1 is not on an IPv6 subnet 'server' is "
                 "connected to (fd00:ff::/64)")


def test_an_ipv4_gateway_on_an_ipv6_only_node() -> None:
    [p] = problems(DUAL.replace('{to: default, via: "fd00:ff::1"}', "{to: default, via: 10.0.0.1}"))
    assert "gateway 10.0.0.1 is not on an IPv4 subnet 'server' is connected to (none)" in p


def test_a_route_whose_to_and_via_differ_in_family() -> None:
    [p] = problems(DUAL.replace('{to: default, via: "fd00:ff::1"}', '{to: 10.9.0.0/16, via: "fd00:ff::1"}'))
    assert p.startswith("t.yaml:21: nodes.server.routes.0: ") and "IPv4 but via fd00:ff::1 is IPv6" in p


def test_one_default_per_family() -> None:
    text = DUAL.replace('      - {to: default, via: "fd00:1::1"}\n',
                        '      - {to: default, via: "fd00:1::1"}\n      - {to: default, via: "fd00:1::3"}\n')
    [p] = problems(text)
    assert "a route to default (IPv6) is already given by routes[1]" in p


def test_an_ipv6_mtu_below_1280_is_refused() -> None:
    [p] = problems(DUAL.replace('core: {subnet6: "fd00:ff::/64"}', 'core: {subnet6: "fd00:ff::/64", mtu: 1000}'))
    assert "IPv6 needs at least 1280" in p


def test_the_plan_turns_ipv6_on_only_in_a_lab_that_has_it() -> None:
    six, four = make_plan(load(DUAL)), make_plan(load(DUAL.replace(', subnet6: "fd00:1::/64"', "")
                                                      .split("  core:")[0] + "nodes:\n  a: {interfaces: {eth0: "
                                                      "{network: lan}}}\n"))
    for ns in six.namespaces:
        want = "1" if ns.kind == "switch" else "0"  # the switch only bridges
        assert ns.sysctls["net.ipv6.conf.all.disable_ipv6"] == want
    router = next(ns for ns in six.namespaces if ns.node == "router")
    assert router.sysctls["net.ipv6.conf.all.forwarding"] == "1"
    assert all(ns.sysctls["net.ipv6.conf.all.disable_ipv6"] == "1" for ns in four.namespaces)


def test_the_plan_adds_both_families_and_routes_by_family() -> None:
    plan = make_plan(load(DUAL))
    client = next(v for v in plan.veths if v.node == "client")
    assert (client.address, client.address6) == ("192.168.1.2/24", "fd00:1::2/64")
    assert [(r.dst, r.via, r.family) for r in plan.routes if r.netns.endswith(".client")] == [
        ("default", "192.168.1.1", 4), ("default", "fd00:1::1", 6)]
    assert plan.nodes["client"].interfaces["eth0"]["address6"] == "fd00:1::2/64"


def test_hosts_files_name_each_node_in_both_families() -> None:
    hosts = make_plan(load(DUAL)).hosts_files["lab-six.client"].splitlines()
    assert "::1\tlocalhost ip6-localhost ip6-loopback" in hosts
    assert {"192.168.1.2\tclient", "fd00:1::2\tclient", "fd00:ff::2\tserver"} <= set(hosts)


def test_aaaa_and_ip6_arpa_records() -> None:
    base = ("name: d\nnetworks:\n  lan: {subnet6: \"fd00:1::/64\"}\nnodes:\n  dns:\n    kind: container\n"
            "    image: dns\n    interfaces: {eth0: {network: lan}}\n    dns:\n      records:\n")
    topo = load(base + '        - {name: www.example, type: AAAA, value: "fd00:1::80"}\n'
                       '        - {name: "fd00:1::80", type: PTR, value: www.example}\n')
    assert [r.type for r in topo.nodes["dns"].dns.records] == ["AAAA", "PTR"]  # type: ignore[union-attr]
    [p] = problems(base + "        - {name: www.example, type: AAAA, value: 10.0.0.1}\n")
    assert "an AAAA record's value is an IPv6 address, not '10.0.0.1'" in p
    [p] = problems(base + '        - {name: www.example, type: A, value: "fd00::1"}\n')
    assert "an A record's value is an IPv4 address" in p


RA = DUAL.replace('address6: "fd00:1::1/64"}', 'address6: "fd00:1::1/64", ra: true}')


def test_a_router_that_advertises_leaves_its_hosts_to_slaac() -> None:
    topo = load(RA)
    client = topo.nodes["client"].interfaces["eth0"]
    assert client.address6 is None and str(client.address) == "192.168.1.2/24"  # IPv4 is still static
    assert str(topo.nodes["server"].interfaces["eth0"].address6) == "fd00:ff::2/64"  # not advertised: static
    plan = make_plan(topo)
    assert plan.adverts == {"lab-six.router": {"eth0": ["fd00:1::/64"]}}
    assert plan.slaac == {"lab-six.client": ["eth0"]}
    assert "  radvd in lab-six.router: eth0 advertises fd00:1::/64" in plan.describe()
    hosts = plan.hosts_files["lab-six.client"]
    assert "192.168.1.2\tclient" in hosts and "fd00:1::2" not in hosts


def test_ra_is_a_routers_on_a_network_with_an_ipv6_prefix() -> None:
    client = "      eth0: {network: lan}\n    routes:\n      - {to: default, via: 192.168.1.1}"
    [p] = problems(DUAL.replace(client, client.replace("{network: lan}", "{network: lan, ra: true}")))
    assert p.startswith("t.yaml:8: nodes.client.interfaces.eth0.ra: only a router advertises prefixes")
    text = DUAL.replace('lan:  {subnet: 192.168.1.0/24, subnet6: "fd00:1::/64"}', "lan:  {subnet: 192.168.1.0/24}")
    text = text.replace('address: 192.168.1.1/24, address6: "fd00:1::1/64"}', "address: 192.168.1.1/24, ra: true}")
    text = text.replace('      - {to: default, via: "fd00:1::1"}\n', "")
    [p] = problems(text)
    assert "nodes.router.interfaces.eth0.ra: network 'lan' has no subnet6: to advertise" in p
