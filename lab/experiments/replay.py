"""``lab check RUN_DIR``: a saved run's verdicts decided again from its files alone.

A run keeps what its steps observed, in order, in ``observations.json`` beside its pcaps:
every command's exit code and output, every background program's output and end, every
clock reading, the captures' file names, the lab's state (``lab.json``) and the parameters.
Checking a run calls the experiment's steps again with a :class:`ReplayRun`: each reading
returns the saved value instead of asking the lab, every change (a fault, a sysctl, a cable
pull) is only recorded, sleeps do not sleep, and the packets come from the run's own pcaps.
So the claims are computed again by today's code from that run's observations, on any
machine, with no lab, no root and no Docker: a run directory copied elsewhere checks there.

When the steps ask for something the run did not read at that point (the experiment's code
changed since), the check stops with an error verdict naming the first difference.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from lab.errors import InputError, LabError
from lab.experiments.context import Run
from lab.net import faults

SAVED = "observations.json"
FORMAT = 1


class ReplayDiverged(LabError):
    """The steps asked for a reading the saved run did not make at that point."""


def save(run: Run, experiment: str, overrides: dict[str, str], verdict: str, error: str | None) -> Path:
    """Write what ``lab check`` needs into the run's directory; return the file."""
    path = run.run_dir / SAVED
    path.write_text(json.dumps({
        "format": FORMAT, "experiment": experiment, "overrides": overrides, "parameters": vars(run.p),
        "verdict": verdict, "error": error, "lab_info": run.lab_info, "observations": run.observations,
        "uses": {name: {"source": str(use.source), "kind": use.kind} for name, use in run.uses.items()},
    }, indent=1, default=str))
    return path


class ReplayRun(Run):
    """A :class:`Run` whose readings are a saved run's, and whose changes touch nothing."""

    def __init__(self, lab_info: dict[str, Any], params: SimpleNamespace, run_dir: Path,
                 saved: list[dict[str, Any]]) -> None:
        super().__init__(lab_info, params, run_dir)
        self.replaying = True
        self._saved = saved
        self._next = 0

    def observe(self, kind: str, node: str, live: Callable[[], Any]) -> Any:
        if self._next >= len(self._saved):
            raise ReplayDiverged(f"the steps read {kind!r}{_on(node)} after the last of the run's "
                                 f"{len(self._saved)} readings: the experiment changed since this run")
        entry = self._saved[self._next]
        if entry.get("kind") != kind or entry.get("node") != node:
            raise ReplayDiverged(f"reading {self._next + 1}: the steps asked for {kind!r}{_on(node)} where the run "
                                 f"read {entry.get('kind')!r}{_on(str(entry.get('node')))}: "
                                 "the experiment changed since this run")
        self._next += 1
        self.observations.append(entry)
        return entry["value"]

    def _popen(self, node: str, argv: list[str]) -> subprocess.Popen[str] | None:
        return None

    def sleep(self, seconds: float) -> None:
        pass

    def _apply(self, fault: faults.Fault) -> None:
        pass

    def _undo(self, fault: faults.Fault) -> None:
        pass

    def _plug_back(self, where: str) -> None:
        pass

    @contextmanager
    def capture(self, points: list[str], bpf: str | None = "ip or arp", headers_only: bool = False) -> Iterator[None]:
        self._captures += 1
        for point in points:
            self.endpoint(point)  # a point the lab does not have fails here as it did in the run
        try:
            yield
        finally:
            saved = self.observe("capture", "", lambda: None)
            pcaps = {point: self.run_dir / name for point, name in saved["pcaps"].items()}
            missing = [str(p.name) for p in pcaps.values() if not p.exists()]
            if missing:
                raise InputError(f"{self.run_dir}: the run's capture {', '.join(missing)} is missing",
                                 "copy the whole run directory")
            self._captured(pcaps, int(saved["dropped"]))

    def cleanup(self) -> list[str]:
        return []


def _on(node: str) -> str:
    return f" on {node}" if node else ""


def load(run_dir: Path) -> dict[str, Any]:
    """The saved observations of ``run_dir``; InputError (exit 2) when it is not a run lab can check."""
    path = run_dir / SAVED
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: not a directory", "give a run's directory, e.g. runs/tcp-handshake-close-…")
    try:
        saved: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{run_dir}: not a run of lab (it has no {SAVED})",
                         "give a directory lab run made (under runs/ by default)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a saved run ({exc})") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT or "observations" not in saved:
        raise InputError(f"{path}: not a saved run of this lab (format {saved.get('format')!r}, "
                         f"expected {FORMAT})" if isinstance(saved, dict) else f"{path}: not a saved run")
    return saved
