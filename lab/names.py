"""Kernel and Docker names for a lab's objects: stable, short, and impossible to confuse.

Namespaces are files under /run/netns, so their names may be long; interface
names are at most 15 bytes (IFNAMSIZ - 1), so long node or network names are
shortened with a stable hash rather than truncated into a collision.
"""

from __future__ import annotations

import base64
import hashlib

IFNAMSIZ = 15
LAB_NAME = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"  # a lab's name; it is a path under the state root too
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
    """The switch-side end of a node's veth: ``<node>-<if>`` when it fits, else ``<node[:5]>_<hash>``.

    The hash is 45 bits (9 base32 characters), so even 10,000 long names that
    share a prefix do not collide (6 hex digits did, from about 5,000). The
    '_' keeps shortened names apart from bridge names. Clashes between two
    literal names (``web-a``+``eth0`` and ``web``+``a-eth0``) are refused by
    the topology's validation.
    """
    name = f"{node}-{ifname}"
    if len(name) <= IFNAMSIZ:
        return name
    digest = base64.b32encode(hashlib.sha1(f"{node}\x1f{ifname}".encode()).digest()).decode().lower()
    return f"{node[:5]}_{digest[:9]}"
