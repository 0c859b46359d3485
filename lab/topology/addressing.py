"""Give an address to every network interface that has none: the next free host of its subnet, per family.

Free addresses are taken in the order nodes and interfaces appear in the file,
after every explicit address is reserved, so the same file gives the same
addresses on every run. An interface on a dual-stack network gets one of each
family (``address`` from ``subnet``, ``address6`` from ``subnet6``); on an IPv6-only
network, only ``address6``. On a network a router advertises (``ra: true``) a host gets no
static IPv6 address: it takes one by SLAAC from the advertisement.
"""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import TYPE_CHECKING

from lab.errors import TopologyError
from lab.topology.model import Interface, Topology

if TYPE_CHECKING:
    from lab.topology.sourcemap import SourceMap

FIELDS = {4: "address", 6: "address6"}


def _address_of(iface: Interface, family: int) -> IPv4Interface | IPv6Interface | None:
    return iface.address if family == 4 else iface.address6


def assign_addresses(topo: Topology, smap: SourceMap) -> None:
    for family in (4, 6):
        _assign(topo, smap, family)


def _assign(topo: Topology, smap: SourceMap, family: int) -> None:
    from lab.topology.validate import advertised_networks

    slaac = advertised_networks(topo) if family == 6 else set()
    used: dict[str, set[IPv4Address | IPv6Address]] = {name: set() for name in topo.networks}
    for node in topo.nodes.values():
        for iface in node.interfaces.values():
            given = _address_of(iface, family)
            if iface.network and given is not None and iface.network in used:
                used[iface.network].add(given.ip)
    cursors: dict[str, Iterator[IPv4Address] | Iterator[IPv6Address]] = {
        name: subnet.hosts() for name, net in topo.networks.items() if (subnet := net.subnet_of(family)) is not None}
    for node_name, node in topo.nodes.items():
        for ifname, iface in node.interfaces.items():
            if iface.network not in cursors or _address_of(iface, family) is not None:
                continue
            if iface.network in slaac and node.kind != "router":
                continue  # it takes its address from the router's advertisement
            assert iface.network is not None
            subnet = topo.networks[iface.network].subnet_of(family)
            assert subnet is not None
            for candidate in cursors[iface.network]:
                if candidate not in used[iface.network]:
                    used[iface.network].add(candidate)
                    if family == 4:
                        iface.address = IPv4Interface(f"{candidate}/{subnet.prefixlen}")
                    else:
                        iface.address6 = IPv6Interface(f"{candidate}/{subnet.prefixlen}")
                    break
            else:
                path = ("nodes", node_name, "interfaces", ifname)
                where = f"{smap.where(path)}: nodes.{node_name}.interfaces.{ifname}"
                raise TopologyError([f"{where}: no free {FIELDS[family]} left in {iface.network} ({subnet}); "
                                     "use a larger subnet"])
