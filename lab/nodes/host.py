"""A namespace node: commands run through ``ip netns exec`` (with the node's /etc/hosts)."""

from __future__ import annotations

from lab.nodes.base import Node


class HostNode(Node):
    def command(self, argv: list[str], env: dict[str, str] | None = None) -> list[str]:
        merged = {**self.env, **(env or {})}
        prefix = ["env", *[f"{k}={v}" for k, v in merged.items()]] if merged else []
        return ["ip", "netns", "exec", self.netns, *prefix, *argv]
