"""A lab spread over a cluster: every node a Swarm service, every link made by each machine's agent.

A lab on a cluster is built by ``lab.deploy.up`` (the one skeleton) with
``where=ClusterMachines(cluster, smap, spread)``, in order (nothing is created before the checks pass):

1. the checks: every machine's engine answers and is a ready member of one Swarm, every pinned
   node names a machine of the cluster file, each machine makes VXLAN devices and its underlay
   fits the lab's largest link MTU plus VXLAN's 50 bytes (a probe run of the agent says);
2. images: built on the machine running lab (or found); each machine that lacks them pulls them
   from the cluster's registry (pushed there first if it lacks them), or, without a registry,
   gets them through its engine API (``docker save`` here, ``docker load`` there);
3. a Swarm service per node (one task, restart policy none, labels ``lab.name``/``lab.node``,
   a placement constraint ``node.labels.lab.machine==M`` when the topology pins it; the engine
   places the rest). Plain hosts and routers become light containers of ``lab-host`` and
   ``lab-router``: every node of a cluster lab is a container, so it is reached the same way;
4. the lab's agent on each machine (its main process holds the machine's switch, a namespace
   for the bridges, when the lab has LANs), then each agent wires its part (:mod:`lab.cluster.wiring`);
   (its /etc/hosts and resolv.conf included);
5. the daemons, started and waited for from inside; radvd in each router that advertises
   (``ra: true``), and the wait for its hosts' SLAAC addresses.

Everything is journaled before it is made, on which machine it is; ``down`` removes it through
the engines it can reach and keeps the journal for the ones it cannot, so a later ``down`` or
``clean`` finishes once they are back.
"""

from __future__ import annotations

import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from lab import names
from lab.cluster import wiring
from lab.cluster.agents import agent_ops, run_agent, start_agent, switch_pid
from lab.cluster.doctor import membership
from lab.cluster.engines import MACHINE_LABEL, Engine, manager, swarm_nodes, try_connect_all
from lab.cluster.images import distribute_images
from lab.cluster.model import Cluster, cluster_record
from lab.cluster.teardown import teardown
from lab.errors import EnvironmentProblem, TopologyError
from lab.net import adverts
from lab.nodes.container import CAPABILITIES, labels_for
from lab.place import Progress
from lab.plan import MAX_PORTS_PER_SHARD, Plan, make_plan
from lab.state import Journal, read_lab_info
from lab.teardown import Teardown
from lab.topology.model import Topology
from lab.topology.sourcemap import SourceMap

TASK_TIMEOUT = 90.0  # seconds for every node's task to run
# Plain nodes become light containers of lab-host (python3 and the project's programs, as a namespace
# host has them from the machine); a router is a host with forwarding on, its faults made by the agent.
KIND_IMAGES = {"host": "host", "router": "host"}


@dataclass
class Placed:
    """A node's running task: where the engine put it."""

    machine: str
    container: str  # container ID on that machine
    pid: int  # its init process, in the machine's PID namespace


def service_name(lab: str, node: str) -> str:
    """The node's Swarm service: a DNS name component (no dots, at most 63 characters, hashed when longer)."""
    base = f"{names.PREFIX}{lab}-{node}"
    if len(base) <= 63 and base == base.lower():
        return base
    return f"{base[:56].lower()}-{names.short_hash(lab, node)}"  # Kongming20 and kongming20 stay apart


def image_of(plan: Plan, node: str) -> str:
    spec = plan.nodes[node]
    return spec.image if spec.kind == "container" and spec.image else KIND_IMAGES.get(spec.kind, "host")


def check_pins(topo: Topology, smap: SourceMap, cluster: Cluster) -> None:
    """A node pinned to a machine the cluster file does not name is bad input: file:line, exit 2."""
    problems = [f"{smap.where(('nodes', name, 'machine'))}: nodes.{name}.machine: {node.machine!r} is not a "
                f"machine of {cluster.path} (machines: {', '.join(cluster.machines)})"
                for name, node in topo.nodes.items() if node.machine and node.machine not in cluster.machines]
    if problems:
        raise TopologyError(problems)


# --- up -------------------------------------------------------------------------------------


class ClusterMachines:
    """A lab over a cluster's machines (a :class:`lab.place.Place`): ``lab.deploy.up`` builds it with
    ``where=ClusterMachines(cluster, smap, spread)``; the steps are this module's docstring's."""

    def __init__(self, cluster: Cluster, smap: SourceMap, spread: bool = False) -> None:
        self.cluster, self.smap, self.spread = cluster, smap, spread
        self.engines: dict[str, Engine] = {}
        self.tags: dict[str, str] = {}
        self.machines: wiring.Machines | None = None

    def check(self, topo: Topology) -> None:
        check_pins(topo, self.smap, self.cluster)

    def plan(self, topo: Topology) -> Plan:
        plan = make_plan(topo, ports_per_shard=MAX_PORTS_PER_SHARD)  # a cluster's LAN is one bridge
        wiring.check_shape(plan)
        return plan

    def ready(self, plan: Plan, topo: Topology, progress: Progress) -> None:
        """The engines answer, the images are on every machine, each machine makes VXLAN and fits the MTU."""
        progress("asking the machines", 0, 1)
        self.engines = ready_engines(self.cluster)
        lead = manager(self.engines)
        assert lead is not None  # ready_engines refuses a cluster without one
        swarm = swarm_nodes(lead)
        underlay = {m: str(swarm[m]["Status"]["Addr"]) for m in self.engines}
        self.tags = distribute_images(self.engines, sorted({image_of(plan, n) for n in plan.nodes} | {"agent", "base"}),
                                      progress, self.cluster.registry)
        probes = probe(self.engines, self.tags["agent"], underlay, topo.name)
        wiring.check_fits(plan, {m: int(p["mtu"]) for m, p in probes.items()})
        self.machines = wiring.Machines(underlay, {m: str(p["ifname"]) for m, p in probes.items()})

    def journal_head(self) -> dict[str, Any]:
        return {"cluster": cluster_record(self.cluster), "agent": self.tags["agent"]}

    def build(self, plan: Plan, topo: Topology, journal: Journal, progress: Progress) -> dict[str, Any]:
        assert self.machines is not None, "ready() first"
        engines, cluster = self.engines, self.cluster
        lead = manager(engines)
        assert lead is not None
        with ThreadPoolExecutor(max_workers=1) as helper:  # the machines' own containers meanwhile
            made = helper.submit(_machine_containers, plan, engines, self.tags, journal)
            try:
                placed = _start_nodes(plan, topo, lead, self.tags, journal, progress, self.spread, sorted(engines))
            finally:
                machine_info = made.result()
        _wire(plan, placed, engines, self.machines, machine_info, journal, progress)
        _configure(plan, topo, placed, engines, progress)
        return {
            "cluster": cluster_record(cluster),
            "machines": {m: {**i, "engine": cluster.machines[m].engine, "tls": cluster.tls_paths(m)}
                         for m, i in machine_info.items()},
            "nodes": {n: {**vars(s), "machine": placed[n].machine, "container": placed[n].container,
                          "pid": placed[n].pid, "engine": cluster.machines[placed[n].machine].engine,
                          "tls": cluster.tls_paths(placed[n].machine)} for n, s in plan.nodes.items()},
            "switch": None,
        }

    def advertise(self, plan: Plan, journal: Journal, progress: Progress) -> None:
        adverts.start_in_nodes(plan, read_lab_info(plan.lab), progress)

    def teardown(self, lab: str, journal: Journal) -> Teardown:
        return teardown(lab, journal)


def ready_engines(cluster: Cluster) -> dict[str, Engine]:
    """Every machine's engine, each a ready member of the Swarm a listed manager leads; else exit 3."""
    engines, failed = try_connect_all(cluster)
    if failed:
        first = next(iter(failed))
        raise EnvironmentProblem(failed[first], f"check it with: lab cluster doctor {cluster.path}")
    lead = manager(engines)
    if lead is None:
        raise EnvironmentProblem(f"{cluster.path}: none of the machines' engines is a Swarm manager",
                                 "list a manager's engine in the cluster file, or: docker swarm init on one of them")
    nodes = swarm_nodes(lead)
    for machine, engine in engines.items():
        check = membership(machine, engine, lead, nodes, cluster.where(machine))
        if check.status != "ok":
            raise EnvironmentProblem(f"{cluster.where(machine)}: machine {machine}: {check.summary}", check.fix or None)
    return engines


def probe(engines: dict[str, Engine], agent_image: str, underlay: dict[str, str], lab: str
          ) -> dict[str, dict[str, Any]]:
    """Each machine's underlay interface, its MTU, and whether its kernel makes VXLAN devices (exit 3 if not).

    The probe's containers carry the lab's labels: should ``up`` be killed before its journal
    exists, ``lab clean --cluster FILE`` finds them.
    """
    def one(machine: str) -> tuple[str, dict[str, Any]]:
        token = secrets.token_hex(3)
        op = {"op": "probe", "address": underlay[machine], "name": f"lvxp{token}", "vni": int(token, 16) or 1}
        result = run_agent(engines[machine], agent_image, [op], f"lab-probe.{machine}.{token}", labels_for(lab))
        return machine, result["probe"]

    with ThreadPoolExecutor(max_workers=len(engines)) as pool:
        found = dict(pool.map(one, sorted(engines)))
    for machine, p in found.items():
        if not p.get("ifname"):
            raise EnvironmentProblem(f"machine {machine}: no interface holds its Swarm address {underlay[machine]}")
        if not p.get("vxlan"):
            raise EnvironmentProblem(f"machine {machine}: its kernel makes no VXLAN devices "
                                     f"({p.get('vxlan_error', 'unknown error')})", "modprobe vxlan on that machine")
    return found


def pin_constraint(machine: str, node: dict[str, Any]) -> str:
    """The placement constraint for a node pinned to ``machine``: by the label that names it, or by the
    hostname when that is how the Swarm knows it (see lab.cluster.engines.machine_of)."""
    labels = (node.get("Spec") or {}).get("Labels") or {}
    if labels.get(MACHINE_LABEL) == machine:
        return f"node.labels.{MACHINE_LABEL}=={machine}"
    return f"node.hostname=={machine}"


def _start_nodes(plan: Plan, topo: Topology, lead: Engine, tags: dict[str, str], journal: Journal, progress: Any,
                 spread: bool, machines: list[str]) -> dict[str, Placed]:
    """A Swarm service per node; wait until the engine has placed and started every task."""
    swarm = swarm_nodes(lead)
    import docker.errors
    import docker.types

    services = {n: service_name(plan.lab, n) for n in plan.nodes}
    journal.record([{"kind": "service", "name": s} for s in services.values()])
    progress("starting nodes", 0, len(services))
    ids: dict[str, str] = {}  # service ID -> node (a name may still list the tasks of an older namesake)

    def create(node: str, constraints: list[str] | None = None) -> None:
        spec = plan.nodes[node]
        pin = topo.nodes[node].machine
        constraints = [pin_constraint(pin, swarm[pin])] if pin else list(constraints or [])
        try:
            created = lead.client.services.create(
                tags[image_of(plan, node)], name=services[node], hostname=node, labels=labels_for(plan.lab, node),
                container_labels=labels_for(plan.lab, node), env=[f"{k}={v}" for k, v in spec.env.items()],
                cap_add=CAPABILITIES, init=True, constraints=constraints,
                restart_policy=docker.types.RestartPolicy(condition="none"),
                mode=docker.types.ServiceMode("replicated", replicas=1))
        except docker.errors.APIError as exc:
            raise EnvironmentProblem(f"node {node}: the Swarm manager {lead.machine} would not create service "
                                     f"{services[node]}: {exc.explanation or exc}") from None
        ids[created.id] = node

    free = [n for n in services if not topo.nodes[n].machine]
    machine_of_id = {n["ID"]: m for m, n in swarm.items()}
    held = {m: sum(1 for n in services if topo.nodes[n].machine == m) for m in machines}
    with ThreadPoolExecutor(max_workers=8) as pool:
        # pinned nodes (and, without --spread, every node) at once: the engine places them as it likes
        list(pool.map(create, [n for n in services if not spread or n not in free]))
        while spread and free:  # in rounds, each among the machines holding the fewest of this lab's nodes
            allowed = least_held(held)
            size = len(allowed) if min(held.values()) > 0 else 1  # one at a time until every machine has one
            batch, free = free[:size], free[size:]
            avoid = [f"node.id!={swarm[m]['ID']}" for m in sorted(swarm) if m not in allowed]
            list(pool.map(create, batch, [avoid] * len(batch)))
            for node in batch:
                service_id = next(i for i, n in ids.items() if n == node)
                held[machine_of_id[_wait_assigned(lead, node, service_id)]] += 1
    placed: dict[str, Placed] = {}
    deadline = time.monotonic() + TASK_TIMEOUT
    while len(placed) < len(services):
        for task in lead.client.api.tasks(filters={"service": list(ids)}):  # one call for every node
            owner = ids.get(task.get("ServiceID", ""))
            if owner is None or owner in placed:
                continue
            status = task.get("Status") or {}
            state = status.get("State")
            if state in ("failed", "rejected", "shutdown", "complete"):
                why = status.get("Err") or status.get("Message")
                raise EnvironmentProblem(f"node {owner}: its task {state}: {why}")
            cs = status.get("ContainerStatus") or {}
            if state == "running" and cs.get("ContainerID") and cs.get("PID"):
                placed[owner] = Placed(machine_of_id[task["NodeID"]], cs["ContainerID"], int(cs["PID"]))
        progress("starting nodes", len(placed), len(services))
        if len(placed) < len(services):
            if time.monotonic() > deadline:
                waiting = [n for n in services if n not in placed]
                first = next(i for i, n in ids.items() if n == waiting[0])
                raise EnvironmentProblem(f"nodes {', '.join(waiting[:5])} not running after {TASK_TIMEOUT:.0f} s"
                                         f" ({_pending_reason(lead, first)})", "see: lab cluster doctor")
            time.sleep(0.05)
    return placed


def least_held(held: dict[str, int]) -> list[str]:
    """The machines that hold the fewest of a lab's nodes so far: where ``--spread`` lets the next go.

    The Swarm scheduler balances each machine's load, every lab's tasks together, not one lab over
    the machines: beside a busier lab, all of a small lab's nodes would go to the least loaded
    machine, and services created together are placed together. So ``--spread`` asks for one node
    at a time until every machine holds one of the lab's (a small lab lands on as many machines as
    it can), then for rounds of as many nodes as there are machines holding the fewest, each node
    constrained to those machines; it waits for each round's placements before the next. The engine
    still chooses among them; a round that piles onto one machine is evened out by the next rounds.
    """
    fewest = min(held.values())
    return [m for m in sorted(held) if held[m] == fewest]


def _wait_assigned(lead: Engine, node: str, service_id: str) -> str:
    """The Swarm node ID the engine chose for the service's task, once it has."""
    deadline = time.monotonic() + TASK_TIMEOUT
    while time.monotonic() < deadline:
        for task in lead.client.api.tasks(filters={"service": service_id}):
            if task.get("NodeID"):
                return str(task["NodeID"])
        time.sleep(0.01)
    raise EnvironmentProblem(f"node {node}: no machine was chosen for it in {TASK_TIMEOUT:.0f} s "
                             f"({_pending_reason(lead, service_id)})")


def _pending_reason(lead: Engine, service_id: str) -> str:
    tasks = lead.client.api.tasks(filters={"service": service_id})
    return next((str((t.get("Status") or {}).get("Err") or (t.get("Status") or {}).get("Message"))
                 for t in tasks), "no task")


def _machine_containers(plan: Plan, engines: dict[str, Engine], tags: dict[str, str], journal: Journal
                        ) -> dict[str, dict[str, Any]]:
    """On every machine at once: the lab's agent, holding the machine's switch when the lab has LANs.

    Made on every machine of the cluster, not only those the engine will choose, so they are
    ready while the nodes start.
    """
    agents = {m: f"{names.PREFIX}{plan.lab}._agent.{m}" for m in engines}
    journal.record([{"kind": "machine-container", "machine": m, "name": a} for m, a in agents.items()])

    def one(machine: str) -> tuple[str, dict[str, Any]]:
        agent = start_agent(engines[machine], tags["agent"], agents[machine], labels_for(plan.lab),
                            switch=bool(plan.bridges))
        info: dict[str, Any] = {"agent": agent.id, "switch_pid": None}
        if plan.bridges:
            info["switch_pid"] = switch_pid(agent, machine)
        return machine, info

    with ThreadPoolExecutor(max_workers=len(engines)) as pool:
        return dict(pool.map(one, sorted(engines)))


def _wire(plan: Plan, placed: dict[str, Placed], engines: dict[str, Engine], machines: wiring.Machines,
          machine_info: dict[str, dict[str, Any]], journal: Journal, progress: Any) -> None:
    """Every machine's wiring (:mod:`lab.cluster.wiring`), carried out by its agents all at once."""
    placement = {n: p.machine for n, p in placed.items()}
    switch_pids = {m: int(i["switch_pid"]) for m, i in machine_info.items() if i["switch_pid"]}
    plan_ops = wiring.plan_wiring(plan, placement, {n: p.pid for n, p in placed.items()}, switch_pids, machines)
    journal.record([{"kind": "vxlan", "machine": m, "name": v} for m, vs in plan_ops.vxlans.items() for v in vs]
                   + [{"kind": "firewall", "machine": m, "name": c} for m, c in plan_ops.firewalls.items()])
    progress("wiring", 0, len(plan_ops.ops))

    def one(machine: str) -> None:
        agent = engines[machine].client.containers.get(machine_info[machine]["agent"])
        agent_ops(agent, machine, plan_ops.ops[machine])

    with ThreadPoolExecutor(max_workers=max(1, len(plan_ops.ops))) as pool:
        for done, _ in enumerate(pool.map(one, sorted(plan_ops.ops)), start=1):
            progress("wiring", done, len(plan_ops.ops))


def _configure(plan: Plan, topo: Topology, placed: dict[str, Placed], engines: dict[str, Engine],
               progress: Any) -> None:
    """The daemons of the container nodes, started and waited for from inside (the agents wrote /etc)."""
    from lab.services import plan_daemons, start_daemon, topology_dir, wait_ready

    daemons = plan_daemons(plan, topo, topology_dir(plan.lab))
    if not daemons:
        return
    containers = {d.node: engines[placed[d.node].machine].client.containers.get(placed[d.node].container)
                  for d in daemons}
    progress("starting services", 0, len(daemons))

    def run(d: Any) -> None:
        start_daemon(containers[d.node], d)
        wait_ready(None, d, containers[d.node])

    with ThreadPoolExecutor(max_workers=min(8, len(daemons))) as pool:
        list(pool.map(run, daemons))
