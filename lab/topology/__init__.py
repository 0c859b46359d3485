"""Topology files: the typed model, the loader (YAML + jinja2), addressing and validation."""

from lab.topology.loader import load_topology, load_topology_text
from lab.topology.model import Interface, Link, Network, Node, Route, Topology

__all__ = ["Interface", "Link", "Network", "Node", "Route", "Topology", "load_topology", "load_topology_text"]
