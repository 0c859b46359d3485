"""pytest plugin (entry point ``lab``): fixtures that bring a lab up for a test and take it down.

    def test_loss_slows_the_transfer(lab_factory):
        lab = lab_factory("topologies/book-lan.yaml")
        lab.loss("router:eth1", 20.0)                     # the same verbs as an experiment's ``run``
        with lab.capture(["kongming20:eth0"], "icmp"):
            assert lab.exec("kongming20", ["ping", "-c3", "far-host"]).returncode in (0, 1)
        assert lab.packets                                # what the capture saw, decoded

The handle *is* the experiment API (:class:`lab.experiments.context.Run`): ``sh``, ``py``,
``spawn``, ``serve``, ``start``, ``capture``, ``sysctl``, ``drop``, ``reject``, ``loss``,
``rate``, ``impair``, ``link``, ``clear``, ``write_etc`` … with the same names and arguments,
plus ``exec`` (a plain ``subprocess.CompletedProcess``) and ``info``. Everything a verb
changes is undone when the test ends (programs stopped, faults and sysctls cleared), then
the lab goes down. Each lab gets a unique name, so tests can run side by side; every lab a
test made is taken down when the test ends, passed or failed. Captures are written under
the test's own temporary directory.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from lab.experiments.context import Run


class LabHandle(Run):
    """A running lab as a test sees it: the experiment API on it, and ``exec`` for a plain command."""

    def __init__(self, name: str, run_dir: Path) -> None:
        from lab import state

        super().__init__(state.read_lab_info(name), SimpleNamespace(), run_dir)
        self.name = name
        self.info: dict[str, Any] = self.lab_info

    def exec(self, node: str, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``argv`` in ``node`` as ``lab exec`` runs it (not recorded as a step)."""
        return self.node(node).exec(argv, timeout=timeout)


@pytest.fixture
def lab_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., LabHandle]]:
    """Call with a topology path (and optional jinja2 variables); returns a LabHandle. Taken down after the test."""
    from lab import deploy
    from lab.topology import load_topology

    made: list[LabHandle] = []

    def make(path: str | Path, name: str | None = None, **variables: str) -> LabHandle:
        topo, smap = load_topology(path, {k: str(v) for k, v in variables.items()})
        topo.name = name or f"t-{secrets.token_hex(4)}"
        deploy.up(topo, smap.text, str(path))
        handle = LabHandle(topo.name, tmp_path_factory.mktemp(topo.name))
        made.append(handle)
        return handle

    try:
        yield make
    finally:
        for handle in reversed(made):
            try:
                handle.cleanup()
            finally:
                deploy.down(handle.name)
