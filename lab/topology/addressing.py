"""Give an address to every network interface that has none: the next free host of its subnet.

Free addresses are taken in the order nodes and interfaces appear in the file,
after every explicit address is reserved, so the same file gives the same
addresses on every run.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface
from typing import TYPE_CHECKING

from lab.errors import TopologyError
from lab.topology.model import Topology

if TYPE_CHECKING:
    from lab.topology.loader import SourceMap


def assign_addresses(topo: Topology, smap: SourceMap) -> None:
    used: dict[str, set[IPv4Address]] = {name: set() for name in topo.networks}
    for node in topo.nodes.values():
        for iface in node.interfaces.values():
            if iface.network and iface.address is not None:
                used[iface.network].add(iface.address.ip)
    cursors = {name: net.subnet.hosts() for name, net in topo.networks.items()}
    for node_name, node in topo.nodes.items():
        for ifname, iface in node.interfaces.items():
            if iface.network is None or iface.address is not None:
                continue
            subnet = topo.networks[iface.network].subnet
            for candidate in cursors[iface.network]:
                if candidate not in used[iface.network]:
                    used[iface.network].add(candidate)
                    iface.address = IPv4Interface(f"{candidate}/{subnet.prefixlen}")
                    break
            else:
                path = ("nodes", node_name, "interfaces", ifname)
                where = f"{smap.where(path)}: nodes.{node_name}.interfaces.{ifname}"
                raise TopologyError([f"{where}: no free address left in {iface.network} ({subnet}); "
                                     "use a larger subnet"])
