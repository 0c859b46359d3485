"""Kernel and Docker names: stable, short enough for the kernel, and never confused between labs or nodes."""

from __future__ import annotations

import itertools

from lab import names
from lab.topology.model import IFNAME, NODE_NAME

IFNAMSIZ = 15


def test_namespace_and_container_names() -> None:
    assert names.netns_name("book-lan", "kongming20") == "lab-book-lan.kongming20"
    assert names.container_name("book-web", "dns") == "lab-book-web.dns"
    assert names.switch_netns("book-lan") == "lab-book-lan._sw"
    # '.' is in no lab or node name, so (lab "a-b", node "c") and (lab "a", node "b-c") differ
    assert names.netns_name("a-b", "c") != names.netns_name("a", "b-c")
    # '_' cannot start a node name, so no node's namespace is the switch's
    assert names.switch_netns("x") not in {names.netns_name("x", n) for n in ("sw", "Sw", "s-w")}


def test_bridge_names() -> None:
    assert names.bridge_name("lan") == "br-lan"
    assert names.bridge_name("lan", 2) == "br-lan.2"
    long = "a-network-with-a-long-name"
    assert len(names.bridge_name(long)) <= IFNAMSIZ
    assert names.bridge_name(long) == names.bridge_name(long)  # stable
    assert names.bridge_name(long) != names.bridge_name(long + "2")
    shards = [names.bridge_name(long, k) for k in range(12)]
    assert len(set(shards)) == 12 and all(len(s) <= IFNAMSIZ for s in shards)


def test_port_names_fit_and_keep_short_names_readable() -> None:
    assert names.port_name("web", "eth0") == "web-eth0"
    assert names.port_name("ernest-laptop", "eth0").startswith("ernes_")
    assert len(names.port_name("n" * 32, "e" * 15).encode()) <= IFNAMSIZ


def test_port_names_are_stable_and_distinct_for_many_long_names() -> None:
    nodes = [f"server-node-{i:05d}" for i in range(10_000)]
    ports = [names.port_name(n, f"eth{j}") for n in nodes for j in range(2)]
    assert len(set(ports)) == len(ports)
    assert all(len(p.encode()) <= IFNAMSIZ for p in ports)
    assert ports == [names.port_name(n, f"eth{j}") for n in nodes for j in range(2)]


def test_shortened_port_names_never_look_like_bridges_or_literal_ports() -> None:
    """A shortened name has a '_' before its hash; no bridge name has one, and no node name does."""
    for node, ifname in itertools.product(["a" * 20, "web-frontend-1"], ["eth0", "wan_link"]):
        port = names.port_name(node, ifname)
        assert "_" in port and not port.startswith("br-")
        prefix = port.split("_")[0]
        assert prefix == node[:5]


def test_name_patterns_exclude_the_separators() -> None:
    """The separators the names rely on really cannot appear in node or interface names."""
    import re

    for sep in (".", "/", ":", " "):
        assert not re.match(NODE_NAME, f"a{sep}b")
        assert not re.match(IFNAME, f"a{sep}b")
    assert not re.match(NODE_NAME, "_sw")
