"""Checks that need the whole topology: references, addresses, gateways, link ends.

Each problem is one line ``file:line: field: what is wrong (hint)``; all
problems are collected and reported together so one run fixes them all.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import TYPE_CHECKING

from lab.errors import TopologyError
from lab.topology.model import Topology

if TYPE_CHECKING:
    from lab.topology.loader import SourceMap

MAX_BRIDGE_PORTS = 1023


def check_topology(topo: Topology, smap: SourceMap) -> None:
    problems: list[str] = []

    def problem(path: tuple[object, ...], text: str) -> None:
        dotted = ".".join(str(p) for p in path)
        problems.append(f"{smap.where(path)}: {dotted}: {text}")

    linked: dict[tuple[str, str], int] = {}
    for i, link in enumerate(topo.links):
        for side, (node, ifname) in zip(("a", "b"), link.ends, strict=True):
            path = ("links", i)
            if node not in topo.nodes:
                problem(path, f"unknown node {node!r} (nodes: {', '.join(sorted(topo.nodes))})")
                continue
            iface = topo.nodes[node].interfaces.get(ifname)
            if iface is None:
                problem(path, f"node {node!r} has no interface {ifname!r}; declare it under nodes.{node}.interfaces")
                continue
            if iface.network is not None:
                problem(path, f"{node}:{ifname} is on network {iface.network!r}; a link joins interfaces without a network")
            if (node, ifname) in linked:
                problem(path, f"{node}:{ifname} is already used by links[{linked[(node, ifname)]}]")
            linked[(node, ifname)] = i
        if link.ends[0][0] == link.ends[1][0] and link.ends[0] == link.ends[1]:
            problem(("links", i), "a link cannot join an interface to itself")

    seen_addresses: dict[IPv4Address, str] = {}
    for name, node in topo.nodes.items():
        base = ("nodes", name)
        if node.kind == "container" and not node.image:
            problem(base + ("kind",), "a container node needs 'image:' (e.g. image: host)")
        if node.kind != "container" and node.image:
            problem(base + ("image",), "'image:' is only for kind: container")
        for ifname, iface in node.interfaces.items():
            path = base + ("interfaces", ifname)
            if ifname == "lo":
                problem(path, "'lo' is the loopback every node already has; name the interface eth0, eth1, ...")
            if iface.network is not None:
                net = topo.networks.get(iface.network)
                if net is None:
                    known = ", ".join(sorted(topo.networks)) or "none declared"
                    problem(path + ("network",), f"unknown network {iface.network!r} (networks: {known})")
                elif iface.address is not None:
                    _check_in_subnet(iface.address, net.subnet, path + ("address",), problem, iface.network)
            elif (name, ifname) not in linked:
                problem(path, "interface has neither a network nor a link; add 'network:' or list it under links")
            if iface.address is not None:
                ip = iface.address.ip
                if ip in seen_addresses:
                    problem(path + ("address",), f"address {ip} is already used by {seen_addresses[ip]}")
                seen_addresses[ip] = f"{name}:{ifname}"
        _check_routes(topo, name, problem)

    for i, link in enumerate(topo.links):
        ends = [topo.nodes.get(n, None) for n, _ in link.ends]
        if None in ends:
            continue
        addrs = [topo.nodes[n].interfaces.get(ifn) for n, ifn in link.ends]
        if all(a is not None and a.address is not None for a in addrs):
            a, b = (x.address for x in addrs if x is not None)
            assert a is not None and b is not None
            if a.network != b.network:
                problem(("links", i), f"the two ends are on different subnets ({a.network} and {b.network})")

    ports: dict[str, int] = {}
    for node in topo.nodes.values():
        for iface in node.interfaces.values():
            if iface.network:
                ports[iface.network] = ports.get(iface.network, 0) + 1
    for net_name, net in topo.networks.items():
        if net.subnet.prefixlen > 30 and ports.get(net_name, 0) > 2:
            problem(("networks", net_name, "subnet"), f"{net.subnet} has room for at most 2 hosts")

    if problems:
        raise TopologyError(problems)


def _check_in_subnet(addr: IPv4Interface, subnet: IPv4Network, path: tuple[object, ...], problem, net_name: str) -> None:  # type: ignore[no-untyped-def]
    if addr.ip not in subnet:
        problem(path, f"{addr} is outside network {net_name!r} ({subnet})")
    elif addr.network != subnet:
        problem(path, f"{addr} has prefix /{addr.network.prefixlen} but network {net_name!r} is {subnet}; write {addr.ip}/{subnet.prefixlen}")
    elif subnet.prefixlen < 31 and addr.ip in (subnet.network_address, subnet.broadcast_address):
        problem(path, f"{addr.ip} is the {'network' if addr.ip == subnet.network_address else 'broadcast'} address of {subnet}")


def _check_routes(topo: Topology, name: str, problem) -> None:  # type: ignore[no-untyped-def]
    node = topo.nodes[name]
    connected = connected_subnets(topo, name)
    for i, route in enumerate(node.routes):
        path = ("nodes", name, "routes", i)
        if route.dev is not None and route.dev not in node.interfaces:
            problem(path + ("dev",), f"node {name!r} has no interface {route.dev!r}")
        if route.via is None and route.dev is None:
            problem(path, "a route needs 'via:' (a gateway) or 'dev:' (an interface)")
        if route.via is not None and connected is not None and not any(route.via in s for s in connected):
            shown = ", ".join(str(s) for s in connected) or "none"
            problem(path + ("via",), f"gateway {route.via} is not on a subnet {name!r} is connected to ({shown})")


def connected_subnets(topo: Topology, name: str) -> list[IPv4Network] | None:
    """The subnets a node has an interface on; None when one is unknown (unaddressed link)."""
    nets: list[IPv4Network] = []
    for iface in topo.nodes[name].interfaces.values():
        if iface.network and iface.network in topo.networks:
            nets.append(topo.networks[iface.network].subnet)
        elif iface.address is not None:
            nets.append(iface.address.network)
    return nets
