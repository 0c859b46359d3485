"""Automatic addresses: the next free host of the subnet, in file order, stable, around explicit ones."""

from __future__ import annotations

import pytest

from lab.errors import TopologyError
from lab.topology import load_topology_text


def addresses(text: str) -> dict[str, str]:
    topo, _ = load_topology_text(text, "a.yaml")
    return {f"{n}:{i}": str(f.address) for n, node in topo.nodes.items() for i, f in node.interfaces.items()}


def lan(nodes: str, subnet: str = "10.0.0.0/24") -> str:
    return f"name: a\nnetworks:\n  lan: {{subnet: {subnet}}}\nnodes:\n{nodes}"


def test_auto_addresses_are_the_next_free_hosts_in_file_order() -> None:
    got = addresses(lan("".join(f"  h{i}: {{interfaces: {{eth0: {{network: lan}}}}}}\n" for i in range(4))))
    assert got == {"h0:eth0": "10.0.0.1/24", "h1:eth0": "10.0.0.2/24", "h2:eth0": "10.0.0.3/24",
                   "h3:eth0": "10.0.0.4/24"}


def test_explicit_addresses_are_reserved_even_when_declared_later() -> None:
    got = addresses(lan("  h0: {interfaces: {eth0: {network: lan}}}\n"
                        "  h1: {interfaces: {eth0: {network: lan}}}\n"
                        "  gw: {kind: router, interfaces: {eth0: {network: lan, address: 10.0.0.1/24}}}\n"
                        "  h2: {interfaces: {eth0: {network: lan, address: 10.0.0.3/24}}}\n"
                        "  h3: {interfaces: {eth0: {network: lan}}}\n"))
    assert got == {"h0:eth0": "10.0.0.2/24", "h1:eth0": "10.0.0.4/24", "gw:eth0": "10.0.0.1/24",
                   "h2:eth0": "10.0.0.3/24", "h3:eth0": "10.0.0.5/24"}


def test_each_network_counts_on_its_own() -> None:
    text = ("name: a\nnetworks:\n  red: {subnet: 10.1.0.0/24}\n  blue: {subnet: 10.2.0.0/29}\nnodes:\n"
            "  r: {kind: router, interfaces: {eth0: {network: red}, eth1: {network: blue}}}\n"
            "  x: {interfaces: {eth0: {network: blue}}}\n  y: {interfaces: {eth0: {network: red}}}\n")
    assert addresses(text) == {"r:eth0": "10.1.0.1/24", "r:eth1": "10.2.0.1/29", "x:eth0": "10.2.0.2/29",
                               "y:eth0": "10.1.0.2/24"}


def test_addresses_are_stable_across_runs() -> None:
    text = lan("".join(f"  h{i}: {{interfaces: {{eth0: {{network: lan}}}}}}\n" for i in range(50)),
               "172.16.0.0/16")
    first = addresses(text)
    assert all(addresses(text) == first for _ in range(3))
    assert len(set(first.values())) == 50


def test_links_are_not_auto_addressed() -> None:
    text = ("name: a\nnodes:\n  a: {interfaces: {eth0: {}}}\n  b: {interfaces: {eth0: {}}}\n"
            "links:\n  - [a:eth0, b:eth0]\n")
    assert addresses(text) == {"a:eth0": "None", "b:eth0": "None"}


def test_point_to_point_subnets() -> None:
    assert addresses(lan("  a: {interfaces: {eth0: {network: lan}}}\n  b: {interfaces: {eth0: {network: lan}}}\n",
                         "10.0.0.0/31")) == {"a:eth0": "10.0.0.0/31", "b:eth0": "10.0.0.1/31"}


def test_exhaustion_names_the_interface_that_did_not_fit() -> None:
    text = lan("  a: {interfaces: {eth0: {network: lan}}}\n"
               "  b: {interfaces: {eth0: {network: lan, address: 10.0.0.6/29}}}\n"
               + "".join(f"  h{i}:\n    interfaces: {{eth0: {{network: lan}}}}\n" for i in range(6)),
               "10.0.0.0/29")
    with pytest.raises(TopologyError) as exc:
        load_topology_text(text, "a.yaml")
    # 6 usable hosts: .1-.5 go to a, h0..h3, .6 is b's; h4 (line 16) is the first without one
    assert exc.value.problems == [
        "a.yaml:16: nodes.h4.interfaces.eth0: no free address left in lan (10.0.0.0/29); use a larger subnet"]
