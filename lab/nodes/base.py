"""The protocol every node kind implements."""

from __future__ import annotations

import signal
import subprocess
from abc import ABC, abstractmethod
from typing import Any

from lab.net.netns import netns_path


class NodeHandle(ABC):
    """A running node: its name, namespace, interfaces, and a way to run commands inside it."""

    def __init__(self, lab: str, spec: dict[str, Any]) -> None:
        self.lab = lab
        self.name: str = spec["name"]
        self.kind: str = spec["kind"]
        self.netns: str = spec["netns"]
        self.env: dict[str, str] = dict(spec.get("env") or {})
        self.interfaces: dict[str, dict[str, Any]] = spec.get("interfaces") or {}

    @property
    def netns_path(self) -> str:
        return netns_path(self.netns)

    def address(self, ifname: str | None = None, family: int | None = None) -> str | None:
        """The node's address (without prefix) on ``ifname``, or on its first addressed interface.

        ``family`` 4 or 6 asks for that family; by default IPv4, or IPv6 where the node has no IPv4.
        """
        keys = {4: ["address"], 6: ["address6"], None: ["address", "address6"]}[family]
        for key in keys:
            for name, iface in self.interfaces.items():
                if (ifname is None or name == ifname) and iface.get(key):
                    return str(iface[key]).split("/")[0]
        return None

    @abstractmethod
    def command(self, argv: list[str], env: dict[str, str] | None = None) -> list[str]:
        """The argv that runs ``argv`` inside this node from the machine's shell-less exec."""

    def exec(
        self, argv: list[str], timeout: float | None = 60, env: dict[str, str] | None = None,
        input: str | None = None, check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the node to completion; its exit code is returned, never hidden.

        On ``timeout`` the program itself is killed (:meth:`signal`: for a container node
        that is the program inside, not only the ``docker exec`` client), then
        ``subprocess.TimeoutExpired`` is raised as ``subprocess.run`` would.
        """
        stdin = subprocess.PIPE if input is not None else None
        with self.popen(argv, env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
            try:
                out, err = proc.communicate(input, timeout=timeout)
            except subprocess.TimeoutExpired:
                self.signal(proc, signal.SIGKILL)
                proc.kill()
                out, err = proc.communicate()
                raise subprocess.TimeoutExpired(proc.args, timeout or 0, out, err) from None
        done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        if check:
            done.check_returncode()
        return done

    def signal(self, popen: subprocess.Popen[Any], sig: int) -> None:
        """Send ``sig`` to the program started with :meth:`popen` (the program itself, not a wrapper)."""
        popen.send_signal(sig)

    def popen(self, argv: list[str], env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a command in the node in the background (servers, captures)."""
        return subprocess.Popen(self.command(argv, env), **kwargs)
