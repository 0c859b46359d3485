"""Shared test set-up: root-only tests are skipped, with the reason shown, when not root."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from uplink_watch import UplinkWatch, start_watch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: "test_zz_sealed.py" in item.nodeid)  # the uplink check ends the session
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root: creates namespaces, veths and captures")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def uplink_watch() -> Iterator[UplinkWatch | None]:
    """tcpdump on the machine's uplink for the whole session (root only); test_zz_sealed.py reads it."""
    watch = start_watch()
    try:
        yield watch
    finally:
        if watch is not None:
            watch.stop()
