"""Container nodes: Docker containers with ``network_mode="none"`` whose links the lab wires itself.

The container starts with only loopback; the lab then names its network
namespace /run/netns/lab-<lab>.<node> and moves veths into it exactly as for a
namespace node, so one plumbing path serves both kinds. Every container
carries the labels ``lab.name`` and ``lab.node``, so ``down``/``clean`` find
them even when the journal is gone.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from lab import names
from lab.dockerclient import docker_client
from lab.errors import EnvironmentProblem
from lab.nodes.base import NodeHandle

if TYPE_CHECKING:

    from lab.plan import Plan
    from lab.state import Journal
    from lab.topology.model import Topology

LABEL_LAB = "lab.name"
LABEL_NODE = "lab.node"
LABEL_STATE = "lab.state"  # the state directory of the lab that made it: another one's containers are not ours
CAPABILITIES = ["NET_ADMIN", "NET_RAW"]


def start_containers(plan: Plan, topo: Topology, journal: Journal, progress: Any) -> dict[str, int]:
    """Start every container node concurrently; return node -> PID of its init process.

    The nodes' service configurations are rendered first, so a bad reference
    (an unknown network, a missing document) fails before anything starts;
    then the images are resolved (lab images built when missing).
    """
    from lab.images import ensure_images
    from lab.services import plan_daemons, topology_dir

    plan_daemons(plan, topo, topology_dir(plan.lab))
    client = docker_client()
    specs = [s for s in plan.nodes.values() if s.kind == "container"]
    resolved = ensure_images(client, sorted({s.image for s in specs if s.image}), progress)
    journal.record([{"kind": "container", "name": names.container_name(plan.lab, s.name)} for s in specs])

    def run(spec: Any) -> tuple[str, int]:
        import docker.errors

        name = names.container_name(plan.lab, spec.name)
        try:
            container = client.containers.run(
                resolved[spec.image],
                name=name,
                hostname=spec.name,
                labels=labels_for(plan.lab, spec.name),
                network_mode="none",
                cap_add=CAPABILITIES,
                environment=spec.env,
                detach=True,
                init=True,
            )
        except docker.errors.APIError as exc:
            text = str(exc.explanation or exc)
            hint = (f"a container {name} already exists: lab down {plan.lab}, or docker rm -f {name} if it "
                    "is not a lab's" if exc.status_code == 409 else "see: docker info; the Docker engine log")
            raise EnvironmentProblem(f"node {spec.name}: docker could not start {name}: {text[:200]}",
                                     hint) from None
        container.reload()
        pid = int(container.attrs["State"].get("Pid") or 0)
        if not container.attrs["State"].get("Running") or pid <= 0:
            logs = container.logs(tail=5).decode(errors="replace").strip()[-200:] or "no output"
            raise EnvironmentProblem(f"node {spec.name}: container {name} exited at once ({logs})",
                                     f"its image {resolved[spec.image]} must run a long-lived command")
        return spec.name, pid

    pids: dict[str, int] = {}
    with ThreadPoolExecutor(max_workers=min(16, max(1, len(specs)))) as pool:
        for done, (node, pid) in enumerate(pool.map(run, specs), start=1):
            pids[node] = pid
            progress("starting containers", done, len(specs))
    return pids


def _state_root() -> str:
    from lab.state import state_root

    return os.path.abspath(state_root())


def labels_for(lab: str, node: str | None = None) -> dict[str, str]:
    """The labels of a container (or a Swarm service) of ``lab``: how down and clean find it again."""
    labels = {LABEL_LAB: lab, LABEL_STATE: _state_root()}
    if node is not None:
        labels[LABEL_NODE] = node
    return labels


def is_ours(labels: dict[str, str]) -> bool:
    """Made under this state directory (containers from before the label count as the default one's)."""
    from lab.state import DEFAULT_ROOT

    return labels.get(LABEL_STATE, DEFAULT_ROOT) == _state_root()


def remove_containers(lab: str, journal_names: list[str]) -> tuple[list[str], list[str]]:
    """Remove the lab's containers: those the journal names that carry our labels, and any labelled ours."""
    if not journal_names:
        try:
            client = docker_client()
        except EnvironmentProblem:
            return [], []  # no engine, and the journal names no container: nothing of ours can exist
    else:
        client = docker_client()
    import docker.errors

    removed, skipped = [], []
    seen = set()
    labelled = []
    for c in client.containers.list(all=True, filters={"label": f"{LABEL_LAB}={lab}"}):
        if is_ours(c.labels):
            labelled.append(c)
        else:
            seen.add(c.name)
            skipped.append(f"container {c.name}: lab {lab!r} of another state directory "
                           f"({c.labels.get(LABEL_STATE)}), left alone")
    with ThreadPoolExecutor(max_workers=min(16, max(1, len(labelled)))) as pool:  # concurrently, as they started
        problems = list(pool.map(remove_container, labelled))
    for c, problem in zip(labelled, problems, strict=True):
        seen.add(c.name)
        if problem:
            skipped.append(f"container {c.name}: {problem}")
        else:
            removed.append(c.name)
    for name in journal_names:
        if name in seen:
            continue
        try:
            c = client.containers.get(name)
        except docker.errors.NotFound:
            continue
        if c.labels.get(LABEL_LAB) != lab or not is_ours(c.labels):
            skipped.append(f"container {name}: not labelled as lab {lab!r}, left alone")
            continue
        problem = remove_container(c)
        if problem:
            skipped.append(f"container {name}: {problem}")
        else:
            removed.append(name)
    return removed, skipped


def remove_container(container: Any) -> str | None:
    """Remove one container; a container already gone (or going) is not an error, others are said."""
    import docker.errors

    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        return None
    except docker.errors.APIError as exc:
        if exc.status_code == 409 and "in progress" in str(exc):
            return None  # another down/clean is removing it
        return f"could not remove it: {exc.explanation or exc}"
    return None


def remove_orphans(known: set[str]) -> tuple[list[str], list[str]]:
    """Containers labelled as a lab's of this state directory whose journal is gone (the state dir was lost).

    Returns (removed, skipped): containers of another state directory's labs are left alone, and said so.
    """
    from lab.state import labs_with_state

    try:
        client = docker_client()
    except EnvironmentProblem:
        return [], []
    alive = set(labs_with_state()) | known
    removed, skipped = [], []
    for c in client.containers.list(all=True, filters={"label": LABEL_LAB}):
        if c.labels.get(LABEL_LAB) in alive:
            continue
        if not is_ours(c.labels):
            skipped.append(f"container {c.name}: lab {c.labels.get(LABEL_LAB)!r} of another state directory "
                           f"({c.labels.get(LABEL_STATE)}), left alone")
            continue
        c.remove(force=True)
        removed.append(c.name)
    return removed, skipped


class ContainerNode(NodeHandle):
    """Commands run through ``docker exec``: the container's own capabilities, seccomp and cgroup apply.

    ``docker exec`` does not pass signals on to the command, so each command is
    started by a fixed two-line ``sh`` script that writes its PID (inside the
    container) to a file named by a random tag and then ``exec``s the command;
    :meth:`signal` reads that file and signals the program itself.
    """

    def __init__(self, lab: str, spec: dict[str, Any]) -> None:
        super().__init__(lab, spec)
        # On a cluster the node is a Swarm task on some machine: its container ID there, and that
        # machine's engine endpoint (the docker CLI reaches unix://, ssh:// and tcp:// alike).
        self.container = spec.get("container") or names.container_name(lab, self.name)
        self.docker = ["docker", *engine_flags(spec.get("engine"), spec.get("tls"))]

    def pid(self) -> int:
        client = docker_client()
        c = client.containers.get(self.container)
        return int(c.attrs["State"]["Pid"])

    def command(self, argv: list[str], env: dict[str, str] | None = None) -> list[str]:
        merged = {**self.env, **(env or {})}
        flags = [part for key, value in merged.items() for part in ("-e", f"{key}={value}")]
        script = f'echo $$ > {PIDFILE}{secrets.token_hex(6)}; exec "$@"'  # the command is "$@", never parsed
        return [*self.docker, "exec", "-i", *flags, self.container, "sh", "-c", script, "sh", *argv]

    def signal(self, popen: subprocess.Popen[Any], sig: int) -> None:
        args = popen.args if isinstance(popen.args, list) else []
        tag = next((m.group(1) for a in args if isinstance(a, str) and (m := PIDFILE_TAG.search(a))), None)
        if tag is not None:
            killed = subprocess.run([*self.docker, "exec", self.container, "sh", "-c",
                                     f'kill -{int(sig)} "$(cat {PIDFILE}{tag})"'], capture_output=True, timeout=15)
            if killed.returncode == 0:
                return
        popen.send_signal(sig)


def engine_flags(engine: str | None, tls: list[str] | None = None) -> list[str]:
    """The docker CLI's options for another machine's engine (none for this machine's own)."""
    if not engine:
        return []
    flags = ["-H", engine]
    if tls:
        ca, cert, key = tls
        flags += ["--tlsverify", f"--tlscacert={ca}", f"--tlscert={cert}", f"--tlskey={key}"]
    return flags


PIDFILE = "/tmp/.lab-exec-"
PIDFILE_TAG = re.compile(r"/tmp/\.lab-exec-([0-9a-f]{12});")
