"""Where a program runs inside one of a lab's network namespaces with the machine's own tools.

Faults (iptables, tc, sysctl), cable pulls and captures (tcpdump) act on a node's namespace, or
on the switch a LAN port hangs from, with the tools of the machine rather than those of the
node's image. :func:`node_namespace` and :func:`switch_namespace` say how, for any lab:

- on this machine, ``nsenter --net=/run/netns/<ns>`` (:class:`LocalNamespace`);
- on a cluster, through the node's machine's engine, in that machine's agent container (the
  host's network and PIDs, the tools): ``docker -H ENGINE exec AGENT python3 -m lab.cluster.agent
  run -- nsenter -t PID -n`` (:class:`MachineNamespace`); the agent gives the program a writable
  /proc/sys, and a signal reaches the program itself (see :class:`lab.nodes.container.ContainerNode`).

Both give argv lists, so a fault's commands and their undo are journaled the same way.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from lab import names
from lab.errors import EnvironmentProblem, LabNotFound
from lab.net.netns import netns_path


class Namespace(Protocol):
    """Runs programs inside one network namespace of a lab."""

    local: bool

    def command(self, argv: list[str]) -> list[str]: ...

    def machine_command(self, argv: list[str]) -> list[str]:
        """Run ``argv`` on the namespace's machine but in none of the lab's namespaces (they may be gone)."""
        ...

    def signal(self, popen: subprocess.Popen[Any], sig: int) -> None: ...

    def take_file(self, path: str) -> bytes: ...


@dataclass
class LocalNamespace:
    """A namespace on this machine, named in /run/netns."""

    netns: str
    local: bool = True

    def command(self, argv: list[str]) -> list[str]:
        return ["nsenter", f"--net={netns_path(self.netns)}", *argv]

    def machine_command(self, argv: list[str]) -> list[str]:
        return argv

    def signal(self, popen: subprocess.Popen[Any], sig: int) -> None:
        popen.send_signal(sig)

    def take_file(self, path: str) -> bytes:
        data = Path(path).read_bytes()
        Path(path).unlink()
        return data


class MachineNamespace:
    """The namespace of process ``pid`` on a cluster's machine, entered by that machine's agent."""

    local = False

    def __init__(self, lab: str, machine: str, machine_info: dict[str, Any], pid: int) -> None:
        from lab.nodes.container import ContainerNode

        self.machine = machine
        self.pid = pid
        self.agent = ContainerNode(lab, {"name": f"agent-{machine}", "kind": "container", "netns": "",
                                         "container": machine_info["agent"], "engine": machine_info["engine"],
                                         "tls": machine_info.get("tls")})

    def command(self, argv: list[str]) -> list[str]:
        return self.agent.command(["python3", "-m", "lab.cluster.agent", "run", "--",
                                   "nsenter", "-t", str(self.pid), "-n", *argv])

    def machine_command(self, argv: list[str]) -> list[str]:
        return self.agent.command(argv)

    def signal(self, popen: subprocess.Popen[Any], sig: int) -> None:
        self.agent.signal(popen, sig)

    def take_file(self, path: str) -> bytes:
        """A file the program wrote on the machine (in the agent's file system): its bytes, then it is gone."""
        got = subprocess.run(self.agent.command(["cat", path]), capture_output=True, timeout=300)
        subprocess.run(self.agent.command(["rm", "-f", path]), capture_output=True, timeout=60)
        if got.returncode != 0:
            why = (got.stderr.decode(errors="replace").strip().splitlines() or ["no answer"])[-1][:200]
            raise EnvironmentProblem(f"machine {self.machine}: cannot fetch the capture {path} ({why})",
                                     "was the lab taken down meanwhile? see: lab ls")
        return got.stdout


def node_namespace(lab_info: dict[str, Any], node: str) -> Namespace:
    spec = _spec(lab_info, node)
    if lab_info.get("cluster"):
        machine = spec["machine"]
        return MachineNamespace(lab_info["name"], machine, lab_info["machines"][machine], int(spec["pid"]))
    return LocalNamespace(spec["netns"])


def switch_namespace(lab_info: dict[str, Any], node: str) -> Namespace:
    """The switch that ``node``'s LAN ports hang from (on a cluster: the one on the node's machine)."""
    spec = _spec(lab_info, node)
    if lab_info.get("cluster"):
        machine = spec["machine"]
        info = lab_info["machines"][machine]
        return MachineNamespace(lab_info["name"], machine, info, int(info["switch_pid"]))
    return LocalNamespace(names.switch_netns(lab_info["name"]))


def _spec(lab_info: dict[str, Any], node: str) -> dict[str, Any]:
    nodes = lab_info["nodes"]
    if node not in nodes:
        raise LabNotFound(f"lab {lab_info['name']!r} has no node {node!r}", f"nodes: {', '.join(sorted(nodes))}")
    spec: dict[str, Any] = nodes[node]
    return spec
