"""The agent's containers on a machine (lab/cluster/agent.py runs inside them), through its engine.

A lab keeps one per machine for its life (wiring, faults, captures); a throwaway one answers
a probe before a lab exists, or undoes a killed ``up``'s devices. Both have the machine's
network and PIDs and only the capabilities the plumbing needs.

The agent's main process (``agent serve``) idles until the engine stops it, and then undoes the
machine's part of the wiring that ``up`` gave it to keep (the ``on-stop`` operation): ``down``
stops the agent like any container, with no exec, and no Python started, on a busy engine.

The lab's agent also holds the machine's switch: beside its main process it runs ``unshare
--net sleep infinity``, whose network namespace (empty but for ``lo``) is where the machine's
LAN bridges go. (Not the main process itself: ``docker exec`` joins the main process's
namespaces, and the agent's work needs the machine's network.) One container per machine
instead of two, and the bridges vanish with the agent.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from lab.cluster.engines import Engine
from lab.errors import EnvironmentProblem

AGENT_CAPABILITIES = ["NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"]


def start_agent(engine: Engine, image: str, name: str, labels: dict[str, str], switch: bool = False,
                throwaway: bool = False) -> Any:
    """The machine's agent container: the host's network and PIDs, idle until lab asks it something or stops it.

    With ``switch``, a child of its main process sits in a network namespace of its own: the
    machine's switch (:func:`switch_pid` finds it). A ``throwaway`` agent's main process is a bare
    ``sleep``: it may run an older lab's image (``down`` of a lab that an older ``lab`` made),
    which has no ``serve``.
    """
    command = (["sleep", "infinity"] if throwaway else
               ["python3", "-m", "lab.cluster.agent", "serve", *(["--switch"] if switch else [])])
    return engine.client.containers.run(
        image, command, name=name, labels=labels, network_mode="host", pid_mode="host",
        cap_add=AGENT_CAPABILITIES, detach=True)


def agent_ops(container: Any, machine: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
    """Have a machine's agent carry out ``ops``; its JSON result, or exit 3 with what failed."""
    from lab.dockerexec import exec_run
    from lab.services import tar_files

    path = f"lab-agent/ops-{os.getpid()}-{time.monotonic_ns()}.json"
    container.put_archive("/", tar_files({path: json.dumps(ops).encode()}))
    code, output = exec_run(container, ["python3", "-m", "lab.cluster.agent", "--ops", f"/{path}"],
                            f"machine {machine}: the wiring agent")
    text = output.decode(errors="replace").strip()
    try:
        result: dict[str, Any] = json.loads(text.splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise EnvironmentProblem(f"machine {machine}: the wiring agent said nothing lab understands "
                                 f"(exit {code}): {text[-300:] or 'no output'}") from None
    if not result.get("ok"):
        raise EnvironmentProblem(f"machine {machine}: wiring failed at step {result.get('done', 0) + 1} "
                                 f"of {len(ops)}: {result.get('error')}")
    return result


SWITCH_TIMEOUT = 20.0  # seconds for an agent's main process to report its switch


def switch_pid(container: Any, machine: str) -> int:
    """The PID of the switch an agent started with ``switch=True`` holds, as its main process logs it.

    Read from the log rather than asked by an exec: no second process started on a busy engine.
    """
    deadline = time.monotonic() + SWITCH_TIMEOUT
    while True:
        for line in container.logs(stdout=True, stderr=False).decode(errors="replace").splitlines():
            if line.startswith('{"switch"'):
                return int(json.loads(line)["switch"])
        container.reload()
        if container.status not in ("created", "running"):
            raise EnvironmentProblem(f"machine {machine}: the wiring agent ended before it held a switch "
                                     f"({container.status}): "
                                     f"{container.logs(stderr=True).decode(errors='replace').strip()[-300:]}")
        if time.monotonic() > deadline:
            raise EnvironmentProblem(f"machine {machine}: the wiring agent held no switch after "
                                     f"{SWITCH_TIMEOUT:.0f} s")
        time.sleep(0.02)


def run_agent(engine: Engine, image: str, ops: list[dict[str, Any]], name: str, labels: dict[str, str]
              ) -> dict[str, Any]:
    """A throwaway agent on ``engine``'s machine for ``ops`` (a probe before a lab exists, a teardown)."""
    container = start_agent(engine, image, name, labels, throwaway=True)
    try:
        return agent_ops(container, engine.machine, ops)
    finally:
        container.remove(force=True)
