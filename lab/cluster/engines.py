"""Each machine's Docker engine, reached through its endpoint only, and its place in the Swarm.

``lab`` never assumes it shares a kernel with a machine: everything it learns about one
comes from that machine's engine (``info``) or from the Swarm manager (``nodes``). A machine
is the Swarm node whose ``lab.machine`` label is its name, else whose hostname is; the
manager is whichever listed engine says it is one.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lab.cluster import sshsocket
from lab.cluster.model import Cluster
from lab.errors import EnvironmentProblem

if TYPE_CHECKING:
    from docker import DockerClient

CONNECT_TIMEOUT = 10  # seconds an engine has to answer before it is named as not answering
OPERATION_TIMEOUT = 600  # seconds for one call once it has answered (loading images takes a while)
MACHINE_LABEL = "lab.machine"


@dataclass
class Engine:
    """One machine's engine: its client and what it said about itself."""

    machine: str
    client: DockerClient
    info: dict[str, Any]

    @property
    def swarm(self) -> dict[str, Any]:
        swarm: dict[str, Any] = self.info.get("Swarm") or {}
        return swarm

    @property
    def is_manager(self) -> bool:
        return bool(self.swarm.get("ControlAvailable"))

    @property
    def node_id(self) -> str:
        return str(self.swarm.get("NodeID") or "")


class EngineUnreachable(EnvironmentProblem):
    """A machine's engine did not answer (exit 3), named with its line in the cluster file."""


def connect(cluster: Cluster, machine: str, timeout: float = CONNECT_TIMEOUT) -> Engine:
    """A client for ``machine``'s engine and its ``info``; EngineUnreachable if it does not answer."""
    import docker
    import docker.errors
    import requests.exceptions

    spec = cluster.machines[machine]
    kwargs: dict[str, Any] = {"base_url": spec.engine, "timeout": timeout}
    tls = cluster.tls_paths(machine)
    if tls is not None:
        ca, cert, key = tls
        kwargs["tls"] = docker.tls.TLSConfig(ca_cert=ca, client_cert=(cert, key), verify=True)
    if spec.scheme == "ssh":
        kwargs["use_ssh_client"] = True  # the ssh command and its config, not a Python ssh library
        sshsocket.install()
    try:
        if tls is not None:
            kwargs["version"] = _api_version(kwargs)
        client = docker.DockerClient(**kwargs)
        client.api.trust_env = tls is None
        info = client.info()
        client.api.timeout = OPERATION_TIMEOUT  # it answered: later calls (an image load) may take long
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
        reason = (sshsocket.why_ssh_fails(spec.engine) if spec.scheme == "ssh" else None) or why(exc)
        raise EngineUnreachable(f"{cluster.where(machine)}: machine {machine}: its engine {spec.engine} does not "
                                f"answer ({reason})",
                                f"{unreachable_fix(cluster, machine, place_named=True)}; "
                                f"then: lab cluster doctor {cluster.path}"
                                ) from None
    return Engine(machine, client, info)


def why(exc: BaseException) -> str:
    """The reason at the bottom of docker-py's and requests' wrapping: ``connection refused``, not their tuples."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror[0].lower() + cause.strerror[1:]
        cause = cause.__cause__ or cause.__context__
    return str(exc).split("\n")[0][:200]


def _api_version(kwargs: dict[str, Any]) -> str:
    """The engine's API version, asked with the cluster's CA whatever the environment says.

    requests lets ``REQUESTS_CA_BUNDLE`` (set on many CI machines) override a session's own CA,
    so a TLS engine's client does not read the environment (``trust_env``); docker-py would ask
    the version before that can be set, so it is asked here first.
    """
    import docker

    probe = docker.APIClient(**kwargs, version="1.24")  # the oldest: only /version is asked with it
    probe.trust_env = False
    try:
        return str(probe.version(api_version=False)["ApiVersion"])
    finally:
        probe.close()


def unreachable_fix(cluster: Cluster, machine: str, place_named: bool = False) -> str:
    """What to do about a machine's engine that does not answer (``place_named``: the line already says where)."""
    spec = cluster.machines[machine]
    endpoint = "that endpoint" if place_named else f"the endpoint in {cluster.where(machine)}"
    if spec.scheme == "ssh":
        return (f"check that {sshsocket.check_command(spec.engine)} works from here (a key ssh offers, the "
                f"machine in known_hosts, docker for that user), or fix {endpoint}")
    return f"start the engine at {spec.engine}, or fix {endpoint}"


def try_connect_all(cluster: Cluster, timeout: float = CONNECT_TIMEOUT
                    ) -> tuple[dict[str, Engine], dict[str, str]]:
    """Like :func:`connect_all`, but returns the engines that answered and why each other did not."""
    names = list(cluster.machines)
    engines: dict[str, Engine] = {}
    failed: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(names)))) as pool:
        futures = {name: pool.submit(connect, cluster, name, timeout) for name in names}
    for name, future in futures.items():
        try:
            engines[name] = future.result()
        except EngineUnreachable as exc:
            failed[name] = exc.message
    return engines, failed


def manager(engines: dict[str, Engine]) -> Engine | None:
    """The first listed engine that is a Swarm manager (None when none is)."""
    return next((e for e in engines.values() if e.is_manager), None)


def machine_of(node: dict[str, Any]) -> str:
    """The machine name a Swarm node stands for: its ``lab.machine`` label, else its hostname."""
    labels = (node.get("Spec") or {}).get("Labels") or {}
    return str(labels.get(MACHINE_LABEL) or (node.get("Description") or {}).get("Hostname") or "")


def swarm_nodes(manager_engine: Engine) -> dict[str, dict[str, Any]]:
    """machine name → the Swarm node's attributes, as the manager lists them."""
    nodes = manager_engine.client.api.nodes()
    return {machine_of(n): n for n in nodes}
