"""Bring a lab up (plan → journal → kernel/docker, rolled back on any failure) and take it down.

``up`` writes each batch of objects to the journal before creating them, keeps
one netlink socket per namespace for the whole apply, and works phase by phase
over all namespaces (namespaces, sysctls, bridges, veths, addresses, routes)
so the cost per node is a handful of netlink messages. ``down`` and ``clean``
remove exactly what the journal (and, for containers, the labels) name.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute

from lab import names, procs
from lab.errors import EnvironmentProblem, InputError, LabError
from lab.net import links, netns, sysctl
from lab.plan import Plan, make_plan
from lab.state import Journal, lab_dir, lab_lock, labs_with_state, write_lab_info
from lab.topology.model import Topology

ETC_NETNS = "/etc/netns"
Progress = Callable[[str, int, int], None]


def _no_progress(step: str, done: int, total: int) -> None:
    return None


@dataclass
class Teardown:
    """What ``down``/``clean`` removed and what it left alone (and why)."""

    lab: str
    removed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def up(topo: Topology, source_text: str, source_file: str | None = None, progress: Progress = _no_progress) -> Plan:
    """Build the lab; on any failure (or Ctrl-C) remove what was made and re-raise."""
    netns.require_root()
    plan = make_plan(topo)
    with lab_lock(topo.name):
        journal = Journal(topo.name)
        if journal.exists():
            hint = f"run: lab down {topo.name}"
            raise InputError(f"lab {topo.name!r} is already up (or was interrupted)", hint)
        netns.ensure_netns_dir()
        journal.start({"file": source_file, "created": time.time(), "pid": os.getpid()})
        (lab_dir(topo.name) / "topology.yaml").write_text(source_text)
        try:
            _apply(plan, topo, journal, progress)
        except BaseException as exc:
            progress("rolling back", 0, 1)
            _teardown(topo.name, journal)
            if isinstance(exc, OSError) and not isinstance(exc, LabError):
                raise EnvironmentProblem(f"could not build lab {topo.name!r}: {exc.strerror or exc}") from exc
            raise
        write_lab_info(topo.name, {
            "name": topo.name,
            "file": source_file,
            "created": time.time(),
            "nodes": {n: vars(s) for n, s in plan.nodes.items()},
            "networks": {n: {"subnet": str(net.subnet)} for n, net in topo.networks.items()},
            "bridges": [vars(b) for b in plan.bridges],
            "switch": names.switch_netns(topo.name) if topo.networks else None,
        })
    return plan


def _apply(plan: Plan, topo: Topology, journal: Journal, progress: Progress) -> None:
    sockets: dict[str, IPRoute] = {}
    try:
        containers = [s for s in plan.namespaces if s.kind == "container"]
        if containers:
            from lab.nodes import container

            progress("starting containers", 0, len(containers))
            pids = container.start_containers(plan, topo, journal, progress)
            journal.record([{"kind": "netns", "name": s.name} for s in containers])
            for spec in containers:
                netns.attach(spec.name, f"/proc/{pids[spec.node or '']}/ns/net")
                sockets[spec.name] = netns.open_socket(spec.name)

        plain = [s for s in plan.namespaces if s.kind != "container"]
        journal.record([{"kind": "netns", "name": s.name} for s in plain])
        for i, spec in enumerate(plain):
            progress("namespaces", i, len(plan.namespaces))
            try:
                sockets[spec.name] = netns.create(spec.name)
            except FileExistsError:
                raise EnvironmentProblem(
                    f"namespace {spec.name} already exists and is not this lab's",
                    f"remove it yourself if it is stale: ip netns delete {spec.name}") from None
        progress("namespaces", len(plan.namespaces), len(plan.namespaces))

        missing: set[str] = set()
        for i, spec in enumerate(plan.namespaces):
            progress("sysctls", i, len(plan.namespaces))
            links.up_loopback(sockets[spec.name])
            missing.update(netns.run_in(netns.netns_path(spec.name), lambda s=spec: sysctl.write_sysctls(s.sysctls)))
        _refuse_missing_sysctls(missing, plan)

        for br in plan.bridges:
            links.netlink_step(f"bridge {br.name}", lambda b=br: links.add_bridge(sockets[b.netns], b))

        total = len(plan.veths)
        for i, veth in enumerate(plan.veths):
            if i % 50 == 0:
                progress("links", i, total)
            links.netlink_step(
                f"veth {veth.netns}:{veth.ifname}",
                lambda v=veth: links.add_veth(sockets[v.netns], sockets[v.peer_netns], v, netns.netns_path(v.peer_netns)),
            )
        for veth in plan.veths:
            links.netlink_step(
                f"configure {veth.netns}:{veth.ifname}",
                lambda v=veth: links.configure_veth_ends(sockets[v.netns], sockets[v.peer_netns], v),
            )
        progress("links", total, total)

        by_ns: dict[str, list[str]] = {}
        for veth in plan.veths:
            by_ns.setdefault(veth.netns, []).append(veth.ifname)
            by_ns.setdefault(veth.peer_netns, []).append(veth.peer_ifname)
        for ns_name, ifnames in by_ns.items():
            def offloads(ifs: list[str] = ifnames) -> None:
                for ifname in ifs:
                    sysctl.disable_tx_checksum(ifname)
            netns.run_in(netns.netns_path(ns_name), offloads)

        for route in plan.routes:
            links.add_route(sockets[route.netns], route)
        for spec in plan.namespaces:
            if spec.late_sysctls:
                missing.update(netns.run_in(netns.netns_path(spec.name), lambda s=spec: sysctl.write_sysctls(s.late_sysctls)))
        _refuse_missing_sysctls(missing, plan)

        journal.record([{"kind": "etcdir", "name": ns} for ns in plan.hosts_files])
        for ns_name, text in plan.hosts_files.items():
            d = Path(ETC_NETNS) / ns_name
            d.mkdir(parents=True, exist_ok=True)
            (d / "hosts").write_text(text)
            if not (d / "resolv.conf").exists():
                (d / "resolv.conf").write_text("# lab: no DNS server configured for this node\n")
        if containers:
            from lab.nodes import container

            container.configure_containers(plan, topo, progress)
        progress("ready", 1, 1)
    finally:
        for sock in sockets.values():
            sock.close()


def _refuse_missing_sysctls(missing: set[str], plan: Plan) -> None:
    if missing:
        raise EnvironmentProblem(f"this kernel has no sysctl {', '.join(sorted(missing))}",
                                 "remove it from the topology or use a kernel that has it")


def down(lab: str) -> Teardown:
    """Remove everything the lab's journal names. Idempotent: a lab that is not up is not an error."""
    netns.require_root()
    with lab_lock(lab, wait=True):
        return _teardown(lab, Journal(lab))


def _teardown(lab: str, journal: Journal) -> Teardown:
    report = Teardown(lab)
    entries = journal.entries()
    for entry in reversed(entries):
        if entry["kind"] == "process":
            if procs.stop(int(entry["pid"]), entry.get("start_time")):
                report.removed.append(f"process {entry['name']}")
    container_names = [e["name"] for e in entries if e["kind"] == "container"]
    try:
        from lab.nodes import container

        removed, skipped = container.remove_containers(lab, container_names)
        report.removed += [f"container {n}" for n in removed]
        report.skipped += skipped
    except EnvironmentProblem as exc:
        if container_names:
            report.skipped.append(f"containers {', '.join(container_names)}: {exc.message}")
    for entry in entries:
        if entry["kind"] == "netns" and netns.delete(entry["name"]):
            report.removed.append(f"namespace {entry['name']}")
    for entry in entries:
        if entry["kind"] == "etcdir":
            path = Path(ETC_NETNS) / entry["name"]
            if path.parent == Path(ETC_NETNS) and path.name.startswith(names.PREFIX) and path.exists():
                shutil.rmtree(path, ignore_errors=True)
                report.removed.append(f"{path}")
    for entry in entries:
        if entry["kind"] == "file":
            try:
                os.unlink(entry["name"])
                report.removed.append(entry["name"])
            except FileNotFoundError:
                pass
    journal.remove()
    return report


def clean() -> list[Teardown]:
    """``down`` for every lab with a journal, then any container labelled as a lab's whose journal is gone."""
    netns.require_root()
    reports = [down(lab) for lab in labs_with_state()]
    try:
        from lab.nodes import container

        orphans = container.remove_orphans(known=set())
        if orphans:
            reports.append(Teardown("(no journal)", removed=[f"container {n}" for n in orphans]))
    except EnvironmentProblem:
        pass
    return reports


def journal_summary(lab: str) -> list[dict[str, Any]]:
    return Journal(lab).entries()
