"""Each machine's part of a lab's plumbing, as operations for its agent (pure: no side effects).

Given the plan (names, addresses, routes), where the engine placed each node, the PIDs of the
node containers and of each machine's switch (held by its agent), and each machine's
underlay address, this decides for every machine:

- a veth for each link or LAN port whose two ends are on that machine (made straight into the
  two containers' namespaces: ``ip link add name eth1 netns PID_A type veth peer name eth0 netns PID_B``);
- a VXLAN device for each point-to-point link that crosses machines, made in the machine's own
  namespace (so its UDP socket stays on the underlay) and moved into the node as its interface;
- for a LAN with members on several machines, one bridge per machine in that machine's switch
  namespace, joined by a VXLAN device with head-end replication (an all-zero MAC entry per
  other machine), so a LAN may span three or more machines;
- addresses (both families), MACs, MTUs, routes and sysctls inside each node, and its /etc/hosts
  and resolv.conf;
- a firewall chain that lets the lab's VXLAN port in from the cluster's own machines only.

A VXLAN network identifier (VNI) is a hash of the lab's name and the link or network, so it is
the same on every run; the UDP port is lab's own (:data:`VXLAN_PORT`), not the 4789 of Docker's
overlay. The figures the user must know (VXLAN's 50 bytes) are here too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from lab.errors import EnvironmentProblem, InputError
from lab.plan import MAX_PORTS_PER_SHARD, NO_RESOLVER, Plan

VXLAN_PORT = 47900
VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8
DEFAULT_MTU = 1500
ALL_ZERO_MAC = "00:00:00:00:00:00"


def vni(lab: str, key: str) -> int:
    """A stable 24-bit VXLAN network identifier for ``key`` (a link's ends, or ``net:<network>``) of ``lab``."""
    value = int.from_bytes(hashlib.sha256(f"{lab}/{key}".encode()).digest()[:3], "big")
    return value or 1


def vxlan_name(number: int) -> str:
    return f"lvx{number:06x}"


def firewall_chain(lab: str) -> str:
    return "LABVX-" + hashlib.sha256(lab.encode()).hexdigest()[:10]


@dataclass
class Machines:
    """What wiring needs to know of the machines: underlay address and interface of each."""

    address: dict[str, str]  # machine -> underlay IPv4 address
    ifname: dict[str, str]  # machine -> the interface holding it


@dataclass
class Wiring:
    """Operations per machine, and the VXLAN devices each will make (journaled before they exist)."""

    ops: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    vxlans: dict[str, list[str]] = field(default_factory=dict)
    firewalls: dict[str, str] = field(default_factory=dict)  # machine -> chain name

    def add(self, machine: str, op: dict[str, Any]) -> None:
        self.ops.setdefault(machine, []).append(op)


def check_fits(plan: Plan, machine_mtus: dict[str, int]) -> None:
    """Refuse, with the figures, a lab whose links cannot cross this underlay whole (nothing is lowered)."""
    if not machine_mtus:
        return
    smallest_machine = min(machine_mtus, key=lambda m: machine_mtus[m])
    underlay = machine_mtus[smallest_machine]
    largest = max([v.mtu or DEFAULT_MTU for v in plan.veths] or [DEFAULT_MTU])
    if largest + VXLAN_OVERHEAD > underlay:
        raise EnvironmentProblem(
            f"a link MTU of {largest} needs an underlay MTU of at least {largest + VXLAN_OVERHEAD} "
            f"({VXLAN_OVERHEAD} bytes of VXLAN), but machine {smallest_machine}'s is {underlay}",
            f"raise the underlay MTU to {largest + VXLAN_OVERHEAD}, or give the topology's links mtu: "
            f"{underlay - VXLAN_OVERHEAD}")


def check_shape(plan: Plan) -> None:
    if any(b.trunk_to for b in plan.bridges):
        raise InputError(f"a network of more than {MAX_PORTS_PER_SHARD} ports cannot be spread over a cluster yet",
                         "split it into several networks")


def _nsenter(pid: int, *argv: str) -> list[str]:
    return ["nsenter", "-t", str(pid), "-n", *argv]


def _batch(pid: int, lines: list[str]) -> dict[str, Any]:
    return {"op": "run", "argv": _nsenter(pid, "ip", "-batch", "-"), "stdin": "\n".join(lines) + "\n"}


def plan_wiring(plan: Plan, placement: dict[str, str], pids: dict[str, int], switch_pids: dict[str, int],
                machines: Machines) -> Wiring:
    """Every machine's operations, in the order its agent runs them."""
    check_shape(plan)
    wiring = Wiring()
    _seal(wiring, plan, placement, pids)
    members = _bridges(wiring, plan, placement, switch_pids)
    inside = _Inside({node: ["link set lo up"] for node in placement})
    switch_lines = _links(wiring, plan, placement, pids, switch_pids, machines, inside)
    for machine, lines in _lan_tunnels(wiring, plan, members, switch_pids, machines).items():
        switch_lines.setdefault(machine, []).extend(lines)
    for machine, lines in sorted(switch_lines.items()):
        wiring.add(machine, _batch(switch_pids[machine], lines))
    _inside_nodes(wiring, plan, placement, pids, inside)
    _etc_files(wiring, plan, placement, pids)
    _guard_vxlan(wiring, plan.lab, machines)
    return wiring


@dataclass
class _Inside:
    """What is done inside each node once its links exist: ``ip -batch`` lines, and the interfaces whose
    offloads go off (veths: tx checksums, so pcaps show correct ones; VXLAN: GRO, so pcaps show the wire's
    segments)."""

    configs: dict[str, list[str]]
    tx_off: dict[str, list[str]] = field(default_factory=dict)
    gro_off: dict[str, list[str]] = field(default_factory=dict)


def _switch_namespaces(plan: Plan) -> set[str]:
    return {b.netns for b in plan.bridges}


def _seal(wiring: Wiring, plan: Plan, placement: dict[str, str], pids: dict[str, int]) -> None:
    """1. Nothing the engine gave a task stays: every interface but lo goes; the early sysctls."""
    for node, machine in placement.items():
        wiring.add(machine, {"op": "seal", "pid": pids[node]})
        early = next(s.sysctls for s in plan.namespaces if s.node == node)
        if early:
            wiring.add(machine, {"op": "run", "argv": _nsenter(pids[node], "sysctl", "-q", "-w",
                                                               *(f"{k}={v}" for k, v in early.items()))})


def _bridges(wiring: Wiring, plan: Plan, placement: dict[str, str], switch_pids: dict[str, int]
             ) -> dict[str, set[str]]:
    """2. Bridges, on each machine that has members of the network; the member machines per network."""
    switch_ns = _switch_namespaces(plan)
    members: dict[str, set[str]] = {}  # network -> machines
    for v in plan.veths:
        if v.peer_netns in switch_ns and v.node is not None:
            network = str(plan.nodes[v.node].interfaces[v.ifname]["network"])
            members.setdefault(network, set()).add(placement[v.node])
    bridges = {b.network: b for b in plan.bridges}
    for network, where in sorted(members.items()):
        br = bridges[network]
        mtu_option = f" mtu {br.mtu}" if br.mtu else ""
        for machine in sorted(where):
            wiring.add(machine, _batch(switch_pids[machine], [
                "link set lo up", f"link add {br.name}{mtu_option} type bridge", f"link set {br.name} up"]))
    return members


def _links(wiring: Wiring, plan: Plan, placement: dict[str, str], pids: dict[str, int], switch_pids: dict[str, int],
           machines: Machines, inside: _Inside) -> dict[str, list[str]]:
    """3. Links: veths where both ends share a machine, VXLAN where they do not; LAN ports into the switch.
    Returns the switch's ``ip -batch`` lines per machine (the ports into their bridges)."""
    switch_ns = _switch_namespaces(plan)
    node_of_ns = {spec.netns: name for name, spec in plan.nodes.items()}
    bridges = {b.network: b for b in plan.bridges}
    switch_lines: dict[str, list[str]] = {}
    for v in plan.veths:
        a = v.node or node_of_ns.get(v.netns)
        if a is None:
            continue
        machine_a = placement[a]
        mtu = v.mtu or DEFAULT_MTU
        if v.peer_netns in switch_ns:  # a LAN port: node end and switch end on the node's machine
            wiring.add(machine_a, {"op": "run", "argv": [
                "ip", "link", "add", "name", v.peer_ifname, "netns", str(switch_pids[machine_a]), "type", "veth",
                "peer", "name", v.ifname, "netns", str(pids[a])]})
            switch_lines.setdefault(machine_a, []).append(
                f"link set {v.peer_ifname} mtu {mtu} master {bridges[_network(plan, a, v.ifname)].name} up")
            inside.tx_off.setdefault(a, []).append(v.ifname)
            _configure(inside.configs[a], v.ifname, mtu, v.mac, v.address, v.address6)
            continue
        b = v.peer_node or node_of_ns[v.peer_netns]
        machine_b = placement[b]
        if machine_a == machine_b:
            wiring.add(machine_a, {"op": "run", "argv": [
                "ip", "link", "add", "name", v.ifname, "netns", str(pids[a]), "type", "veth",
                "peer", "name", v.peer_ifname, "netns", str(pids[b])]})
            inside.tx_off.setdefault(a, []).append(v.ifname)
            inside.tx_off.setdefault(b, []).append(v.peer_ifname)
        else:
            number = vni(plan.lab, f"{a}:{v.ifname}-{b}:{v.peer_ifname}")
            for machine, other, node, ifname in ((machine_a, machine_b, a, v.ifname),
                                                 (machine_b, machine_a, b, v.peer_ifname)):
                _vxlan(wiring, machine, number, machines, remote=machines.address[other], into=pids[node],
                       rename=ifname)
                inside.gro_off.setdefault(node, []).append(ifname)
        _configure(inside.configs[a], v.ifname, mtu, v.mac, v.address, v.address6)
        _configure(inside.configs[b], v.peer_ifname, mtu, v.peer_mac, v.peer_address, v.peer_address6)
    return switch_lines


def _lan_tunnels(wiring: Wiring, plan: Plan, members: dict[str, set[str]], switch_pids: dict[str, int],
                 machines: Machines) -> dict[str, list[str]]:
    """4. LANs over several machines: a VXLAN port on each member machine's bridge, flooding to the others.
    Returns the switch's lines that put each port on its bridge."""
    switch_ns = _switch_namespaces(plan)
    bridges = {b.network: b for b in plan.bridges}
    switch_lines: dict[str, list[str]] = {}
    for network, where in sorted(members.items()):
        if len(where) < 2:
            continue
        number = vni(plan.lab, f"net:{network}")
        br = bridges[network]
        mtu = br.mtu or max(v.mtu or DEFAULT_MTU for v in plan.veths  # the largest frame a member sends
                            if v.node and v.peer_netns in switch_ns and _network(plan, v.node, v.ifname) == network)
        for machine in sorted(where):
            name = _vxlan(wiring, machine, number, machines, remote=None, into=switch_pids[machine], rename=None)
            fdb = [_nsenter(switch_pids[machine], "bridge", "fdb", "append", ALL_ZERO_MAC, "dev", name,
                            "dst", machines.address[other]) for other in sorted(where - {machine})]
            wiring.ops[machine] += [{"op": "run", "argv": argv} for argv in fdb]
            wiring.add(machine, {"op": "run", "argv": _nsenter(switch_pids[machine], "ethtool", "-K", name, "gro",
                                                               "off"), "ok": [0, 1]})
            switch_lines.setdefault(machine, []).append(f"link set {name} mtu {mtu} master {br.name} up")
    return switch_lines


def _inside_nodes(wiring: Wiring, plan: Plan, placement: dict[str, str], pids: dict[str, int],
                  inside: _Inside) -> None:
    """5. Inside each node: addresses, MTUs and MACs, routes; then the offloads and the late sysctls."""
    node_of_ns = {spec.netns: name for name, spec in plan.nodes.items()}
    for spec_route in plan.routes:
        node = node_of_ns[spec_route.netns]
        dev = ""
        if spec_route.oif is not None:
            dev = " dev " + next(n for n, i in plan.nodes[node].interfaces.items() if i["index"] == spec_route.oif)
        via = f" via {spec_route.via}" if spec_route.via else ""
        dst = "::/0" if spec_route.dst == "default" and spec_route.family == 6 else spec_route.dst
        inside.configs[node].append(f"route add {dst}{via}{dev}")
    for node, lines in inside.configs.items():
        machine = placement[node]
        wiring.add(machine, _batch(pids[node], lines))
        for ifname in inside.tx_off.get(node, []):
            wiring.add(machine, {"op": "run", "argv": _nsenter(pids[node], "ethtool", "-K", ifname, "tx", "off"),
                                 "ok": [0, 1]})  # 1: the driver has no such offload to turn off
        for ifname in inside.gro_off.get(node, []):
            wiring.add(machine, {"op": "run", "argv": _nsenter(pids[node], "ethtool", "-K", ifname, "gro", "off"),
                                 "ok": [0, 1]})
        late = next(s.late_sysctls for s in plan.namespaces if s.node == node)
        if late:
            wiring.add(machine, {"op": "run", "argv": _nsenter(pids[node], "sysctl", "-q", "-w",
                                                               *(f"{k}={v}" for k, v in late.items()))})


def _etc_files(wiring: Wiring, plan: Plan, placement: dict[str, str], pids: dict[str, int]) -> None:
    """6. Each node's /etc/hosts and resolv.conf, written into the files Docker made for it."""
    for node, machine in placement.items():
        netns = plan.nodes[node].netns
        for path, text in (("/etc/hosts", plan.hosts_files[netns]),
                           ("/etc/resolv.conf", plan.resolv_files.get(netns, NO_RESOLVER))):
            wiring.add(machine, {"op": "write", "pid": pids[node], "path": path, "text": text})


def _guard_vxlan(wiring: Wiring, lab: str, machines: Machines) -> None:
    """7. The VXLAN port answers the cluster's own machines only. First of all, the agent keeps what
    undoes both, so that it undoes them as it stops, even after an up killed halfway through."""
    for machine in sorted(wiring.vxlans):
        chain = firewall_chain(lab)
        wiring.firewalls[machine] = chain
        others = sorted(a for m, a in machines.address.items() if m != machine)
        wiring.ops[machine][:0] = [{"op": "on-stop", "ops": unwire(wiring.vxlans[machine], chain)},
                                   *firewall_up(chain, others)]


def _network(plan: Plan, node: str, ifname: str) -> str:
    return str(plan.nodes[node].interfaces[ifname]["network"])


def _configure(lines: list[str], ifname: str, mtu: int, mac: str | None, address: str | None,
               address6: str | None = None) -> None:
    # gso_max_segs 1: the node sends MTU-sized frames, as the wire would carry them (what captures show)
    lines.append(f"link set {ifname} mtu {mtu} gso_max_segs 1" + (f" address {mac}" if mac else ""))
    if address:
        lines.append(f"addr add {address} dev {ifname}")
    if address6:  # nodad: usable at once, as on one machine (lab.net.rtnl)
        lines.append(f"addr add {address6} dev {ifname} nodad")
    lines.append(f"link set {ifname} up")


def _vxlan(wiring: Wiring, machine: str, number: int, machines: Machines, remote: str | None, into: int,
           rename: str | None) -> str:
    """Make a VXLAN device in the machine's own namespace and move it into process ``into``'s."""
    name = vxlan_name(number)
    argv = ["ip", "link", "add", name, "type", "vxlan", "id", str(number), "dstport", str(VXLAN_PORT),
            "local", machines.address[machine], "dev", machines.ifname[machine]]
    if remote is not None:
        argv += ["remote", remote]
    wiring.vxlans.setdefault(machine, []).append(name)
    # retry: a VNI stays taken for a moment after the namespace that held it went (teardown is asynchronous)
    wiring.add(machine, {"op": "run", "argv": argv, "retry": 5})
    wiring.add(machine, {"op": "run", "argv": ["ip", "link", "set", name, "netns", str(into)]})
    if rename is not None:
        wiring.add(machine, {"op": "run", "argv": _nsenter(into, "ip", "link", "set", name, "name", rename)})
    return name


def firewall_up(chain: str, sources: list[str]) -> list[dict[str, Any]]:
    """A chain that returns for the cluster's machines and drops everything else sent to the VXLAN port."""
    ipt = ["iptables", "-w"]
    ops: list[dict[str, Any]] = [{"op": "run", "argv": [*ipt, "-N", chain], "ok": [0, 1]},
                                 {"op": "run", "argv": [*ipt, "-F", chain]}]
    ops += [{"op": "run", "argv": [*ipt, "-A", chain, "-s", source, "-j", "RETURN"]} for source in sources]
    ops += [{"op": "run", "argv": [*ipt, "-A", chain, "-j", "DROP"]},
            {"op": "run", "argv": [*ipt, "-I", "INPUT", "-p", "udp", "--dport", str(VXLAN_PORT), "-j", chain]}]
    return ops


def unwire(vxlans: list[str], chain: str | None) -> list[dict[str, Any]]:
    """What undoes a machine's wiring: VXLAN devices still in its own namespace, and the firewall chain.

    The lab's agent keeps it and carries it out as it stops; a throwaway agent does, if the lab's cannot.

    Devices that were moved into a node went with its container; deleting a missing one is no error.
    """
    ops: list[dict[str, Any]] = [{"op": "run", "argv": ["ip", "link", "del", name], "ok": [0, 1]}
                                 for name in vxlans]
    if chain:
        ipt = ["iptables", "-w"]
        ops += [{"op": "run", "argv": [*ipt, "-D", "INPUT", "-p", "udp", "--dport", str(VXLAN_PORT), "-j", chain],
                 "ok": [0, 1, 2]},
                {"op": "run", "argv": [*ipt, "-F", chain], "ok": [0, 1]},
                {"op": "run", "argv": [*ipt, "-X", chain], "ok": [0, 1]}]
    return ops
