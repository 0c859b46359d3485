"""Checks that need the whole topology: references, addresses, gateways, link ends, routes.

Each problem is one line ``file:line: field: what is wrong (hint)``; all
problems are collected and reported together so one run fixes them all. A
problem is reported once, where it starts: a link to a missing interface is
not reported again as "the interface it meant has no link".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network
from typing import TYPE_CHECKING

from lab import names
from lab.errors import TopologyError
from lab.topology.model import Topology

if TYPE_CHECKING:
    from lab.topology.sourcemap import SourceMap

MAX_BRIDGE_PORTS = 1023
Problem = Callable[[tuple[object, ...], str], None]


def check_topology(topo: Topology, smap: SourceMap) -> None:
    problems: list[str] = []

    def problem(path: tuple[object, ...], text: str) -> None:
        dotted = ".".join(str(p) for p in path)
        problems.append(f"{smap.where(path)}: {dotted}: {text}")

    linked, broken_links, unsure_nodes = _check_links(topo, problem)
    _check_nodes(topo, linked, unsure_nodes, problem)
    _check_link_subnets(topo, broken_links, problem)
    _check_network_sizes(topo, problem)
    _check_switch_names(topo, problem)
    _check_impairments(topo, problem)
    _check_adverts(topo, problem)
    if problems:
        raise TopologyError(problems)


def _check_impairments(topo: Topology, problem: Problem) -> None:
    """An interface is impaired once: by its own ``impair:`` or by its link's, not both."""
    own = {(n, i) for n, node in topo.nodes.items() for i, iface in node.interfaces.items() if iface.impair}
    for index, link in enumerate(topo.links):
        if link.impair:
            for end in link.ends:
                if end in own:
                    problem(("links", index, "impair"), f"{end[0]}:{end[1]} has an impair: of its own; "
                                                        "give one of the two")


def _check_adverts(topo: Topology, problem: Problem) -> None:
    """``ra: true`` is a router's, on an interface with an IPv6 prefix to advertise, one router per network."""
    advertised: dict[str, str] = {}
    for name, node in topo.nodes.items():
        for ifname, iface in node.interfaces.items():
            if not iface.ra:
                continue
            path = ("nodes", name, "interfaces", ifname, "ra")
            if node.kind != "router":
                problem(path, "only a router advertises prefixes (kind: router)")
                continue
            net = topo.networks.get(iface.network) if iface.network else None
            if iface.network is None:
                problem(path, "advertisements are for a network's hosts: give the interface a network")
            elif net is not None and net.subnet6 is None and iface.address6 is None:
                problem(path, f"network {iface.network!r} has no subnet6: to advertise; add one")
            elif iface.network in advertised:
                problem(path, f"network {iface.network!r} is advertised already by {advertised[iface.network]}; "
                              "one router advertises a network")
            advertised.setdefault(str(iface.network), f"{name}:{ifname}")


def advertised_networks(topo: Topology) -> set[str]:
    """The networks a router advertises (``ra: true``): their hosts take SLAAC addresses, not static ones."""
    return {str(i.network) for n in topo.nodes.values() if n.kind == "router" for i in n.interfaces.values()
            if i.ra and i.network}


def _check_links(topo: Topology, problem: Problem) -> tuple[dict[tuple[str, str], int], set[int], set[str]]:
    """Each link joins two declared, network-less interfaces, each used once.

    Returns the linked interfaces, the links with a problem, and the nodes a
    broken link pointed at (their unlinked interfaces are probably what it meant).
    """
    linked: dict[tuple[str, str], int] = {}
    broken: set[int] = set()
    unsure: set[str] = set()
    for i, link in enumerate(topo.links):
        path = ("links", i)
        if link.ends[0] == link.ends[1]:
            problem(path, "a link cannot join an interface to itself")
            broken.add(i)
            unsure.add(link.ends[0][0])
            continue
        for node_name, ifname in link.ends:
            if node_name not in topo.nodes:
                problem(path, f"unknown node {node_name!r} (nodes: {_names(topo.nodes)})")
                broken.add(i)
                continue
            iface = topo.nodes[node_name].interfaces.get(ifname)
            if iface is None:
                problem(path, f"node {node_name!r} has no interface {ifname!r}; "
                              f"declare it under nodes.{node_name}.interfaces")
                broken.add(i)
                unsure.add(node_name)
                continue
            if iface.network is not None:
                problem(path, f"{node_name}:{ifname} is on network {iface.network!r}; "
                              "a link joins interfaces without a network")
                broken.add(i)
            if (node_name, ifname) in linked:
                problem(path, f"{node_name}:{ifname} is already used by links[{linked[(node_name, ifname)]}]")
                broken.add(i)
                continue
            linked[(node_name, ifname)] = i
    return linked, broken, unsure


def _check_nodes(topo: Topology, linked: dict[tuple[str, str], int], unsure: set[str],
                 problem: Problem) -> None:
    seen_addresses: dict[IPv4Address | IPv6Address, str] = {}
    for name, node in topo.nodes.items():
        base = ("nodes", name)
        if node.kind == "container" and not node.image:
            problem(base + ("kind",), "a container node needs 'image:' (e.g. image: host)")
        if node.kind != "container" and node.image:
            problem(base + ("image",), "'image:' is only for kind: container")
        for ifname, iface in node.interfaces.items():
            path = base + ("interfaces", ifname)
            if ifname == "lo":
                problem(path, "'lo' is the loopback every node already has; name it eth0, eth1, ...")
            if iface.network is not None:
                net = topo.networks.get(iface.network)
                if net is None:
                    known = _names(topo.networks) or "none declared"
                    problem(path + ("network",), f"unknown network {iface.network!r} (networks: {known})")
                else:
                    for key, addr, subnet in (("address", iface.address, net.subnet),
                                              ("address6", iface.address6, net.subnet6)):
                        if addr is None:
                            continue
                        if subnet is None:
                            other = "subnet6" if key == "address6" else "subnet"
                            problem(path + (key,), f"network {iface.network!r} has no {other}: for {addr}; "
                                                   f"add one to networks.{iface.network}, or remove {key}:")
                        else:
                            _check_in_subnet(addr, subnet, path + (key,), problem, iface.network)
            elif (name, ifname) not in linked:
                if name not in unsure:
                    problem(path, "interface has neither a network nor a link; "
                                  "add 'network:' or list it under links")
            else:
                for key, addr in (("address", iface.address), ("address6", iface.address6)):
                    if addr is not None:
                        _check_host_address(addr, path + (key,), problem)
            for key, addr in (("address", iface.address), ("address6", iface.address6)):
                if addr is not None:
                    ip = addr.ip
                    if ip in seen_addresses:
                        problem(path + (key,), f"address {ip} is already used by {seen_addresses[ip]}")
                    seen_addresses.setdefault(ip, f"{name}:{ifname}")
        _check_routes(topo, name, problem)


def _check_link_subnets(topo: Topology, broken: set[int], problem: Problem) -> None:
    """Both ends of a point-to-point link sit in one subnet (checked for links without other problems)."""
    for i, link in enumerate(topo.links):
        if i in broken:
            continue
        ifaces = [topo.nodes[n].interfaces[ifname] for n, ifname in link.ends]
        pairs = ((ifaces[0].address, ifaces[1].address), (ifaces[0].address6, ifaces[1].address6))
        for a, b in pairs:
            if a is not None and b is not None and a.network != b.network:
                problem(("links", i), f"the two ends are on different subnets ({a.network} and {b.network})")


def _check_network_sizes(topo: Topology, problem: Problem) -> None:
    ports: dict[str, int] = {}
    for node in topo.nodes.values():
        for iface in node.interfaces.values():
            if iface.network:
                ports[iface.network] = ports.get(iface.network, 0) + 1
    for net_name, net in topo.networks.items():
        if net.subnet is not None and net.subnet.prefixlen > 30 and ports.get(net_name, 0) > 2:
            problem(("networks", net_name, "subnet"), f"{net.subnet} has room for at most 2 hosts")
        if net.subnet6 is not None and net.subnet6.prefixlen > 126 and ports.get(net_name, 0) > 2:
            problem(("networks", net_name, "subnet6"), f"{net.subnet6} has room for at most 2 hosts")


def _check_switch_names(topo: Topology, problem: Problem) -> None:
    """Bridges and switch-side ports share one namespace, so their kernel names must all differ.

    ``web-a``+``eth0`` and ``web``+``a-eth0`` would both make port ``web-a-eth0``;
    node ``br`` with interface ``lan`` would make ``br-lan``, the bridge of network lan.
    """
    ports: dict[str, int] = {}
    for node in topo.nodes.values():
        for iface in node.interfaces.values():
            if iface.network:
                ports[iface.network] = ports.get(iface.network, 0) + 1
    taken: dict[str, str] = {}
    for net_name in topo.networks:
        for shard in range(max(1, -(-ports.get(net_name, 0) // 1000))):
            bridge = names.bridge_name(net_name, shard)
            if bridge in taken:
                problem(("networks", net_name), f"its bridge would be named {bridge!r}, like {taken[bridge]}; "
                                                "rename the network")
            taken.setdefault(bridge, f"the bridge of network {net_name!r}")
    for node_name, node in topo.nodes.items():
        for ifname, iface in node.interfaces.items():
            if not iface.network:
                continue
            port = names.port_name(node_name, ifname)
            if port in taken:
                problem(("nodes", node_name, "interfaces", ifname),
                        f"its switch port would be named {port!r}, like {taken[port]}; rename the node or interface")
            taken.setdefault(port, f"the switch port of {node_name}:{ifname}")


def _check_in_subnet(addr: IPv4Interface | IPv6Interface, subnet: IPv4Network | IPv6Network,
                     path: tuple[object, ...], problem: Problem, net_name: str) -> None:
    if addr.ip not in subnet:
        problem(path, f"{addr} is outside network {net_name!r} ({subnet})")
    elif addr.network != subnet:
        problem(path, f"{addr} has prefix /{addr.network.prefixlen} but network {net_name!r} is {subnet}; "
                      f"write {addr.ip}/{subnet.prefixlen}")
    else:
        _check_host_address(addr, path, problem)


def _check_host_address(addr: IPv4Interface | IPv6Interface, path: tuple[object, ...], problem: Problem) -> None:
    """Not the network or broadcast address of its subnet (IPv4, from /30 down), nor IPv6's subnet-router
    anycast address (the all-zero host, from /126 down); a link-local or multicast address is the kernel's."""
    subnet = addr.network
    if isinstance(addr, IPv6Interface):
        if addr.ip.is_link_local or addr.ip.is_multicast or addr.ip.is_loopback:
            problem(path, f"{addr.ip} is not a unicast global or unique-local address; give one "
                          "(link-local addresses are made by the kernel)")
        elif subnet.prefixlen < 127 and addr.ip == subnet.network_address:
            problem(path, f"{addr.ip} is the subnet-router anycast address of {subnet}; give a host address")
        return
    if subnet.prefixlen < 31 and addr.ip in (subnet.network_address, subnet.broadcast_address):
        which = "network" if addr.ip == subnet.network_address else "broadcast"
        problem(path, f"{addr.ip} is the {which} address of {subnet}; give a host address")


def _check_routes(topo: Topology, name: str, problem: Problem) -> None:
    node = topo.nodes[name]
    connected = connected_subnets(topo, name)
    own = {a.ip for iface in node.interfaces.values() for a in iface.addresses()}
    destinations: dict[str, int] = {}
    for i, route in enumerate(node.routes):
        path = ("nodes", name, "routes", i)
        dest = route.destination
        if dest in destinations:
            family = " (IPv6)" if route.family == 6 else ""
            problem(path + ("to",), f"a route to {route.to}{family} is already given by "
                                    f"routes[{destinations[dest]}]; the kernel takes one route per destination")
        destinations.setdefault(dest, i)
        if not isinstance(route.to, str) and route.to in connected:
            problem(path + ("to",), f"{name!r} is directly connected to {route.to}; the kernel already has "
                                    "that route, remove this one")
        if route.dev is not None and route.dev not in node.interfaces:
            problem(path + ("dev",), f"node {name!r} has no interface {route.dev!r}")
        if route.via is None and route.dev is None:
            problem(path, "a route needs 'via:' (a gateway) or 'dev:' (an interface)")
        if route.via is not None and route.via in own:
            problem(path + ("via",), f"gateway {route.via} is the node's own address; "
                                     "give the address of the next router")
        elif route.via is not None and not (route.via.version == 6 and route.via.is_link_local and route.dev) \
                and not any(s.version == route.via.version and route.via in s for s in connected):
            shown = ", ".join(str(s) for s in connected if s.version == route.via.version) or "none"
            problem(path + ("via",), f"gateway {route.via} is not on an IPv{route.via.version} subnet {name!r} "
                                     f"is connected to ({shown})")


def connected_subnets(topo: Topology, name: str) -> list[IPv4Network | IPv6Network]:
    """The subnets (of both families) a node has an addressed interface or a network on."""
    nets: list[IPv4Network | IPv6Network] = []
    for iface in topo.nodes[name].interfaces.values():
        if iface.network and iface.network in topo.networks:
            net = topo.networks[iface.network]
            nets += [s for s in (net.subnet, net.subnet6) if s is not None]
        else:
            nets += [a.network for a in iface.addresses()]
    return nets


def _names(items: Mapping[str, object]) -> str:
    shown = sorted(items)
    return ", ".join(shown[:20]) + (f", ... ({len(shown)} in all)" if len(shown) > 20 else "")
