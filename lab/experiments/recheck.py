"""``lab check RUN_DIR``: decide a saved run again, from its files alone (see lab.experiments.replay).

Apart from replay, which the runner uses to save a run, so that replaying and running
do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lab.experiments.engine import find
from lab.experiments.expect import Verdict
from lab.experiments.replay import ReplayRun, load
from lab.experiments.runner import execute
from lab.report.model import overall_verdict
from lab.sandbox.program import UserProgram


@dataclass
class Checked:
    """A run decided again: today's verdicts from its observations, beside the run's own."""

    experiment: str
    run_dir: Path
    verdict: str
    was: str
    expectations: list[Verdict]
    error: str | None


def check(run_dir: Path, paths: list[Path] | None = None) -> Checked:
    """Decide ``run_dir`` again from its files (no lab, no root); the experiment's own failures become its verdict."""
    saved = load(run_dir)
    exp = find(str(saved["experiment"]), paths or [])
    params = exp.parameters({str(k): str(v) for k, v in (saved.get("overrides") or {}).items()})
    run = ReplayRun(saved["lab_info"], params, run_dir, list(saved["observations"]))
    run.uses = {name: UserProgram(name, Path(use["source"]), run_dir, use["kind"])  # the same steps as the run's
                for name, use in (saved.get("uses") or {}).items()}
    error = execute(exp, run, traceback_file=None)
    if error is None and not run.verdicts:
        error = "the experiment checked nothing (no expectation was recorded)"
    return Checked(exp.id, run_dir, overall_verdict(run.verdicts, error), str(saved.get("verdict")),
                   run.verdicts, error)
