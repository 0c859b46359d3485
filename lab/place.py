"""Where a lab runs: this machine, or the machines of a cluster. The one seam between ``up`` and them.

``lab.deploy.up`` is the one skeleton every lab is built by (checks, the lab's lock, a journal written
before anything is made, lab.json, impairments, adverts, and on any failure a rollback and one exit
code); what differs between the two places is asked of a :class:`Place`:
``lab.deploy.ThisMachine`` (namespaces, veths and bridges through netlink, containers through the
local engine) and ``lab.cluster.deploy.ClusterMachines`` (a Swarm service per node, each machine's
agent wiring its part). Where an existing lab runs is read from its journal (``down``) or lab.json
(``lab.nodes.namespace.node_namespace``, for exec, capture, faults and inspection).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from lab.plan import Plan
from lab.state import Journal
from lab.teardown import Teardown
from lab.topology.model import Topology

Progress = Callable[[str, int, int], None]


class Place(Protocol):
    """What building a lab asks of where it runs, in the order ``up`` asks it."""

    def check(self, topo: Topology) -> None:
        """What can be refused before anything else: no root here; a pin to a machine the cluster lacks."""
        ...

    def plan(self, topo: Topology) -> Plan:
        """The lab's plan (pure), refused if this place cannot build it (a cluster keeps a LAN on one bridge;
        this machine shards big ones)."""
        ...

    def ready(self, plan: Plan, topo: Topology, progress: Progress) -> None:
        """Under the lock, before the journal: taken names; the engines asked, images where they are needed."""
        ...

    def journal_head(self) -> dict[str, Any]:
        """What the journal's first line must say for a later ``down`` to find where the lab is."""
        ...

    def build(self, plan: Plan, topo: Topology, journal: Journal, progress: Progress) -> dict[str, Any]:
        """Make the nodes and wire them, each object journaled before it is made; the lab.json fields
        that say where each node is (``nodes``, ``switch``, and a cluster's ``cluster``, ``machines``)."""
        ...

    def advertise(self, plan: Plan, journal: Journal, progress: Progress) -> None:
        """Router advertisements (radvd) where the topology asks for them, waited for."""
        ...

    def teardown(self, lab: str, journal: Journal) -> Teardown:
        """Remove everything the journal names (also what a failed ``build`` left)."""
        ...
