"""Taking a cluster lab down, and sweeping what a killed ``up`` left, through every engine that answers."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lab import names
from lab.cluster import wiring
from lab.cluster.agents import run_agent
from lab.cluster.engines import Engine, manager, try_connect_all
from lab.cluster.images import ensure_image, local_tag
from lab.cluster.model import Cluster, cluster_from_record
from lab.errors import EnvironmentProblem
from lab.nodes.container import LABEL_LAB, labels_for
from lab.state import Journal
from lab.teardown import Teardown


def teardown(lab: str, journal: Journal) -> Teardown:
    """Remove what the journal names on every machine that answers; keep the journal for those that do not.

    Every machine at once: its VXLAN devices and firewall chain, undone by the lab's own agent as
    it stops (a throwaway one if it cannot), and every container labelled as the lab's; then the
    services, through the manager.
    """
    report = Teardown(lab)
    entries = journal.entries()
    cluster = cluster_from_record(entries[0]["cluster"])
    engines, failed = try_connect_all(cluster, timeout=5)
    lead = manager(engines)
    services = [e["name"] for e in entries if e["kind"] == "service"]
    # Containers first, on every machine at once (a task whose container is gone is not restarted:
    # restart policy none), then the services: faster than the Swarm stopping each task in turn.
    with ThreadPoolExecutor(max_workers=max(1, len(engines))) as pool:
        for removed, skipped in pool.map(lambda m: _clear_machine(lab, entries, m, engines[m]), sorted(engines)):
            report.removed += removed
            report.skipped += skipped
    if services and lead is None:
        report.skipped.append("services: no Swarm manager answers; lab down again once one does")
    elif lead is not None:
        ids = _remove_services(lead, lab, services, report)
        _sweep_late_tasks(lead, engines, lab, ids, report)
    for machine, why in failed.items():
        report.skipped.append(f"machine {machine}: {why}; lab down {lab} again once it answers")
    if not report.skipped:
        journal.remove()
    return report


def _remove_services(lead: Engine, lab: str, services: list[str], report: Teardown) -> set[str]:
    """Remove the lab's services through the manager; return their IDs (their tasks may outlive them briefly)."""
    import docker.errors

    existing = {s.name: s for s in lead.client.services.list(filters={"label": f"{LABEL_LAB}={lab}"})}
    others = [name for name in services if name not in existing]
    for name in others:  # journaled, but not labelled as this lab's: someone else's, unless it is gone
        try:
            service = lead.client.services.get(name)
        except docker.errors.NotFound:
            continue
        report.skipped.append(f"service {name}: not labelled as lab {lab!r}, left alone"
                              if service.attrs["Spec"].get("Labels", {}).get(LABEL_LAB) != lab else
                              f"service {name}: appeared while down ran; lab down {lab} again")

    def remove(service: Any) -> str:
        try:
            service.remove()
        except docker.errors.NotFound:
            pass
        return str(service.name)

    with ThreadPoolExecutor(max_workers=8) as pool:
        report.removed += [f"service {name}" for name in pool.map(remove, existing.values())]
    return {str(s.id) for s in existing.values()}


LIVE_TASK_STATES = {"new", "pending", "assigned", "accepted", "preparing", "ready", "starting", "running"}
SWEEP_TIMEOUT = 20.0  # seconds for the engines to end the tasks of removed services


def _sweep_late_tasks(lead: Engine, engines: dict[str, Engine], lab: str, service_ids: set[str],
                      report: Teardown) -> None:
    """Until no task of the removed services is live and no container of the lab is left on any machine.

    A task the engine was starting while ``down`` listed the containers (an ``up`` killed while it
    created services) gets its container after that listing; the engine removes it once its service
    is gone, in its own time. Waiting for that here means ``down`` returns with nothing left.
    """
    import docker.errors

    deadline = time.monotonic() + SWEEP_TIMEOUT
    label = {"label": f"{LABEL_LAB}={lab}"}
    while True:
        live = [t for t in lead.client.api.tasks() if t.get("ServiceID") in service_ids
                and (t.get("Status") or {}).get("State") in LIVE_TASK_STATES]
        left = {m: e.client.api.containers(all=True, filters=label) for m, e in engines.items()}
        if not live and not any(left.values()):
            return
        if time.monotonic() > deadline:
            report.skipped.append(f"{len(live)} tasks of removed services still live after {SWEEP_TIMEOUT:.0f} s; "
                                  f"lab down {lab} again")
            return
        for machine, containers in left.items():
            for c in containers:
                try:
                    engines[machine].client.api.remove_container(c["Id"], force=True)
                except docker.errors.APIError:
                    pass  # gone, or being removed by the engine: the next round sees
        time.sleep(0.1)


def _clear_machine(lab: str, entries: list[dict[str, Any]], machine: str, engine: Engine
                   ) -> tuple[list[str], list[str]]:
    """One machine's part of ``down``: the lab's containers removed, its agent stopped first; (removed, skipped).

    The agent undoes the machine's wiring as it stops; if it is not running, or its exit code says
    it did not (an agent of an older lab, an ``up`` killed before the agent kept anything), a
    throwaway agent does.

    Containers are listed with the engine's plain list call (``api.containers``), which reads no
    container one by one: the Swarm is removing some of them meanwhile.
    """
    import docker.errors

    removed: list[str] = []
    skipped: list[str] = []
    api = engine.client.api
    label = {"label": f"{LABEL_LAB}={lab}"}
    ours = api.containers(all=True, filters=label)
    vxlans = [e["name"] for e in entries if e["kind"] == "vxlan" and e["machine"] == machine]
    chain = next((e["name"] for e in entries if e["kind"] == "firewall" and e["machine"] == machine), None)
    agent = next((c for c in ours if f"/{names.PREFIX}{lab}._agent.{machine}" in c["Names"]), None)
    throwaway = f"{names.PREFIX}{lab}._unwire.{machine}"
    stale = [c for c in ours if f"/{throwaway}" in c["Names"]]  # an earlier down's, killed while it ran

    def unwire() -> None:
        """The VXLAN devices still in the machine's namespace and the firewall chain, by a throwaway agent."""
        ops = wiring.unwire(vxlans, chain)
        try:
            image = str(entries[0].get("agent") or local_tag("agent"))  # the image up ran on every machine
            ensure_image(engine, image, cluster_from_record(entries[0]["cluster"]).registry)
            run_agent(engine, image, ops, throwaway, labels_for(lab))
        except (EnvironmentProblem, docker.errors.APIError) as exc:
            skipped.append(f"machine {machine}: could not undo its VXLAN devices and firewall: {exc}")
        else:
            removed.extend(undone)

    def remove(c: dict[str, Any]) -> tuple[str, str | None]:
        name = c["Names"][0].lstrip("/") if c.get("Names") else c["Id"][:12]
        try:
            api.remove_container(c["Id"], force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if not (exc.status_code == 409 and "in progress" in str(exc)):  # another removal is on it
                return name, f"could not remove it: {exc.explanation or exc}"
        return name, None

    def retire_agent() -> list[tuple[str, str | None]]:
        """Stop the agent, which undoes the wiring as it goes (exit 0, see agent.serve); else a throwaway one does."""
        gone = [remove(c) for c in stale]  # first: the throwaway below takes its name
        if agent is not None and agent["State"] == "running" and _stop(api, agent["Id"]) == 0:
            removed.extend(undone)
        elif vxlans or chain:
            unwire()
        return gone + ([remove(agent)] if agent is not None else [])

    undone = [f"vxlan {v} on {machine}" for v in vxlans] + ([f"firewall {chain} on {machine}"] if chain else [])
    with ThreadPoolExecutor(max_workers=8) as pool:
        retiring = pool.submit(retire_agent)
        results = list(pool.map(remove, [c for c in ours if c is not agent and c not in stale]))
        results += retiring.result()
    for name, problem in results:
        if problem:
            skipped.append(f"container {name} on {machine}: {problem}")
        else:
            removed.append(f"container {name} on {machine}")
    return removed, skipped


AGENT_STOP_TIMEOUT = 10  # seconds the agent has to undo its machine's wiring before the engine kills it


def _stop(api: Any, container_id: str) -> int | None:
    """Stop a container (SIGTERM, then SIGKILL after AGENT_STOP_TIMEOUT); its exit code, None if unknown."""
    import docker.errors

    try:
        api.stop(container_id, timeout=AGENT_STOP_TIMEOUT)
        return int(api.inspect_container(container_id)["State"]["ExitCode"])
    except (docker.errors.APIError, KeyError, TypeError, ValueError):
        return None


def clean_orphans(cluster: Cluster) -> Teardown:
    """On every machine that answers: services and containers labelled as a lab of this state directory
    that has no journal here (its ``up`` was killed before the journal existed, or the state was lost)."""
    from lab.nodes.container import is_ours, remove_container
    from lab.state import labs_with_state

    report = Teardown("(no journal)")
    engines, failed = try_connect_all(cluster, timeout=5)
    alive = set(labs_with_state())
    lead = manager(engines)
    if lead is not None:
        for service in lead.client.services.list(filters={"label": LABEL_LAB}):
            labels = service.attrs["Spec"].get("Labels") or {}
            if labels.get(LABEL_LAB) not in alive and is_ours(labels):
                service.remove()
                report.removed.append(f"service {service.name}")
    for machine, engine in engines.items():
        for c in engine.client.containers.list(all=True, filters={"label": LABEL_LAB}):
            if c.labels.get(LABEL_LAB) in alive or not is_ours(c.labels):
                continue
            problem = remove_container(c)
            if problem:
                report.skipped.append(f"container {c.name} on {machine}: {problem}")
            else:
                report.removed.append(f"container {c.name} on {machine}")
    report.skipped += [f"machine {m}: {why}" for m, why in failed.items()]
    return report
