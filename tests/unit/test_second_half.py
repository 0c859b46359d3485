"""The second half's experiments as the catalogue holds them: the parameter names a reader changes, and
where they can run."""

from __future__ import annotations

import pytest

from lab.cli.run import cluster_runnable
from lab.errors import InputError
from lab.experiments.engine import discover, find

FIXED = {
    "epoll-lt-et": {"size", "chunk"},
    "ephemeral-port-exhaustion": {"ports"},
    "keepalive-heartbeat": {"idle", "interval", "count"},
    "sigchld-reap-loop": {"children"},
    "udp-datagram-boundaries": {"sizes"},
    "emfile-accept-storm": {"nofile", "clients"},
}


@pytest.mark.parametrize("exp_id, names", FIXED.items())
def test_the_parameter_names_a_reader_changes_are_there(exp_id: str, names: set[str]) -> None:
    assert names <= set(find(exp_id).params)


def test_an_experiment_that_traces_with_the_machines_strace_runs_on_one_machine() -> None:
    catalogue = discover()
    traced = [e for e in catalogue.values() if "strace" in e.needs]
    assert traced and all(e.one_machine for e in traced)
    assert not find("listen-backlog").one_machine
    kept = cluster_runnable(list(catalogue.values()), all_=True)
    assert {e.id for e in kept} == {e.id for e in catalogue.values() if not e.one_machine}
    with pytest.raises(InputError, match="one machine only"):
        cluster_runnable([find("epoll-lt-et")], all_=False)


def test_run_all_starts_the_longest_first_and_reports_in_the_given_order(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from lab.experiments import runner

    catalogue = discover()
    chosen = [replace(catalogue[i], lasts=lasts) for i, lasts in
              (("arp-request-reply", 0.0), ("time-wait-client-bind", 61.0), ("rtt-rto", 12.0), ("dns-a-cname", 0.0))]
    started: list[str] = []

    def child(exp, args, out_dir, timeout):  # type: ignore[no-untyped-def]
        started.append(exp.id)
        return {"id": exp.id}

    monkeypatch.setattr(runner, "run_child", child)
    items = runner.run_many(chosen, {}, tmp_path, 1, [], lambda item: None)
    assert started == ["time-wait-client-bind", "rtt-rto", "arp-request-reply", "dns-a-cname"]
    assert [i["id"] for i in items] == ["arp-request-reply", "time-wait-client-bind", "rtt-rto", "dns-a-cname"]
