"""A namespace node: commands run through ``ip netns exec`` (with the node's /etc/hosts)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from lab.nodes.base import NodeHandle


class HostNode(NodeHandle):
    def signal(self, popen: subprocess.Popen[Any], sig: int) -> None:
        """To the program's whole process group when it leads one (a run starts its programs in sessions of
        their own): strace and the program it traces, a sandbox's launcher and its init, end together,
        where a signal to strace alone would leave its program running."""
        try:
            if os.getpgid(popen.pid) == popen.pid:
                os.killpg(popen.pid, sig)
                return
        except ProcessLookupError:
            return
        popen.send_signal(sig)

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
