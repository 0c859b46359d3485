"""The one ``up`` skeleton, driven through a recording Place: the order it asks, what lab.json gets, and
one rollback and one exit code for a failure, wherever the lab runs (no root, no kernel: a stand-in place)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lab import deploy
from lab.errors import EnvironmentProblem, InputError
from lab.plan import Plan, make_plan
from lab.state import Journal
from lab.teardown import Teardown
from lab.topology import load_topology_text
from lab.topology.model import Topology

TOPOLOGY = """\
name: seam
networks:
  lan: {subnet: 10.0.0.0/24}
nodes:
  a: {interfaces: {eth0: {network: lan, address: 10.0.0.1/24}}}
  b: {interfaces: {eth0: {network: lan, address: 10.0.0.2/24}}}
"""


class Recording:
    """A Place that makes nothing and says what it was asked, in order; ``fail`` raises in ``build``."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.asked: list[str] = []
        self.fail = fail

    def check(self, topo: Topology) -> None:
        self.asked.append("check")

    def plan(self, topo: Topology) -> Plan:
        self.asked.append("plan")
        return make_plan(topo)

    def ready(self, plan: Plan, topo: Topology, progress: Any) -> None:
        self.asked.append("ready")

    def journal_head(self) -> dict[str, Any]:
        self.asked.append("journal_head")
        return {"where": "nowhere"}

    def build(self, plan: Plan, topo: Topology, journal: Journal, progress: Any) -> dict[str, Any]:
        self.asked.append("build")
        journal.record([{"kind": "made", "name": "something"}])
        if self.fail is not None:
            raise self.fail
        return {"nodes": {n: {"where": "nowhere"} for n in plan.nodes}, "switch": None}

    def advertise(self, plan: Plan, journal: Journal, progress: Any) -> None:
        self.asked.append("advertise")

    def teardown(self, lab: str, journal: Journal) -> Teardown:
        self.asked.append("teardown")
        assert [e["kind"] for e in journal.entries()][-1] == "made"  # it sees what build journaled
        journal.remove()
        return Teardown(lab)


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LAB_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def topology() -> Topology:
    return load_topology_text(TOPOLOGY)[0]


def test_up_asks_the_place_in_order_and_writes_what_it_placed(state: Path) -> None:
    place = Recording()
    deploy.up(topology(), TOPOLOGY, "seam.yaml", where=place)
    assert place.asked == ["check", "plan", "ready", "journal_head", "build", "advertise"]
    info = json.loads((state / "seam" / "lab.json").read_text())
    assert info["nodes"] == {"a": {"where": "nowhere"}, "b": {"where": "nowhere"}} and info["file"] == "seam.yaml"
    assert Journal("seam").entries()[0]["where"] == "nowhere"


def test_a_failed_build_is_rolled_back_by_the_place_and_an_oserror_is_exit_3(state: Path) -> None:
    place = Recording(fail=OSError(28, "No space left on device"))
    with pytest.raises(EnvironmentProblem, match="could not build lab 'seam': No space left on device"):
        deploy.up(topology(), TOPOLOGY, where=place)
    assert place.asked[-1] == "teardown" and not Journal("seam").exists()


def test_a_lab_already_up_is_refused_before_the_place_is_readied(state: Path) -> None:
    deploy.up(topology(), TOPOLOGY, where=Recording())
    again = Recording()
    with pytest.raises(InputError, match="already up"):
        deploy.up(topology(), TOPOLOGY, where=again)
    assert again.asked == ["check", "plan"]
