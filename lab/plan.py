"""Turn a validated Topology into a Plan: concrete names, indexes, addresses, in the order to apply.

A Plan has no side effects and is fully printable (``lab up --dry-run``). Every
kernel object gets its name *and* its interface index here, so the apply step
never has to look an interface up: it knows eth0 of a node is index 2.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from ipaddress import IPv4Interface, IPv6Interface

from lab import names
from lab.topology.model import Node, Topology
from lab.topology.validate import advertised_networks

FIRST_INDEX = 2  # 1 is lo in every namespace
# A LAN's ports are spread over bridges ("shards") joined by trunks: a Linux bridge takes at most 1,023
# ports, and adding a port costs O(ports) in the kernel (state selection, promiscuity, multicast), so
# smaller shards keep a 10,000-host LAN linear (links phase at 10,000 hosts: 14.4 s with 1,000, 9.4 s with 250).
BRIDGE_PORTS_PER_SHARD = 250
MAX_PORTS_PER_SHARD = 1000  # the most one shard may take (kernel limit 1,023, less room for trunks)

ROUTER_SYSCTLS = {"net.ipv4.ip_forward": "1"}
HOST_SYSCTLS = {"net.ipv4.ip_forward": "0"}
# A new namespace copies conf/all and conf/default from the machine's own namespace
# (rule 0.1 of the catalogue), so every lab namespace sets these explicitly to the
# kernel's own defaults rather than inheriting whatever the host was tuned to.
BASE_SYSCTLS = {
    "net.ipv4.conf.all.accept_redirects": "1",
    "net.ipv4.conf.default.accept_redirects": "1",
    "net.ipv4.conf.all.send_redirects": "1",
    "net.ipv4.conf.default.send_redirects": "1",
    "net.ipv4.conf.all.rp_filter": "0",
    "net.ipv4.conf.default.rp_filter": "0",
    # The kernel's default: ping uses a raw socket, as root does in a plain namespace. Docker opens
    # ICMP datagram sockets to every group in a container (0 2147483647), and ping on one of those
    # counts an ICMP error such as a redirect as a reply ("+1 errors"), so it stops a packet early.
    "net.ipv4.ping_group_range": "1\t0",
}
# resolv.conf of a node whose topology names no nameserver: it resolves names from /etc/hosts only
NO_RESOLVER = "# lab: no DNS server configured for this node\n"
NO_IPV6 = {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}
# A lab with IPv6: on (whatever the machine's own namespace says), no duplicate address detection (the
# lab's addresses are unique by validation, and DAD would hold each one tentative for a second or more),
# static addresses kept while a cable is pulled (IPv6 drops them on link down; IPv4 keeps them).
IPV6 = {
    "net.ipv6.conf.all.disable_ipv6": "0", "net.ipv6.conf.default.disable_ipv6": "0",
    "net.ipv6.conf.all.accept_dad": "0", "net.ipv6.conf.default.accept_dad": "0",
    "net.ipv6.conf.all.keep_addr_on_down": "1", "net.ipv6.conf.default.keep_addr_on_down": "1",
}
ROUTER_SYSCTLS6 = {"net.ipv6.conf.all.forwarding": "1"}
# a host takes router advertisements (SLAAC, a default route), whatever the machine's own namespace says
HOST_SYSCTLS6 = {"net.ipv6.conf.all.forwarding": "0", "net.ipv6.conf.all.accept_ra": "1",
                 "net.ipv6.conf.default.accept_ra": "1"}


@dataclass
class NamespaceSpec:
    name: str
    node: str | None  # None for the lab's switch namespace
    kind: str  # host | router | container | switch
    sysctls: dict[str, str] = field(default_factory=dict)
    late_sysctls: dict[str, str] = field(default_factory=dict)  # per-interface keys, set after the links


@dataclass
class BridgeSpec:
    netns: str
    name: str
    index: int
    network: str
    mtu: int | None = None
    trunk_to: int | None = None  # shard > 0: index of the root bridge it hangs from


@dataclass
class VethSpec:
    """One veth pair. The first end is in ``netns``; the peer is in ``peer_netns``."""

    netns: str
    ifname: str
    index: int
    peer_netns: str
    peer_ifname: str
    peer_index: int
    address: str | None = None
    peer_address: str | None = None
    address6: str | None = None
    peer_address6: str | None = None
    peer_master: int | None = None  # bridge index in peer_netns
    master: int | None = None  # bridge index in netns (only for trunks between bridge shards)
    mtu: int | None = None
    mac: str | None = None
    peer_mac: str | None = None
    node: str | None = None
    peer_node: str | None = None


@dataclass
class RouteSpec:
    netns: str
    dst: str  # 'default' or a CIDR
    via: str | None
    oif: int | None
    family: int = 4  # 4 or 6 (which default 'default' is)


@dataclass
class NodeSpec:
    name: str
    kind: str
    netns: str
    image: str | None
    env: dict[str, str]
    interfaces: dict[str, dict[str, str | int | None]]  # ifname -> {index, address, address6, network, peer}
    # the node's static routes as the topology says them: {"to", "via", "dev"} ("dev" the interface the
    # route leaves by: named, or the one whose subnet holds "via"); put back when a pulled cable heals
    routes: list[dict[str, str | None]] = field(default_factory=list)


@dataclass
class Plan:
    lab: str
    namespaces: list[NamespaceSpec]
    bridges: list[BridgeSpec]
    veths: list[VethSpec]
    routes: list[RouteSpec]
    hosts_files: dict[str, str]
    nodes: dict[str, NodeSpec]
    resolv_files: dict[str, str] = field(default_factory=dict)  # netns -> resolv.conf (nodes with `resolv:`)
    adverts: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # router netns -> ifname -> prefixes
    slaac: dict[str, list[str]] = field(default_factory=dict)  # host netns -> interfaces taking SLAAC addresses

    def describe(self) -> list[str]:
        """The plan as the lines ``lab up --dry-run`` prints, in the order they will be applied."""
        out = [f"lab {self.lab}"]
        for ns in self.namespaces:
            what = "start container, bind its namespace as" if ns.kind == "container" else "create namespace"
            out.append(f"  {what} {ns.name} ({ns.kind})")
            values = {**ns.sysctls, **ns.late_sysctls}
            out.append("    sysctls " + " ".join(f"{k}={v}" for k, v in values.items()))
        for br in self.bridges:
            trunk = f", trunk to index {br.trunk_to}" if br.trunk_to else ""
            out.append(f"  bridge {br.name} (index {br.index}) in {br.netns} for network {br.network}{trunk}")
        for v in self.veths:
            left = f"{v.netns}:{v.ifname}#{v.index}" + "".join(f" {a}" for a in (v.address, v.address6) if a)
            right = f"{v.peer_netns}:{v.peer_ifname}#{v.peer_index}" + "".join(
                f" {a}" for a in (v.peer_address, v.peer_address6) if a)
            master = f" on bridge #{v.peer_master}" if v.peer_master else ""
            out.append(f"  veth {left} <-> {right}{master}")
        for r in self.routes:
            via = f" via {r.via}" if r.via else ""
            dst = f"{r.dst} (IPv6)" if r.dst == "default" and r.family == 6 else r.dst
            out.append(f"  route in {r.netns}: {dst}{via}" + (f" dev #{r.oif}" if r.oif else ""))
        for ns_name in self.hosts_files:
            out.append(f"  write /etc/netns/{ns_name}/hosts")
        for ns_name in self.resolv_files:
            out.append(f"  write /etc/netns/{ns_name}/resolv.conf")
        for ns_name, interfaces in self.adverts.items():
            for ifname, prefixes in interfaces.items():
                out.append(f"  radvd in {ns_name}: {ifname} advertises {', '.join(prefixes)}")
        for ns_name, ifnames in self.slaac.items():
            out.append(f"  wait for {ns_name}'s SLAAC address on {', '.join(ifnames)}")
        return out

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def make_plan(topo: Topology, ports_per_shard: int = BRIDGE_PORTS_PER_SHARD) -> Plan:
    """Derive every name, index and address; the Topology has already been validated."""
    lab = topo.name
    sw = names.switch_netns(lab)
    namespaces: list[NamespaceSpec] = []
    nodes: dict[str, NodeSpec] = {}

    ipv6 = topo.uses_ipv6
    common = {**BASE_SYSCTLS, **(IPV6 if ipv6 else NO_IPV6)}
    if topo.networks:
        # the switch only bridges: IPv6 stays off there even in an IPv6 lab (no link-local chatter of its own)
        namespaces.append(NamespaceSpec(sw, None, "switch", {**BASE_SYSCTLS, **NO_IPV6, **HOST_SYSCTLS}))

    shards, veths, next_sw_index = _shard_bridges(topo, sw, ports_per_shard)
    bridges = [br for group in shards.values() for br in group]

    port_counts: dict[str, int] = {n: 0 for n in topo.networks}
    for node_name, node in topo.nodes.items():
        ns = names.netns_name(lab, node_name)
        kind_sysctls = ROUTER_SYSCTLS if node.kind == "router" else HOST_SYSCTLS
        if ipv6:
            kind_sysctls = {**kind_sysctls, **(ROUTER_SYSCTLS6 if node.kind == "router" else HOST_SYSCTLS6)}
        early, late = _early_and_late({**common, **kind_sysctls, **_str(topo.sysctls), **_str(node.sysctls)},
                                      list(node.interfaces))
        namespaces.append(NamespaceSpec(ns, node_name, node.kind, early, late))
        interfaces: dict[str, dict[str, str | int | None]] = {}
        for offset, (ifname, iface) in enumerate(node.interfaces.items()):
            index = FIRST_INDEX + offset
            interfaces[ifname] = {
                "index": index,
                "address": str(iface.address) if iface.address else None,
                "address6": str(iface.address6) if iface.address6 else None,
                "network": iface.network,
                "peer": None,
            }
            if iface.network:
                bridge = shards[iface.network][port_counts[iface.network] // ports_per_shard]
                port_counts[iface.network] += 1
                veths.append(VethSpec(
                    ns, ifname, index, sw, names.port_name(node_name, ifname), next_sw_index,
                    address=_ifaddr(iface.address), address6=_ifaddr(iface.address6), peer_master=bridge.index,
                    mtu=iface.mtu or topo.networks[iface.network].mtu, mac=iface.mac, node=node_name,
                ))
                next_sw_index += 1
        nodes[node_name] = NodeSpec(node_name, node.kind, ns, node.image, dict(node.env), interfaces)

    veths += _link_veths(topo, nodes)
    routes = _routes(topo, nodes)

    hosts = hosts_table(topo)
    hosts_files = {}
    for node_name, node in topo.nodes.items():
        extra = "".join(f"{ip}\t{host}\n" for host, ip in node.hosts.items())
        hosts_files[names.netns_name(lab, node_name)] = hosts + extra
    resolv_files = {names.netns_name(lab, n): resolv_conf(nd) for n, nd in topo.nodes.items() if nd.resolv}
    adverts, slaac = _adverts(topo)
    return Plan(lab, namespaces, bridges, veths, routes, hosts_files, nodes, resolv_files, adverts, slaac)


def _shard_bridges(topo: Topology, sw: str, ports_per_shard: int
                   ) -> tuple[dict[str, list[BridgeSpec]], list[VethSpec], int]:
    """A bridge per network in the switch namespace, sharded when it has more ports than one bridge takes
    (shard N joined to shard 0 by a trunk veth); the shards per network, the trunks, the next free index."""
    ports_per_network: dict[str, int] = {n: 0 for n in topo.networks}
    for node in topo.nodes.values():
        for iface in node.interfaces.values():
            if iface.network:
                ports_per_network[iface.network] += 1
    next_sw_index = FIRST_INDEX
    shards: dict[str, list[BridgeSpec]] = {}
    for net_name, net in topo.networks.items():
        shards[net_name] = []
        for shard in range(max(1, -(-ports_per_network[net_name] // ports_per_shard))):
            br = BridgeSpec(sw, names.bridge_name(net_name, shard), next_sw_index, net_name, net.mtu)
            if shard:
                br.trunk_to = shards[net_name][0].index
            shards[net_name].append(br)
            next_sw_index += 1
    trunks: list[VethSpec] = []
    for group in shards.values():
        for br in group[1:]:
            trunks.append(VethSpec(sw, f"trunk{br.index}a", next_sw_index, sw, f"trunk{br.index}b",
                                   next_sw_index + 1, peer_master=group[0].index, master=br.index))
            next_sw_index += 2
    return shards, trunks, next_sw_index


def _early_and_late(wanted: dict[str, str], ifnames: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Sysctls written when the namespace is made, and those that need its interfaces first (per-interface
    ``conf.<if>`` keys and the eth neighbour tables)."""
    early, late = {}, {}
    for key, value in wanted.items():
        if any(f".conf.{ifname}." in key for ifname in ifnames) or key.startswith("net.ipv4.neigh.eth"):
            late[key] = value
        else:
            early[key] = value
    return early, late


def _link_veths(topo: Topology, nodes: dict[str, NodeSpec]) -> list[VethSpec]:
    """A veth per point-to-point link; each end's ``peer`` noted in its node's interfaces."""
    veths = []
    for link in topo.links:
        (na, ia), (nb, ib) = link.ends
        fa, fb = topo.nodes[na].interfaces[ia], topo.nodes[nb].interfaces[ib]
        veths.append(VethSpec(
            names.netns_name(topo.name, na), ia, int(nodes[na].interfaces[ia]["index"] or 0),
            names.netns_name(topo.name, nb), ib, int(nodes[nb].interfaces[ib]["index"] or 0),
            address=_ifaddr(fa.address), peer_address=_ifaddr(fb.address),
            address6=_ifaddr(fa.address6), peer_address6=_ifaddr(fb.address6),
            mtu=fa.mtu or fb.mtu, mac=fa.mac, peer_mac=fb.mac, node=na, peer_node=nb,
        ))
        nodes[na].interfaces[ia]["peer"] = f"{nb}:{ib}"
        nodes[nb].interfaces[ib]["peer"] = f"{na}:{ia}"
    return veths


def _routes(topo: Topology, nodes: dict[str, NodeSpec]) -> list[RouteSpec]:
    """Each node's static routes (by interface index where a dev is named), also kept in its NodeSpec."""
    routes = []
    for node_name, node in topo.nodes.items():
        ns = names.netns_name(topo.name, node_name)
        for route in node.routes:
            oif = nodes[node_name].interfaces[route.dev]["index"] if route.dev else None
            routes.append(RouteSpec(ns, str(route.to), str(route.via) if route.via else None,
                                    int(oif) if oif is not None else None, route.family))
            nodes[node_name].routes.append({"to": str(route.to), "via": str(route.via) if route.via else None,
                                            "dev": route.dev or _leaving_by(node, route.via),
                                            "family": str(route.family)})
    return routes


def _adverts(topo: Topology) -> tuple[dict[str, dict[str, list[str]]], dict[str, list[str]]]:
    """Which router interfaces advertise which prefixes, and which host interfaces take SLAAC addresses."""
    adverts: dict[str, dict[str, list[str]]] = {}
    for name, node in topo.nodes.items():
        for ifname, iface in node.interfaces.items():
            if node.kind == "router" and iface.ra and iface.network:
                net = topo.networks[iface.network]
                prefix = net.subnet6 or (iface.address6.network if iface.address6 else None)
                if prefix is not None:  # always, once validated: an advertised network has a subnet6
                    adverts.setdefault(names.netns_name(topo.name, name), {})[ifname] = [str(prefix)]
    advertised = advertised_networks(topo)
    slaac: dict[str, list[str]] = {}
    for name, node in topo.nodes.items():
        for ifname, iface in node.interfaces.items():
            if node.kind != "router" and iface.network in advertised and iface.address6 is None:
                slaac.setdefault(names.netns_name(topo.name, name), []).append(ifname)
    return adverts, slaac


def networks_record(topo: Topology) -> dict[str, dict[str, str | None]]:
    """What lab.json keeps of each network: its subnets (None for a family it lacks)."""
    return {n: {"subnet": str(net.subnet) if net.subnet else None, "subnet6": str(net.subnet6) if net.subnet6 else None}
            for n, net in topo.networks.items()}


def _leaving_by(node: Node, via: object) -> str | None:
    """The interface whose subnet holds the gateway ``via`` (validation made sure one does)."""
    if via is None:
        return None
    for ifname, iface in node.interfaces.items():
        if any(via in a.network for a in iface.addresses()):
            return ifname
    return None


def hosts_table(topo: Topology) -> str:
    """/etc/hosts for every node: localhost, then each node's first address of each family and its name."""
    lines = ["127.0.0.1\tlocalhost"] + (["::1\tlocalhost ip6-localhost ip6-loopback"] if topo.uses_ipv6 else [])
    for node_name, node in topo.nodes.items():
        for family in ("address", "address6"):
            first = next((a for i in node.interfaces.values() if (a := getattr(i, family)) is not None), None)
            if first is not None:
                lines.append(f"{first.ip}\t{node_name}")
    return "\n".join(lines) + "\n"


def resolv_conf(node: Node) -> str:
    """/etc/resolv.conf for a node with a ``resolv:`` section: its nameservers and search domains."""
    assert node.resolv is not None
    lines = ["# lab: written from the topology's resolv: section"]
    lines += [f"nameserver {ip}" for ip in node.resolv.nameservers]
    if node.resolv.search:
        lines.append("search " + " ".join(node.resolv.search))
    return "\n".join(lines) + "\n"


def _ifaddr(address: IPv4Interface | IPv6Interface | None) -> str | None:
    return str(address) if address else None


def _str(values: dict[str, str | int]) -> dict[str, str]:
    return {k: str(v) for k, v in values.items()}
