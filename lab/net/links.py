"""Apply the plumbing part of a Plan: bridges, veths, addresses, routes.

Each step is a batch over all namespaces with the socket already open for each
namespace, and every interface is addressed by the index the Plan gave it.
"""

from __future__ import annotations

from collections.abc import Callable

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from lab.plan import BridgeSpec, RouteSpec, VethSpec


def up_loopback(ipr: IPRoute) -> None:
    ipr.link("set", index=1, state="up")


def add_bridge(ipr: IPRoute, br: BridgeSpec) -> None:
    extra = {"mtu": br.mtu} if br.mtu else {}
    # STP off and forward delay 0: ports forward as soon as they are up.
    ipr.link("add", ifname=br.name, index=br.index, kind="bridge", br_stp_state=0, br_forward_delay=0, **extra)
    ipr.link("set", index=br.index, state="up")


def add_veth(ipr: IPRoute, peer_ipr: IPRoute, veth: VethSpec, peer_path: str) -> None:
    """Create the pair from the first end's namespace, the peer placed straight into its own."""
    peer: dict[str, object] = {"ifname": veth.peer_ifname, "index": veth.peer_index, "net_ns_fd": peer_path}
    mine: dict[str, object] = {}
    if veth.mtu:
        peer["mtu"] = mine["mtu"] = veth.mtu
    if veth.mac:
        mine["address"] = veth.mac
    if veth.peer_mac:
        peer["address"] = veth.peer_mac
    # gso_max_segs 1: the sender's capture shows wire-sized segments, not 64 kB super-packets.
    ipr.link("add", ifname=veth.ifname, index=veth.index, kind="veth", peer=peer, gso_max_segs=1, **mine)
    peer_ipr.link("set", index=veth.peer_index, gso_max_segs=1)


def configure_veth_ends(ipr: IPRoute, peer_ipr: IPRoute, veth: VethSpec) -> None:
    if veth.address:
        ip, prefix = veth.address.split("/")
        ipr.addr("add", index=veth.index, address=ip, prefixlen=int(prefix))
    if veth.peer_address:
        ip, prefix = veth.peer_address.split("/")
        peer_ipr.addr("add", index=veth.peer_index, address=ip, prefixlen=int(prefix))
    if veth.master:
        ipr.link("set", index=veth.index, master=veth.master)
    if veth.peer_master:
        peer_ipr.link("set", index=veth.peer_index, master=veth.peer_master)
    ipr.link("set", index=veth.index, state="up")
    peer_ipr.link("set", index=veth.peer_index, state="up")


def add_route(ipr: IPRoute, route: RouteSpec) -> None:
    kwargs: dict[str, object] = {"dst": "0.0.0.0/0" if route.dst == "default" else route.dst}
    if route.via:
        kwargs["gateway"] = route.via
    if route.oif:
        kwargs["oif"] = route.oif
    try:
        ipr.route("add", **kwargs)
    except NetlinkError as exc:
        raise OSError(exc.code, f"route {route.dst} via {route.via} in {route.netns}: {exc}") from None


def netlink_step(what: str, fn: Callable[[], None]) -> None:
    """Run one netlink request and turn its error into one sentence naming the object."""
    try:
        fn()
    except NetlinkError as exc:
        raise OSError(exc.code, f"{what}: {exc}") from None
