"""The plan: kernel names that fit, indexes known in advance, bridges sharded, /etc/hosts and sysctls."""

from __future__ import annotations

import textwrap
from collections import Counter

import pytest

from lab.errors import TopologyError
from lab.plan import BRIDGE_PORTS_PER_SHARD, FIRST_INDEX, MAX_PORTS_PER_SHARD, Plan, make_plan
from lab.topology import load_topology_text
from lab.topology.model import Topology

IFNAMSIZ = 15


def plan_of(text: str) -> Plan:
    topo, _ = load_topology_text(textwrap.dedent(text), "p.yaml")
    return make_plan(topo)


BOOK = """\
    name: book
    networks:
      lan: {subnet: 192.168.1.0/24}
    nodes:
      Kongming20:
        interfaces: {eth0: {network: lan, address: 192.168.1.109/24}}
        routes: [{to: default, via: 192.168.1.1}]
      ernest-laptop:
        interfaces: {eth0: {network: lan}}
        hosts: {www.example.org: 10.0.2.1}
      router:
        kind: router
        interfaces:
          eth0: {network: lan, address: 192.168.1.1/24}
          eth1: {address: 10.0.0.1/30}
      isp:
        kind: router
        interfaces: {eth0: {address: 10.0.0.2/30}}
    links:
      - [router:eth1, isp:eth0]
"""


def kernel_names(plan: Plan) -> dict[str, list[str]]:
    """Every interface name the plan makes, per namespace."""
    found: dict[str, list[str]] = {}
    for br in plan.bridges:
        found.setdefault(br.netns, []).append(br.name)
    for v in plan.veths:
        found.setdefault(v.netns, []).append(v.ifname)
        found.setdefault(v.peer_netns, []).append(v.peer_ifname)
    return found


def indexes(plan: Plan) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for br in plan.bridges:
        found.setdefault(br.netns, []).append(br.index)
    for v in plan.veths:
        found.setdefault(v.netns, []).append(v.index)
        found.setdefault(v.peer_netns, []).append(v.peer_index)
    return found


def test_names_fit_the_kernel_whatever_the_node_names() -> None:
    long_nodes = "".join(f"  {'n' * 28}{i:04d}: {{interfaces: {{{'e' * 15}: {{network: a-network-with-a-long-name}}, "
                         f"eth1: {{network: lan}}}}}}\n" for i in range(300))
    plan = plan_of("name: longnames\nnetworks:\n  a-network-with-a-long-name: {subnet: 10.0.0.0/22}\n"
                   "  lan: {subnet: 10.1.0.0/22}\nnodes:\n" + long_nodes)
    for netns, ifnames in kernel_names(plan).items():
        assert all(len(n.encode()) <= IFNAMSIZ for n in ifnames), netns
        assert len(set(ifnames)) == len(ifnames), f"duplicate interface names in {netns}"


def test_switch_port_names_are_unique_and_clashes_are_refused() -> None:
    plan = plan_of(BOOK)
    ports = [v.peer_ifname for v in plan.veths if v.peer_netns == "lab-book._sw"]
    assert ports[0] == "Kongming20-eth0" and ports[2] == "router-eth0"  # 15 bytes fit as they are
    assert ports[1].startswith("ernes_") and len(ports[1]) == IFNAMSIZ  # ernest-laptop-eth0 does not
    assert len(set(ports)) == 3
    clash = ("name: c\nnetworks:\n  lan: {subnet: 10.0.0.0/24}\nnodes:\n"
             "  web-a: {interfaces: {eth0: {network: lan}}}\n  web: {interfaces: {a-eth0: {network: lan}}}\n")
    with pytest.raises(TopologyError, match="would be named 'web-a-eth0'"):
        plan_of(clash)


def test_interface_indexes_are_known_in_advance() -> None:
    plan = plan_of(BOOK)
    assert plan.nodes["router"].interfaces["eth0"]["index"] == FIRST_INDEX
    assert plan.nodes["router"].interfaces["eth1"]["index"] == FIRST_INDEX + 1
    assert plan.nodes["isp"].interfaces["eth0"]["index"] == FIRST_INDEX
    for netns, numbers in indexes(plan).items():
        assert len(set(numbers)) == len(numbers), f"an index is used twice in {netns}"
        assert min(numbers) >= FIRST_INDEX  # 1 is lo
    link = next(v for v in plan.veths if v.netns == "lab-book.router" and v.ifname == "eth1")
    assert (link.peer_netns, link.peer_ifname, link.peer_index) == ("lab-book.isp", "eth0", FIRST_INDEX)
    assert plan.nodes["router"].interfaces["eth1"]["peer"] == "isp:eth0"
    # every port hangs from the bridge of its network, by index
    (bridge,) = plan.bridges
    assert all(v.peer_master == bridge.index for v in plan.veths if v.peer_netns == bridge.netns)


def test_bridges_are_sharded_past_their_share_of_ports_and_joined_by_trunks() -> None:
    n = 2 * BRIDGE_PORTS_PER_SHARD + BRIDGE_PORTS_PER_SHARD // 2
    topo = Topology.model_validate({
        "name": "big",
        "networks": {"lan": {"subnet": "10.0.0.0/20"}},
        "nodes": {f"h{i}": {"interfaces": {"eth0": {"network": "lan"}}} for i in range(n)},
    })
    plan = make_plan(topo)
    assert [b.name for b in plan.bridges] == ["br-lan", "br-lan.1", "br-lan.2"]
    root, *others = plan.bridges
    assert all(b.trunk_to == root.index for b in others)
    ports = Counter(v.peer_master for v in plan.veths if v.node is not None)
    assert sorted(ports.values()) == [BRIDGE_PORTS_PER_SHARD // 2, BRIDGE_PORTS_PER_SHARD, BRIDGE_PORTS_PER_SHARD]
    assert all(count <= BRIDGE_PORTS_PER_SHARD for count in ports.values())
    trunks = [v for v in plan.veths if v.node is None]
    assert [(t.master, t.peer_master) for t in trunks] == [(b.index, root.index) for b in others]
    assert all(t.netns == t.peer_netns == "lab-big._sw" for t in trunks)
    # a bridge holds its ports plus trunks: below the kernel's 1023
    assert ports[root.index] + len(trunks) <= 1023
    # a cluster's plan keeps a LAN on one bridge up to MAX_PORTS_PER_SHARD ports (its wiring has no trunks)
    assert len(make_plan(topo, ports_per_shard=MAX_PORTS_PER_SHARD).bridges) == 1
    for netns, numbers in indexes(plan).items():
        assert len(set(numbers)) == len(numbers), netns


def test_hosts_file() -> None:
    plan = plan_of(BOOK)
    common = ("127.0.0.1\tlocalhost\n192.168.1.109\tKongming20\n192.168.1.2\ternest-laptop\n"
              "192.168.1.1\trouter\n10.0.0.2\tisp\n")
    assert plan.hosts_files["lab-book.Kongming20"] == common
    assert plan.hosts_files["lab-book.ernest-laptop"] == common + "10.0.2.1\twww.example.org\n"
    assert set(plan.hosts_files) == {f"lab-book.{n}" for n in ("Kongming20", "ernest-laptop", "router", "isp")}


def sysctls(plan: Plan, ns: str) -> dict[str, str]:
    spec = next(s for s in plan.namespaces if s.name == ns)
    return {**spec.sysctls, **spec.late_sysctls}


def test_routers_forward_and_hosts_do_not() -> None:
    plan = plan_of(BOOK)
    assert sysctls(plan, "lab-book.router")["net.ipv4.ip_forward"] == "1"
    assert sysctls(plan, "lab-book.isp")["net.ipv4.ip_forward"] == "1"
    assert sysctls(plan, "lab-book.Kongming20")["net.ipv4.ip_forward"] == "0"
    assert sysctls(plan, "lab-book._sw")["net.ipv4.ip_forward"] == "0"
    # the host's own tuning never leaks in: these are set in every namespace
    for ns in plan.namespaces:
        assert sysctls(plan, ns.name)["net.ipv4.conf.all.rp_filter"] == "0"


def test_ipv6_is_disabled_unless_asked_for() -> None:
    off = plan_of(BOOK)
    on = plan_of(BOOK.replace("name: book\n", "name: book\n    ipv6: true\n"))
    for ns in off.namespaces:
        assert sysctls(off, ns.name)["net.ipv6.conf.all.disable_ipv6"] == "1"
        assert sysctls(off, ns.name)["net.ipv6.conf.default.disable_ipv6"] == "1"
    for ns in on.namespaces:  # on in every node's namespace; the switch only bridges, and keeps it off
        assert sysctls(on, ns.name)["net.ipv6.conf.all.disable_ipv6"] == ("1" if ns.kind == "switch" else "0")
        if ns.kind != "switch":
            assert sysctls(on, ns.name)["net.ipv6.conf.default.accept_dad"] == "0"


def test_topology_and_node_sysctls_override_and_per_interface_keys_come_late() -> None:
    plain = "kind: router\n        interfaces:\n          eth0: {network: lan, address: 192.168.1.1/24}"
    tuned = ("kind: router\n        sysctls: {net.ipv4.tcp_syn_retries: 2, net.ipv4.conf.eth0.rp_filter: 1}\n"
             "        interfaces:\n          eth0: {network: lan, address: 192.168.1.1/24}")
    assert plain in BOOK
    plan = plan_of(BOOK.replace("name: book\n", "name: book\n    sysctls: {net.ipv4.tcp_syn_retries: 3}\n")
                   .replace(plain, tuned))
    router = next(s for s in plan.namespaces if s.name == "lab-book.router")
    assert router.sysctls["net.ipv4.tcp_syn_retries"] == "2"
    assert router.late_sysctls == {"net.ipv4.conf.eth0.rp_filter": "1"}
    assert sysctls(plan, "lab-book.isp")["net.ipv4.tcp_syn_retries"] == "3"


def test_routes_use_indexes() -> None:
    plan = plan_of(BOOK)
    (route,) = [r for r in plan.routes if r.netns == "lab-book.Kongming20"]
    assert (route.dst, route.via, route.oif) == ("default", "192.168.1.1", None)


def test_describe_lists_what_will_be_made() -> None:
    lines = plan_of(BOOK).describe()
    assert lines[0] == "lab book"
    text = "\n".join(lines)
    assert "create namespace lab-book._sw (switch)" in text
    assert "create namespace lab-book.router (router)" in text
    assert "bridge br-lan" in text
    assert "veth lab-book.router:eth1#3 10.0.0.1/30 <-> lab-book.isp:eth0#2 10.0.0.2/30" in text
    assert "route in lab-book.Kongming20: default via 192.168.1.1" in text
