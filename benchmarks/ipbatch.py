"""The baseline: the same plumbing as ``lab up`` for a Plan, done by iproute2 the fast way.

What the baseline does (and nothing else), in this order, sequentially as a
shell script would:

1. one ``ip -batch -`` in the machine's namespace: ``netns add`` for every
   namespace, then ``link add IF netns NS [mtu] [address] gso_max_segs 1 type veth
   peer name PEER netns PEERNS [mtu] [address] gso_max_segs 1`` for every veth
   (both ends are created straight inside their namespaces);
2. one ``ip -n SWITCH -batch -`` for the switch namespace: ``link set lo up``,
   ``link add BR type bridge stp_state 0 forward_delay 0``, ``link set BR up``,
   and ``link set PORT master BR up`` for every bridge port (trunks included);
3. one ``ip -n NS -batch -`` per node namespace: ``link set lo up``,
   ``addr add`` and ``link set IF up`` for each of its interfaces, ``route add``
   for each of its routes;
4. one ``nsenter --net=/run/netns/NS sysctl -q -w k=v ...`` per namespace with
   every sysctl the Plan sets there (``ip`` cannot write sysctls; ``ip netns exec``
   would add a mount namespace and a /sys remount per call).

``lab up`` does more than this: it journals every object first, turns TX
checksum offload off on each node's interfaces, writes /etc/netns/<ns>/hosts,
and takes the lab's lock. Down is one ``ip -batch -`` of ``netns delete``.
"""

from __future__ import annotations

import subprocess

from lab.plan import Plan

PREFIX = "ipb-"  # baseline namespaces never share a name with a lab's (lab-...)


def rename(ns: str) -> str:
    return PREFIX + ns.removeprefix("lab-")


def _ip_batch(lines: list[str], netns: str | None = None) -> None:
    argv = ["ip", *(["-n", netns] if netns else []), "-batch", "-"]
    subprocess.run(argv, input="\n".join(lines) + "\n", text=True, check=True)


def _link_opts(mtu: int | None, mac: str | None) -> str:
    return (f" mtu {mtu}" if mtu else "") + (f" address {mac}" if mac else "") + " gso_max_segs 1"


def up(plan: Plan, sysctls: bool = True) -> list[str]:
    """Build the Plan's plumbing with iproute2; return the namespace names (for ``down``).

    ``sysctls=False`` leaves out step 4 (the issue's first measurement did).
    """
    namespaces = [rename(s.name) for s in plan.namespaces]
    root = [f"netns add {ns}" for ns in namespaces]
    for v in plan.veths:
        root.append(f"link add {v.ifname} netns {rename(v.netns)}{_link_opts(v.mtu, v.mac)} type veth "
                    f"peer name {v.peer_ifname} netns {rename(v.peer_netns)}{_link_opts(v.mtu, v.peer_mac)}")
    _ip_batch(root)

    per_ns: dict[str, list[str]] = {ns: ["link set lo up"] for ns in namespaces}
    bridge_names = {(rename(b.netns), b.index): b.name for b in plan.bridges}
    for b in plan.bridges:
        mtu = f" mtu {b.mtu}" if b.mtu else ""
        per_ns[rename(b.netns)] += [f"link add {b.name}{mtu} type bridge stp_state 0 forward_delay 0",
                                    f"link set {b.name} up"]
    for v in plan.veths:
        ends = ((rename(v.netns), v.ifname, v.address, v.master),
                (rename(v.peer_netns), v.peer_ifname, v.peer_address, v.peer_master))
        for ns, ifname, address, master in ends:
            if address:
                per_ns[ns].append(f"addr add {address} dev {ifname}")
            on_bridge = f" master {bridge_names[(ns, master)]}" if master else ""
            per_ns[ns].append(f"link set {ifname}{on_bridge} up")
    ifname_of = {(v.netns, v.index): v.ifname for v in plan.veths}
    ifname_of.update({(v.peer_netns, v.peer_index): v.peer_ifname for v in plan.veths})
    for r in plan.routes:
        ns = rename(r.netns)
        dev = ifname_of.get((r.netns, r.oif or 0))
        via = f" via {r.via}" if r.via else ""
        per_ns[ns].append(f"route add {r.dst}{via}" + (f" dev {dev}" if dev else ""))
    for ns, lines in per_ns.items():
        _ip_batch(lines, ns)

    for spec in plan.namespaces:
        values = {**spec.sysctls, **spec.late_sysctls}
        if values and sysctls:
            subprocess.run(["nsenter", f"--net=/run/netns/{rename(spec.name)}", "sysctl", "-q", "-w",
                            *(f"{k}={v}" for k, v in values.items())], check=True)
    return namespaces


def down(namespaces: list[str]) -> None:
    _ip_batch([f"netns delete {ns}" for ns in namespaces])


def leftovers(namespaces: list[str]) -> list[str]:
    """Baseline namespaces still present (after a failed run): for cleanup."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    present = {line.split()[0] for line in listed.splitlines() if line.strip()}
    return [ns for ns in namespaces if ns in present]
