"""Faults on a node's interface: drops and random loss (iptables), cable pulls, rate limits
(impairments such as delay: lab.net.impair).

Each fault is a list of commands applied inside the lab's namespaces and a list
that undoes it (an experiment's sysctl is one too: :func:`sysctl`); both go into
the lab's journal, so ``lab fault clear``, the end of an experiment, and
``lab down`` all remove it. Direction ``in`` is traffic
arriving at the interface, ``out`` traffic leaving it.

Where things live: loss and drops are iptables rules in the node's namespace (and the same
ip6tables rules in a lab with IPv6, unless the match names an address of the other family)
(``raw PREROUTING -i IF`` for in, ``mangle POSTROUTING -o IF`` for out, so
forwarded traffic on a router is hit too); a cable pull sets the switch-side
port down (the node's NIC stays up, as when a cable is pulled at the switch),
or the node's own end of a point-to-point link; rate and delay are qdiscs on
the egress of the interface (out) and of its peer (in).
"""

from __future__ import annotations

import re
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lab import names, procs
from lab.errors import EnvironmentProblem, InputError
from lab.net.emulator import RESENT_MARK
from lab.nodes.namespace import Namespace, node_namespace, switch_namespace
from lab.state import Journal
from lab.topology import units

Direction = Literal["in", "out", "both"]
IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}(/\d{1,2})?$")
IPV6 = re.compile(r"^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(/\d{1,3})?$")
TABLES = {4: "iptables", 6: "ip6tables"}
# REJECT's answers in ip6tables' words (ICMPv6 has no "host unreachable": an address is unreachable)
REJECT_WITH6 = {"icmp-port-unreachable": "icmp6-port-unreachable", "icmp-host-unreachable": "icmp6-addr-unreachable",
                "icmp-net-unreachable": "icmp6-no-route", "icmp-admin-prohibited": "icmp6-adm-prohibited",
                "tcp-reset": "tcp-reset"}


@dataclass
class Endpoint:
    """A node's interface in a running lab, and where its other end is."""

    lab: str
    node: str
    ifname: str
    inside: Namespace  # where the node's own end is (lab.nodes.namespace)
    peer_inside: Namespace  # where the other end is: the switch port of a LAN, or the peer node's end
    peer_ifname: str
    peer_is_switch: bool = False
    # the node's static routes that leave by this interface ({"to", "via", "dev"}): the kernel flushes
    # them when the interface goes down, so plugging it back in puts them back
    routes: list[dict[str, Any]] = field(default_factory=list)
    ipv6: bool = False  # the lab has IPv6: iptables faults are ip6tables rules too

    @property
    def families(self) -> list[int]:
        return [4, 6] if self.ipv6 else [4]

    @property
    def label(self) -> str:
        return f"{self.node}:{self.ifname}"


@dataclass
class Fault:
    id: str
    where: str
    what: str
    apply: list[list[str]] = field(default_factory=list)
    undo: list[list[str]] = field(default_factory=list)
    pidfiles: list[str] = field(default_factory=list)  # daemons it starts (lab's link emulator), by pidfile
    holds: list[str] = field(default_factory=list)  # the egresses an impairment holds packets at (see lab.net.impair)


def endpoint(lab_info: dict[str, Any], spec: str) -> Endpoint:
    """Resolve ``node:ifname`` in a running lab; the interface is required."""
    node, _, ifname = spec.partition(":")
    nodes = lab_info["nodes"]
    if node not in nodes:
        raise InputError(f"lab {lab_info['name']!r} has no node {node!r}", f"nodes: {', '.join(sorted(nodes))}")
    interfaces = nodes[node]["interfaces"]
    if ifname == "lo":  # every node's loopback: a capture point (and a fault's), its own other end
        inside = node_namespace(lab_info, node)
        return Endpoint(lab_info["name"], node, "lo", inside, inside, "lo", ipv6=bool(lab_info.get("ipv6")))
    if not ifname:
        if len(interfaces) != 1:
            raise InputError(f"say which interface of {node}: {', '.join(f'{node}:{i}' for i in interfaces)}")
        ifname = next(iter(interfaces))
    if ifname not in interfaces:
        raise InputError(f"node {node!r} has no interface {ifname!r}", f"interfaces: {', '.join(interfaces)}")
    iface = interfaces[ifname]
    inside = node_namespace(lab_info, node)
    routes = [r for r in nodes[node].get("routes", []) if r.get("dev") == ifname]
    ipv6 = bool(lab_info.get("ipv6"))
    if iface.get("network"):
        return Endpoint(lab_info["name"], node, ifname, inside, switch_namespace(lab_info, node),
                        names.port_name(node, ifname), peer_is_switch=True, routes=routes, ipv6=ipv6)
    peer_node, _, peer_if = str(iface["peer"]).partition(":")
    return Endpoint(lab_info["name"], node, ifname, inside, node_namespace(lab_info, peer_node), peer_if,
                    routes=routes, ipv6=ipv6)


def parse_match(text: str, family: int = 4) -> list[str] | None:
    """A small, closed match language → iptables arguments: ``tcp syn dport 80``, ``udp port 53``, ``from 10.0.0.1``.

    For ``family`` 6 the ip6tables arguments (``icmp`` is ICMPv6); None when the match names an
    address of the other family, so that family gets no rule.
    """
    words = text.split()
    args: list[str] = []
    proto = None
    i = 0
    while i < len(words):
        w = words[i]
        if w in ("tcp", "udp", "icmp"):
            proto = w
            args += ["-p", "ipv6-icmp" if (w, family) == ("icmp", 6) else w]
        elif w in ("syn", "synack", "rst", "fin"):
            if proto is None:
                proto = "tcp"
                args += ["-p", "tcp"]
            if proto != "tcp":
                raise InputError(f"match {text!r}: {w!r} needs tcp")
            args += {"syn": ["--syn"], "synack": ["--tcp-flags", "SYN,ACK", "SYN,ACK"],
                     "rst": ["--tcp-flags", "RST", "RST"], "fin": ["--tcp-flags", "FIN", "FIN"]}[w]
        elif w in ("port", "dport", "sport", "from", "to"):
            if i + 1 >= len(words):
                raise InputError(f"match {text!r}: {w!r} needs a value")
            value = words[i + 1]
            i += 1
            if w in ("from", "to"):
                version = 4 if IPV4.match(value) else 6 if IPV6.match(value) else None
                if version is None:
                    raise InputError(f"match {text!r}: {value!r} is not an IPv4 or IPv6 address or CIDR")
                if version != family:
                    return None
                args += ["-s" if w == "from" else "-d", value]
            else:
                if not value.isdigit() or not 0 < int(value) < 65536:
                    raise InputError(f"match {text!r}: {value!r} is not a port number")
                if proto is None:
                    raise InputError(f"match {text!r}: say tcp or udp before {w!r}")
                if w == "port":
                    args += ["-m", "multiport", "--ports", value]
                else:
                    args += [f"--{w}", value]
        else:
            raise InputError(f"match {text!r}: unknown word {w!r}",
                             "use tcp|udp|icmp, syn|synack|rst|fin, port|dport|sport N, from|to ADDRESS")
        i += 1
    return args


def directions(direction: Direction) -> list[str]:
    return ["in", "out"] if direction == "both" else [direction]


def iptables_fault(ep: Endpoint, match: str, target: list[str], direction: Direction, what: str) -> Fault:
    """The rule in each direction, for each family the lab has (ip6tables with IPv6's words)."""
    fault = Fault(new_id(), ep.label, what)
    # what lab's link emulator sends again has met these rules once already (lab.net.emulator)
    tag = ["-m", "mark", "!", "--mark", hex(RESENT_MARK), "-m", "comment", "--comment", f"lab-fault-{fault.id}"]
    ruled = []
    for family in ep.families:
        args = parse_match(match, family) if match else []
        if args is None:
            continue
        ruled.append(family)
        family_target = target
        if family == 6 and target[:2] == ["-j", "REJECT"] and "--reject-with" in target:
            family_target = [*target[:-1], REJECT_WITH6[target[-1]]]
        for d in directions(direction):
            if target[:2] == ["-j", "REJECT"]:
                table, chain, iface = "filter", ("INPUT" if d == "in" else "OUTPUT"), ("-i" if d == "in" else "-o")
            elif d == "in":
                table, chain, iface = "raw", "PREROUTING", "-i"
            else:
                table, chain, iface = "mangle", "POSTROUTING", "-o"
            rule = [chain, iface, ep.ifname, *args, *tag, *family_target]
            fault.apply.append(ep.inside.command([TABLES[family], "-w", "-t", table, "-I", *rule]))
            fault.undo.append(ep.inside.command([TABLES[family], "-w", "-t", table, "-D", *rule]))
    if not ruled:
        raise InputError(f"match {match!r} names an IPv6 address, and lab {ep.lab!r} has no IPv6",
                         "give an IPv4 address, or give the topology subnet6/address6")
    return fault


def loss(ep: Endpoint, percent: float, direction: Direction = "both", match: str = "") -> Fault:
    if not 0 < percent <= 100:
        raise InputError(f"--loss {percent}%: give a percentage between 0 and 100")
    target = ["-m", "statistic", "--mode", "random", "--probability", f"{percent / 100:.6f}", "-j", "DROP"]
    what = f"loss {percent:g}% {direction}" + (f" of {match}" if match else "")
    return iptables_fault(ep, match, target, direction, what)


def drop(ep: Endpoint, match: str, direction: Direction = "in") -> Fault:
    return iptables_fault(ep, match, ["-j", "DROP"], direction, f"drop {match} {direction}")


def reject(ep: Endpoint, match: str, direction: Direction = "in", with_: str = "icmp-port-unreachable") -> Fault:
    allowed = {"icmp-port-unreachable", "icmp-host-unreachable", "icmp-net-unreachable", "tcp-reset",
               "icmp-admin-prohibited"}
    if with_ not in allowed:
        raise InputError(f"--reject-with {with_!r}", f"one of: {', '.join(sorted(allowed))}")
    target = ["-j", "REJECT", "--reject-with", with_]
    return iptables_fault(ep, match, target, direction, f"reject {match} {direction} with {with_}")


def qdisc_targets(ep: Endpoint, direction: Direction) -> list[tuple[Namespace, str]]:
    """A qdisc shapes what leaves an interface: ``out`` is the node's end, ``in`` the other end."""
    out = []
    for d in directions(direction):
        out.append((ep.inside, ep.ifname) if d == "out" else (ep.peer_inside, ep.peer_ifname))
    return out


def rate(ep: Endpoint, value: str, direction: Direction = "out") -> Fault:
    try:
        units.bits_per_second(value)
    except ValueError as exc:
        raise InputError(f"--rate: {exc}") from None
    fault = Fault(new_id(), ep.label, f"rate {value} {direction}")
    for ns, dev in qdisc_targets(ep, direction):
        fault.apply.append(ns.command(["tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", value,
                                       "burst", "32kbit", "latency", "400ms"]))
        fault.undo.append(ns.command(["tc", "qdisc", "del", "dev", dev, "root"]))
    return fault


def sysctl(node: str, inside: Namespace, key: str, value: str, old: str) -> Fault:
    """A per-namespace sysctl set for a while (an experiment's knob), the old value its undo.

    Journaled like a fault, so a run that was killed leaves it listed in ``lab fault ls``
    and ``lab fault clear`` puts it back. Only ``net.*`` keys: the others are machine-wide.
    """
    if not key.startswith("net."):
        raise InputError(f"sysctl {key} is machine-wide, not the node's", "lab sets only per-namespace net.* sysctls")
    return Fault(new_id(), node, f"sysctl {key}={value}",
                 [inside.command(["sysctl", "-q", "-w", f"{key}={value}"])],
                 [inside.command(["sysctl", "-q", "-w", f"{key}={old}"])])


def plug_back(journal: Journal, ep: Endpoint) -> list[dict[str, Any]]:
    """``link up``: undo our cable pulls on ``ep``; with none active, set the link up (nothing to undo later)."""
    pulled = [e for e in active(journal) if e["where"] == ep.label and e["what"] == "link down"]
    for entry in pulled:
        clear(journal, fault_id=entry["id"])
    if not pulled:
        for argv in link_state(ep, up=True).apply:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            if result.returncode != 0:
                raise EnvironmentProblem(f"link up on {ep.label} failed: {result.stderr.strip()}")
    return pulled


def link_state(ep: Endpoint, up: bool) -> Fault:
    """The cable pull: the switch-side port (or the node's own end of a point-to-point link) goes down.

    Setting the node's own end down makes the kernel flush the routes that leave by it; setting it
    up again puts the topology's back (``ip route replace``), so a healed cable leaves the lab as
    its topology says.
    """
    ns, dev = (ep.peer_inside, ep.peer_ifname) if ep.peer_is_switch else (ep.inside, ep.ifname)
    state = "up" if up else "down"
    other = "down" if up else "up"
    apply = [ns.command(["ip", "link", "set", "dev", dev, state])]
    undo = [ns.command(["ip", "link", "set", "dev", dev, other])]
    if not ep.peer_is_switch:
        (apply if up else undo).extend(restore_routes(ep))
    return Fault(new_id(), ep.label, f"link {state}", apply, undo)


def restore_routes(ep: Endpoint) -> list[list[str]]:
    """``ip route replace`` for each of the node's topology routes that leave by ``ep``'s interface."""
    commands = []
    for route in ep.routes:
        via = ["via", str(route["via"])] if route.get("via") else []
        family = ["-6"] if str(route.get("family")) == "6" else []
        commands.append(ep.inside.command(["ip", *family, "route", "replace", str(route["to"]), *via,
                                           "dev", ep.ifname]))
    return commands


def record(journal: Journal, made: list[Fault]) -> None:
    """Journal faults (with their undo) before they are applied: a killed lab leaves them listed."""
    journal.record([{"kind": "fault", "name": f.id, "id": f.id, "where": f.where, "what": f.what, "undo": f.undo,
                     **({"holds": f.holds} if f.holds else {})} for f in made])


def refuse_stacking(journal: Journal, fault: Fault) -> None:
    """An egress takes one impairment at a time (netem's root qdisc too): say which one is there already."""
    if not fault.holds:
        return
    for entry in active(journal):
        if set(entry.get("holds", [])) & set(fault.holds):
            raise InputError(f"{fault.where} is already impaired that way by fault {entry['id']} ({entry['what']})",
                             f"give every key in one fault: lab fault clear --id {entry['id']}, then add them together")


def apply(journal: Journal, fault: Fault) -> Fault:
    """Record the fault, then run its commands; on failure undo what ran and explain.

    An impairment on an egress that already has one is refused first (:func:`refuse_stacking`).
    """
    refuse_stacking(journal, fault)
    record(journal, [fault])
    for i, argv in enumerate(fault.apply):
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            for undo in fault.undo[:i]:
                subprocess.run(undo, capture_output=True, timeout=30)
            journal.record([{"kind": "fault-cleared", "name": fault.id, "id": fault.id}])
            msg = (result.stderr or result.stdout).strip().splitlines()
            detail = msg[-1] if msg else f"exit {result.returncode}"
            if "netem" in argv and ("unknown" in detail.lower() or "not found" in detail.lower()):
                raise EnvironmentProblem("this kernel has no sch_netem",
                                         "use lab's own emulator: --emulator lab (or LAB_EMULATOR=lab), "
                                         "or leave the choice to lab (auto)")
            raise EnvironmentProblem(f"fault {fault.what} on {fault.where} failed: {detail}")
    journal_daemons(journal, fault)
    return fault


def journal_daemons(journal: Journal, fault: Fault) -> None:
    """The daemons a fault started on this machine, as process records: ``lab down`` stops them by PID.

    (A daemon whose record was never written, because lab was killed first, still ends: it
    watches its pidfile, which goes with the lab's state directory.)
    """
    records = []
    for pidfile in fault.pidfiles:
        try:
            pid = int(Path(pidfile).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # on a cluster's machine: ends with its agent container
        records.append(procs.process_record(pid, f"link emulator {fault.where}"))
    if records:
        journal.record(records)


def active(journal: Journal) -> list[dict[str, Any]]:
    entries = journal.entries()  # read once: the journal grows with every fault and step
    cleared = {e["id"] for e in entries if e["kind"] == "fault-cleared"}
    return [e for e in entries if e["kind"] == "fault" and e["id"] not in cleared]


def clear(journal: Journal, where: str | None = None, fault_id: str | None = None) -> list[dict[str, Any]]:
    """Undo active faults (all, those on ``where``, or one id), newest first."""
    done = []
    for entry in reversed(active(journal)):
        if (where and entry["where"] != where) or (fault_id and entry["id"] != fault_id):
            continue
        for argv in entry.get("undo", []):
            subprocess.run(argv, capture_output=True, timeout=30)
        journal.record([{"kind": "fault-cleared", "name": entry["id"], "id": entry["id"]}])
        done.append(entry)
    return done


def new_id() -> str:
    return secrets.token_hex(3)
