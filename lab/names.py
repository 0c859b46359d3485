"""Kernel and Docker names for a lab's objects: stable, short, and impossible to confuse.

Namespaces are files under /run/netns, so their names may be long; interface
names are at most 15 bytes (IFNAMSIZ - 1), so long node or network names are
shortened with a stable hash rather than truncated into a collision.
"""

from __future__ import annotations

import hashlib

IFNAMSIZ = 15
PREFIX = "lab-"
SWITCH = "sw"


def netns_name(lab: str, node: str) -> str:
    """``lab-<lab>.<node>``; '.' can appear in neither name, so two labs never share a namespace."""
    return f"{PREFIX}{lab}.{node}"


def switch_netns(lab: str) -> str:
    """The namespace holding the lab's bridges ('_' cannot start a node name)."""
    return f"{PREFIX}{lab}._{SWITCH}"


def container_name(lab: str, node: str) -> str:
    return f"{PREFIX}{lab}.{node}"


def short_hash(*parts: str, length: int = 6) -> str:
    return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:length]


def bridge_name(network: str, shard: int = 0) -> str:
    """``br-<network>`` when it fits, else ``br-<hash>``; shards past the first get ``.N``."""
    suffix = f".{shard}" if shard else ""
    name = f"br-{network}{suffix}"
    if len(name) <= IFNAMSIZ:
        return name
    return f"br-{short_hash(network)}{suffix}"


def port_name(node: str, ifname: str) -> str:
    """The switch-side end of a node's veth: ``<node>-<if>`` when it fits, else shortened with a hash."""
    name = f"{node}-{ifname}"
    if len(name) <= IFNAMSIZ:
        return name
    return f"{node[:8]}-{short_hash(node, ifname)}"
