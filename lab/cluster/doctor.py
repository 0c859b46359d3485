"""``lab cluster doctor FILE``: every machine of a cluster checked through its engine, each problem with its fix.

One row per machine and check, as ``lab doctor`` prints for this machine: the engine answers,
it is a member of the Swarm the manager leads, the manager knows it by its name (label or
hostname) and lists it ready, its kernel and engine versions, and which of the lab images it
already holds (the rest are copied to it, or pulled from the cluster's registry, when a lab
needs them), and whether it reaches the registry.
"""

from __future__ import annotations

from typing import Any

from lab.cluster.engines import MACHINE_LABEL, Engine, manager, swarm_nodes, try_connect_all, unreachable_fix
from lab.cluster.model import Cluster, Registry
from lab.doctor import FAIL, OK, WARN, Check


def check_cluster(cluster: Cluster, local_images: list[str] | None = None) -> list[Check]:
    """The doctor's rows; ``local_images`` are the lab image tags the machine running lab has."""
    engines, failed = try_connect_all(cluster)
    checks: list[Check] = []
    lead = manager(engines)
    nodes = swarm_nodes(lead) if lead is not None else {}
    for machine in cluster.machines:
        where = cluster.where(machine)
        if machine in failed:
            checks.append(Check(f"{machine}: engine", FAIL, failed[machine].split(": ", 2)[-1],
                                unreachable_fix(cluster, machine)))
            continue
        engine = engines[machine]
        checks.append(Check(f"{machine}: engine", OK, f"Docker {engine.info.get('ServerVersion', '?')} at "
                                                      f"{cluster.machines[machine].engine}"))
        checks.append(membership(machine, engine, lead, nodes, where))
        checks.append(Check(f"{machine}: kernel", OK, f"{engine.info.get('KernelVersion', '?')} "
                                                      f"({engine.info.get('OperatingSystem', '?')})"))
        if cluster.registry is not None:
            checks.append(_registry(machine, engine, cluster.registry, local_images or []))
        if local_images is not None:
            wanted = [cluster.registry.reference(t) for t in local_images] if cluster.registry else local_images
            checks.append(_images(machine, engine, wanted, cluster.registry is not None))
            node = nodes.get(machine)
            agent = next((t for t in wanted if t.rpartition("/")[2].startswith("lab-agent:")), None)
            if node is not None and agent is not None:
                checks += underlay(machine, engine, agent, str((node.get("Status") or {}).get("Addr")))
    if lead is None and engines:
        checks.insert(0, Check("swarm: manager", FAIL, "none of the listed engines is a Swarm manager",
                               "list a manager's engine in the cluster file, or: docker swarm init on one machine"))
    elif lead is not None:
        checks.insert(0, Check("swarm: manager", OK, f"{lead.machine} ({len(nodes)} nodes in the Swarm)"))
    return checks


def membership(machine: str, engine: Engine, lead: Engine | None, nodes: dict[str, dict[str, Any]],
                where: str) -> Check:
    name = f"{machine}: swarm"
    state = engine.swarm.get("LocalNodeState")
    if state != "active":
        return Check(name, FAIL, f"the engine is not in a Swarm (state {state or 'inactive'})",
                     "join it: docker swarm join --token TOKEN MANAGER:2377 (docker swarm join-token worker "
                     "on the manager prints the line)")
    if lead is None:
        return Check(name, WARN, "in a Swarm, but no listed engine manages it")
    node = nodes.get(machine)
    if node is None or node.get("ID") != engine.node_id:
        known = next((n for n in nodes.values() if n.get("ID") == engine.node_id), None)
        if known is None:
            return Check(name, FAIL, f"{lead.machine}'s Swarm has no node for this engine",
                         f"join this engine to {lead.machine}'s Swarm")
        node_name = known["Description"]["Hostname"]
        return Check(name, FAIL, f"the Swarm calls this engine's node {node_name!r}, not {machine!r} ({where})",
                     f"on {lead.machine}: docker node update --label-add {MACHINE_LABEL}={machine} {known['ID'][:12]}")
    status = node.get("Status") or {}
    availability = (node.get("Spec") or {}).get("Availability")
    if status.get("State") != "ready":
        return Check(name, FAIL, f"node {node['ID'][:12]} is {status.get('State')} ({status.get('Message', '')})",
                     "start the machine's engine; the manager marks it ready when it is back")
    if availability != "active":
        return Check(name, WARN, f"node is ready but {availability}: the engine places nothing there",
                     f"docker node update --availability active {node['ID'][:12]}")
    return Check(name, OK, f"node {node['ID'][:12]}, ready, underlay address {status.get('Addr', '?')}")


def _images(machine: str, engine: Engine, wanted: list[str], pulled: bool) -> Check:
    held = {tag for image in engine.client.images.list() for tag in image.tags}
    missing = [t for t in wanted if t not in held]
    how = "pulled from the registry" if pulled else "copied to it"
    if not wanted:
        summary = f"none built where lab runs yet: lab up builds them, and they are {how} as a lab needs them"
    elif not missing:
        summary = f"holds all {len(wanted)} lab images built where lab runs"
    elif len(missing) == len(wanted):
        summary = f"holds none of the {len(wanted)} lab images yet; they are {how} when a lab needs them"
    else:
        summary = (f"holds {len(wanted) - len(missing)} of the {len(wanted)} lab images; the others are {how} "
                   "when a lab needs them")
    return Check(f"{machine}: images", OK, summary)


def _registry(machine: str, engine: Engine, registry: Registry, local_images: list[str]) -> Check:
    """Whether the machine's engine reaches the registry (asked for an image's manifest: found or not, it answered)."""
    from lab.cluster.images import RegistryUnreachable, registry_holds

    probe = registry.reference(next((t for t in local_images if t.startswith("lab-agent:")), "lab-agent:latest"))
    name = f"{machine}: registry"
    try:
        held = registry_holds(engine.client, probe)
        return Check(name, OK, f"reaches {registry.address}" + (" (it holds the lab agent)" if held else
                                                                 " (lab up pushes the images it lacks)"))
    except RegistryUnreachable as exc:
        text = str(exc)
        return Check(name, FAIL, f"cannot reach {registry.address}: {text[:160]}",
                     f"let the machine reach it; for plain HTTP add it to insecure-registries in {machine}'s "
                     "/etc/docker/daemon.json")


def underlay(machine: str, engine: Engine, agent: str, address: str) -> list[Check]:
    """Whether the machine makes VXLAN devices, and whether its underlay carries a 1500-byte link in VXLAN.

    A throwaway agent answers, when the machine holds the agent image (``lab up`` copies it there).
    """
    import secrets

    import docker.errors

    from lab.cluster.agents import run_agent
    from lab.cluster.wiring import DEFAULT_MTU, VXLAN_OVERHEAD

    try:
        engine.client.images.get(agent)
    except docker.errors.ImageNotFound:
        return [Check(f"{machine}: underlay", WARN, "not probed: the machine has no lab-agent image yet",
                      "lab up --cluster brings it there; run the doctor again afterwards")]
    token = secrets.token_hex(3)
    op = {"op": "probe", "address": address, "name": f"lvxp{token}", "vni": int(token, 16) or 1}
    found = run_agent(engine, agent, [op], f"lab-probe.{machine}.{token}", {})["probe"]
    checks = [Check(f"{machine}: vxlan", OK, "the kernel makes VXLAN devices") if found.get("vxlan") else
              Check(f"{machine}: vxlan", FAIL, f"the kernel makes no VXLAN devices ({found.get('vxlan_error')})",
                    "modprobe vxlan on that machine")]
    mtu, need = found.get("mtu"), DEFAULT_MTU + VXLAN_OVERHEAD
    if found.get("ifname") is None:
        checks.append(Check(f"{machine}: mtu", FAIL, f"no interface holds its Swarm address {address}",
                            "check the machine's Swarm advertise address"))
    elif int(mtu) >= need:
        checks.append(Check(f"{machine}: mtu", OK, f"{found['ifname']} MTU {mtu}: carries {DEFAULT_MTU}-byte links"))
    else:
        checks.append(Check(f"{machine}: mtu", FAIL, f"{found['ifname']} MTU {mtu}: a {DEFAULT_MTU}-byte link needs "
                                                     f"{need} ({VXLAN_OVERHEAD} bytes of VXLAN)",
                            f"raise it to {need}, or give the topology's links mtu: {int(mtu) - VXLAN_OVERHEAD}"))
    return checks
