"""The whole catalogue, for real: every experiment runs in its own lab and must hold.

One test per experiment (ids from the registry), so a failure names the
experiment; the run directory with report.html and the pcaps is kept under
pytest's tmp dir for a look.
"""

from __future__ import annotations

import os

import pytest

from lab.experiments.engine import discover
from lab.experiments.runner import run_one

pytestmark = pytest.mark.root
CATALOGUE = discover()


def needs_docker(exp_id: str) -> bool:
    return "book-web" in CATALOGUE[exp_id].topology


@pytest.mark.parametrize("exp_id", sorted(CATALOGUE))
def test_experiment_holds(exp_id: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    if needs_docker(exp_id) and os.environ.get("LAB_SKIP_DOCKER") == "1":
        pytest.skip("LAB_SKIP_DOCKER=1: container experiments not run")
    out = tmp_path_factory.mktemp(exp_id)
    result = run_one(CATALOGUE[exp_id], {}, out)
    failed = [f"{v.verdict.upper()} {v.description}: expected {v.expected}; observed {v.observed}"
              for v in result.expectations if not v.ok]
    assert result.verdict == "pass", (result.error or "") + "\n" + "\n".join(failed) + f"\nreport: {result.html_path}"
