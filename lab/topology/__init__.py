"""Topology files: the typed model, the loader (YAML + jinja2), addressing and validation.

The names below are imported when first asked for (PEP 562), not with the package: a verb that
needs only ``lab.topology.shipped`` or ``trust`` (``lab --help``, ``lab ls``) does not pay for
the pydantic models, YAML and jinja2.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lab.topology.loader import load_topology, load_topology_text
    from lab.topology.model import Interface, Link, Network, Node, Route, Topology

_HOMES = {"load_topology": "loader", "load_topology_text": "loader", "Interface": "model", "Link": "model",
          "Network": "model", "Node": "model", "Route": "model", "Topology": "model"}
__all__ = ["Interface", "Link", "Network", "Node", "Route", "Topology", "load_topology", "load_topology_text"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'lab.topology' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"lab.topology.{_HOMES[name]}"), name)
    globals()[name] = value
    return value
