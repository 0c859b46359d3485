"""Apply the plumbing part of a Plan: bridges, veths, addresses, routes, offloads.

Each function queues requests on the netlink socket of the namespace they
belong to (see lab.net.rtnl) and :func:`flush` sends every queue, so a phase
over N nodes costs a few system calls per namespace rather than a round trip
per object. Every interface is addressed by the index the Plan gave it.
Each loop calls ``spaces.checkpoint()`` between items, so a lab of any size
holds a bounded number of namespaces open (lab.net.netns.Handles).

A bridge port's veth is created from the switch namespace, the node's end
going straight into the node's namespace: the port joins its bridge at birth
and all the ports of a LAN are one batch on one socket. Both ends are born up
with ``gso_max_segs 1`` (a sender's capture then shows wire-sized segments,
not 64 kB super-packets).
"""

from __future__ import annotations

from lab.net.netns import Handles
from lab.plan import Plan


def queue_links(plan: Plan, spaces: Handles) -> None:
    """Bridges first, then every veth, queued on the socket of the namespace that creates it."""
    for br in plan.bridges:
        spaces[br.netns].rtnl.add_bridge(br.name, br.index, br.mtu)
    for v in plan.veths:
        spaces.checkpoint()
        if v.peer_master and not v.master:
            spaces[v.peer_netns].rtnl.add_veth(
                v.peer_ifname, v.peer_index, v.ifname, v.index, spaces[v.netns].fd,
                mtu=v.mtu, mac=v.peer_mac, peer_mac=v.mac, master=v.peer_master,
            )
        else:
            same = v.netns == v.peer_netns
            spaces[v.netns].rtnl.add_veth(
                v.ifname, v.index, v.peer_ifname, v.peer_index, None if same else spaces[v.peer_netns].fd,
                mtu=v.mtu, mac=v.mac, peer_mac=v.peer_mac, master=v.master,
            )


def queue_addresses(plan: Plan, spaces: Handles) -> None:
    """Loopback and peer ends up (a trunk's with its master), addresses, then routes (they need addresses)."""
    for name in spaces:
        spaces.checkpoint()
        spaces[name].rtnl.set_link(1, up=True, what="bring lo up")
    for v in plan.veths:
        spaces.checkpoint()
        if v.peer_master and not v.master:  # born on the switch side: the node's end is the peer
            spaces[v.netns].rtnl.set_link(v.index, up=True, what=f"bring {v.ifname} up")
        else:
            master = v.peer_master if v.master else None
            spaces[v.peer_netns].rtnl.set_link(v.peer_index, up=True, master=master,
                                               what=f"bring {v.peer_ifname} up")
        for address in (v.address, v.address6):
            if address:
                spaces[v.netns].rtnl.add_address(v.index, address, v.ifname)
        for address in (v.peer_address, v.peer_address6):
            if address:
                spaces[v.peer_netns].rtnl.add_address(v.peer_index, address, v.peer_ifname)
    for r in plan.routes:
        spaces.checkpoint()
        spaces[r.netns].rtnl.add_route(r.dst, r.via, r.oif, r.family)


def flush(spaces: Handles) -> None:
    """Send every namespace's queued requests; the first refusal raises OSError naming the object."""
    spaces.flush()


def settle(plan: Plan, spaces: Handles) -> None:
    """Apply now the pending carrier events of both ends of every veth (see Rtnl.settle_link).

    Without this a large LAN is only partly usable when ``up`` returns: its
    bridge ports start forwarding (and the ends born before their peer stop
    dropping what they are given) as the kernel's linkwatch gets round to
    them, 100-200 a second. Settling the other ends too leaves no backlog
    that would slow a ``down`` soon after, and every state reads UP.
    """
    for v in plan.veths:
        spaces.checkpoint()
        spaces[v.netns].rtnl.settle_link(v.ifname)
        spaces[v.peer_netns].rtnl.settle_link(v.peer_ifname)


def tx_checksum_off(plan: Plan, spaces: Handles) -> None:
    """``ethtool -K IF tx off`` on every node's end (not the switch's), so captures show real checksums.

    The switch only forwards frames, and a frame a node sent already carries
    its checksum, so the switch-side ends need nothing.
    """
    for v in plan.veths:
        spaces.checkpoint()
        if v.node:
            spaces[v.netns].rtnl.tx_checksum_off(v.ifname)
        if v.peer_node:
            spaces[v.peer_netns].rtnl.tx_checksum_off(v.peer_ifname)
