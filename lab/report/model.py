"""What a run produced, as the reports read it.

The runner fills a :class:`RunResult`; the terminal, JSON and HTML renderers
only read it. Keeping the record plain (dataclasses, no behaviour) is what lets
a run be rendered again later, or by a child process's parent from its JSON.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lab.capture.records import Packet
from lab.experiments.expect import Verdict

VerdictKind = Literal["pass", "fail", "error"]


@dataclass
class StepRecord:
    """One step of a run: a command in a node (or a change such as a fault), and what it printed."""

    title: str
    command: str | None = None
    node: str | None = None
    rc: int | None = None
    stdout: str = ""
    stderr: str = ""
    started: float = 0.0
    duration: float = 0.0
    change: bool = False  # a change of the network (a fault, an impairment, a cable pulled or plugged back)


@dataclass
class ProcessRecord:
    """One process of a traced program (strace -f): who made it, what it ran, what it did that a claim reads."""

    node: str
    pid: int
    parent: int | None
    program: str
    did: list[str] = field(default_factory=list)  # the first calls that tell (accepted, forked, exec, …)
    calls: int = 0  # how many such calls in all


@dataclass
class RunResult:
    """Everything one experiment run produced, for the reports."""

    id: str
    title: str
    section: str
    topology: str
    parameters: dict[str, Any]
    verdict: str
    duration_s: float
    started: float
    expectations: list[Verdict] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)
    packets: list[Packet] = field(default_factory=list)
    pcaps: dict[str, str] = field(default_factory=dict)
    book_listing: str = ""
    modern_note: str = ""
    notes: list[str] = field(default_factory=list)  # what the run itself noticed (also in modern_note, for the page)
    error: str | None = None
    topology_svg: str | None = None
    run_dir: Path = field(default_factory=Path)
    html_path: Path | None = None
    hosts: dict[str, str] = field(default_factory=dict)  # IP address → node name, for the diagram's headings
    machines: dict[str, str] = field(default_factory=dict)  # node → the cluster machine it ran on (a cluster lab)
    processes: list[ProcessRecord] = field(default_factory=list)  # the traced programs' processes


def overall_verdict(expectations: Iterable[Verdict], error: str | None = None) -> VerdictKind:
    """A run's verdict: error if it could not be decided, fail if any expectation failed, else pass. Claims
    the run could not judge (``unjudged``) count for neither, but a run must judge at least one."""
    items = [v for v in expectations if v.verdict != "unjudged"]
    if error is not None or not items or any(v.verdict == "error" for v in items):
        return "error"
    return "pass" if all(v.ok for v in items) else "fail"
