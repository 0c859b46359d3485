"""Node kinds behind one small protocol: run a command in the node, start a process in it.

``host`` and ``router`` nodes are plain namespaces (commands run through
``ip netns exec``, which also bind-mounts the node's /etc/hosts); ``container``
nodes are Docker containers whose network namespace the lab wired itself.
"""

from __future__ import annotations

from typing import Any

from lab.errors import LabNotFound
from lab.nodes.base import NodeHandle
from lab.nodes.host import HostNode


def node_from_info(lab_info: dict[str, Any], name: str) -> NodeHandle:
    """The handle for node ``name`` of a lab that is up (from its lab.json)."""
    nodes = lab_info["nodes"]
    if name not in nodes:
        raise LabNotFound(f"lab {lab_info['name']!r} has no node {name!r}", f"nodes: {', '.join(sorted(nodes))}")
    spec = nodes[name]
    if spec["kind"] == "container" or spec.get("engine"):  # every node of a cluster lab is a container
        from lab.nodes.container import ContainerNode

        return ContainerNode(lab_info["name"], spec)
    return HostNode(lab_info["name"], spec)


__all__ = ["NodeHandle", "HostNode", "node_from_info"]
