"""A namespace node: commands run through ``ip netns exec`` (with the node's /etc/hosts)."""

from __future__ import annotations

from pathlib import Path

from lab.nodes.base import NodeHandle


class HostNode(NodeHandle):
    def command(self, argv: list[str], env: dict[str, str] | None = None) -> list[str]:
        merged = {"PYTHONPATH": programs_path(), **self.env, **(env or {})}
        prefix = ["env", *[f"{k}={v}" for k, v in merged.items()]]
        return ["ip", "netns", "exec", self.netns, *prefix, *argv]


def programs_path() -> str:
    """PYTHONPATH for a namespace node: where ``lab`` is, so the machine's own ``python3 -m lab.servers.<name>``
    finds the project's programs (stdlib only) from any directory, as a container node's image has them."""
    import os

    import lab

    here = str(Path(lab.__file__).resolve().parent.parent)
    inherited = os.environ.get("PYTHONPATH")
    return f"{here}{os.pathsep}{inherited}" if inherited else here
