"""Generate scale topologies as YAML text: N hosts on one LAN, a chain of N routers, or routers with LANs.

The text goes through the project's own loader, so a benchmark measures what a
user's file would cost. Addresses are written out rather than auto-assigned so
the ``ip -batch`` baseline (built from the same Plan) uses exactly the same ones.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, summarize_address_range

LAN_SUBNET = IPv4Network("10.128.0.0/16")
CHAIN_BASE = IPv4Address("10.64.0.0")  # link i of a chain is the /30 at CHAIN_BASE + 4*i


def lan(name: str, n: int, kind: str = "host", image: str | None = None) -> str:
    """``n`` nodes h1..hn on one LAN (a bridge, sharded past 1000 ports), each with one address."""
    if n > LAN_SUBNET.num_addresses - 2:
        raise ValueError(f"a LAN of {n} hosts does not fit {LAN_SUBNET}")
    lines = [f"name: {name}", "networks:", f"  lan: {{subnet: {LAN_SUBNET}}}", "nodes:"]
    hosts = LAN_SUBNET.hosts()
    for i in range(1, n + 1):
        addr = next(hosts)
        lines.append(f"  h{i}:")
        if kind != "host":
            lines.append(f"    kind: {kind}")
        if image:
            lines.append(f"    image: {image}")
        lines.append(f"    interfaces: {{eth0: {{network: lan, address: {addr}/{LAN_SUBNET.prefixlen}}}}}")
    return "\n".join(lines) + "\n"


def chain_link(i: int) -> IPv4Network:
    """The /30 of the link between router i and router i+1 (0-based)."""
    return IPv4Network(f"{CHAIN_BASE + 4 * i}/30")


def chain(name: str, n: int) -> str:
    """``n`` routers r1..rn in a line, each link a /30; every router can reach every link.

    Router i routes "everything to my right" with a default route via its right
    neighbour, and "everything to my left" with the few CIDR blocks that cover
    the links left of its own, via its left neighbour: O(log n) routes per router.
    """
    if n < 2:
        raise ValueError("a chain needs at least two routers")
    lines = [f"name: {name}", "nodes:"]
    for i in range(n):  # router i is r{i+1}; link i-1 is on its left (eth0), link i on its right (eth1)
        lines.append(f"  r{i + 1}:")
        lines.append("    kind: router")
        ifaces = []
        if i > 0:
            ifaces.append(f"eth0: {{address: {chain_link(i - 1)[2]}/30}}")
        if i < n - 1:
            ifaces.append(f"eth1: {{address: {chain_link(i)[1]}/30}}")
        lines.append(f"    interfaces: {{{', '.join(ifaces)}}}")
        routes = []
        if i < n - 1:
            routes.append(f"{{to: default, via: {chain_link(i)[2]}}}")
        if i > 1:
            first, last = chain_link(0)[0], chain_link(i - 2)[-1]
            for block in summarize_address_range(first, last):
                routes.append(f"{{to: {block}, via: {chain_link(i - 1)[1]}}}")
        if routes:
            lines.append(f"    routes: [{', '.join(routes)}]")
    lines.append("links:")
    for i in range(1, n):
        lines.append(f"  - [r{i}:eth1, r{i + 1}:eth0]")
    return "\n".join(lines) + "\n"


ROUTED_LANS = IPv4Network("10.96.0.0/11")  # LAN i of a routed lab is the /22 at its start + 1024*i


def routed_lan(i: int) -> IPv4Network:
    return IPv4Network(f"{ROUTED_LANS.network_address + 1024 * i}/22")


def routed(name: str, n: int, hosts_per_lan: int = 499) -> str:
    """About ``n`` nodes: a chain of routers (the ``chain`` shape), each with a LAN of ``hosts_per_lan`` hosts.

    The routed-lans.yaml shape at scale. Router i reaches the LANs and links to its right by a
    default route, and those to its left by the few CIDR blocks that cover them: O(log n) routes
    per router, one (default) per host. Host j of LAN i is ``l{i}h{j}``.
    """
    routers = max(2, round(n / (hosts_per_lan + 1)))
    if hosts_per_lan > routed_lan(0).num_addresses - 3 or routers > ROUTED_LANS.num_addresses // 1024:
        raise ValueError(f"{routers} LANs of {hosts_per_lan} hosts do not fit {ROUTED_LANS}")
    lines = [f"name: {name}", "networks:"]
    lines += [f"  lan{i}: {{subnet: {routed_lan(i)}}}" for i in range(routers)]
    lines.append("nodes:")
    for i in range(routers):
        gateway = routed_lan(i)[1]
        ifaces = [f"eth2: {{network: lan{i}, address: {gateway}/22}}"]
        if i > 0:
            ifaces.append(f"eth0: {{address: {chain_link(i - 1)[2]}/30}}")
        if i < routers - 1:
            ifaces.append(f"eth1: {{address: {chain_link(i)[1]}/30}}")
        routes = [f"{{to: default, via: {chain_link(i)[2]}}}"] if i < routers - 1 else []
        if i > 0:
            left = [routed_lan(0)[0], routed_lan(i - 1)[-1]]
            blocks = list(summarize_address_range(*left))
            if i > 1:
                blocks += summarize_address_range(chain_link(0)[0], chain_link(i - 2)[-1])
            routes += [f"{{to: {block}, via: {chain_link(i - 1)[1]}}}" for block in blocks]
        lines += [f"  r{i}:", "    kind: router", f"    interfaces: {{{', '.join(ifaces)}}}"]
        if routes:
            lines.append(f"    routes: [{', '.join(routes)}]")
        for j in range(1, hosts_per_lan + 1):
            address = f"{routed_lan(i)[j + 1]}/22"
            lines.append(f"  l{i}h{j}: {{interfaces: {{eth0: {{network: lan{i}, address: {address}}}}}, "
                         f"routes: [{{to: default, via: {gateway}}}]}}")
    lines.append("links:")
    lines += [f"  - [r{i}:eth1, r{i + 1}:eth0]" for i in range(routers - 1)]
    return "\n".join(lines) + "\n"


SHAPES = {"lan": lan, "chain": chain, "routed": routed}
