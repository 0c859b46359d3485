"""The report of a ``down`` or ``clean``: one record, shared by one machine's teardown and a cluster's."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Teardown:
    """What ``down``/``clean`` removed and what it left alone (and why)."""

    lab: str
    removed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
