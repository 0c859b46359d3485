"""pytest plugin (entry point ``lab``): fixtures that bring a lab up for a test and take it down.

    def test_ping(lab_factory):
        lab = lab_factory("topologies/book-lan.yaml")
        assert lab.exec("kongming20", ["ping", "-c1", "far-host"]).returncode == 0

Each lab gets a unique name, so tests can run side by side; every lab a test
made is taken down when the test ends, passed or failed.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from lab.nodes import Node


class LabHandle:
    """A running lab as a test sees it: its name, its nodes, exec into them."""

    def __init__(self, name: str) -> None:
        from lab import state

        self.name = name
        self.info: dict[str, Any] = state.read_lab_info(name)

    def node(self, name: str) -> Node:
        from lab.nodes import node_from_info

        return node_from_info(self.info, name)

    def exec(self, node: str, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.node(node).exec(argv, timeout=timeout)

    def ip(self, node: str, ifname: str | None = None) -> str | None:
        return self.node(node).address(ifname)


@pytest.fixture
def lab_factory() -> Iterator[Callable[..., LabHandle]]:
    """Call with a topology path (and optional jinja2 variables); returns a LabHandle. Taken down after the test."""
    from lab import deploy
    from lab.topology import load_topology

    made: list[str] = []

    def make(path: str | Path, name: str | None = None, **variables: str) -> LabHandle:
        topo, smap = load_topology(path, {k: str(v) for k, v in variables.items()})
        topo.name = name or f"t-{secrets.token_hex(4)}"
        made.append(topo.name)
        deploy.up(topo, smap.text, str(path))
        return LabHandle(topo.name)

    try:
        yield make
    finally:
        for name in reversed(made):
            deploy.down(name)
