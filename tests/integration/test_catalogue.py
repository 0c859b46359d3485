"""The whole catalogue, for real: every experiment runs in its own lab and must hold.

One test per experiment (ids from the registry), so a failure names the
experiment; the run directory with report.html and the pcaps is kept under
pytest's tmp dir for a look. Each run is then decided again from its files
(``lab check``'s replay, with no lab): the same claims, the same observations.
"""

from __future__ import annotations

import os

import pytest

from lab.experiments.engine import discover
from lab.experiments.recheck import check
from lab.experiments.runner import run_one
from lab.report.model import RunResult

pytestmark = pytest.mark.root
CATALOGUE = discover()


def needs_docker(exp_id: str) -> bool:
    return "book-web" in CATALOGUE[exp_id].topology


def decided_again_alike(result: RunResult) -> None:
    """``lab check`` of the run's directory gives every claim the verdict and the observation the run gave."""
    checked = check(result.run_dir)
    assert checked.error is None, checked.error
    assert [(v.description, v.verdict, v.observed) for v in checked.expectations] == \
        [(v.description, v.verdict, v.observed) for v in result.expectations]
    assert checked.verdict == result.verdict == checked.was


@pytest.mark.parametrize("exp_id", sorted(CATALOGUE))
def test_experiment_holds(exp_id: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    if needs_docker(exp_id) and os.environ.get("LAB_SKIP_DOCKER") == "1":
        pytest.skip("LAB_SKIP_DOCKER=1: container experiments not run")
    out = tmp_path_factory.mktemp(exp_id)
    result = run_one(CATALOGUE[exp_id], {}, out)
    failed = [f"{v.verdict.upper()} {v.description}: expected {v.expected}; observed {v.observed}"
              for v in result.expectations if not v.ok]
    assert result.verdict == "pass", (result.error or "") + "\n" + "\n".join(failed) + f"\nreport: {result.html_path}"
    decided_again_alike(result)


OVER_IPV6 = sorted(i for i, e in CATALOGUE.items() if "family" in e.params)


def test_the_tcp_experiments_that_hold_over_ipv6_are_there() -> None:
    assert {"tcp-handshake-close", "rst-closed-port", "tcp-half-close", "tcp-connect-timeout",
            "time-wait-client-bind", "listen-backlog", "retransmit-cable-pull"} <= set(OVER_IPV6)
    assert all(CATALOGUE[i].topology6 == "book-lan6.yaml" for i in OVER_IPV6)


@pytest.mark.parametrize("exp_id", OVER_IPV6)
def test_experiment_holds_over_ipv6(exp_id: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The same experiment with -p family=6, on book-lan6, checked from its IPv6 captures."""
    out = tmp_path_factory.mktemp(f"{exp_id}-6")
    # time-wait-client-bind's 60 s wait for the port is the same timer in either family: run once, over IPv4
    overrides = {"family": "6", **({"wait_expiry": "false"} if "wait_expiry" in CATALOGUE[exp_id].params else {})}
    result = run_one(CATALOGUE[exp_id], overrides, out)
    failed = [f"{v.verdict.upper()} {v.description}: expected {v.expected}; observed {v.observed}"
              for v in result.expectations if not v.ok]
    assert result.verdict == "pass", (result.error or "") + "\n" + "\n".join(failed) + f"\nreport: {result.html_path}"
    assert result.topology != "" and any(":" in str(p.src) for p in result.packets if p.tcp), "no IPv6 segment"
    decided_again_alike(result)
