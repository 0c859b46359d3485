"""What a cluster file may say: the machines and how to reach each one's Docker engine.

```yaml
machines:
  m1: {engine: unix:///var/run/docker.sock}
  m2: {engine: ssh://root@10.0.0.2}
  m3: {engine: tcp://10.0.0.3:2376, tls: {ca: ca.pem, cert: cert.pem, key: key.pem}}
registry: {address: registry.example:5000}     # optional; push_from: m1 to push through m1's engine
```

A machine's name is its Swarm node's hostname, or the node's ``lab.machine`` label. TLS
paths are relative to the cluster file. Loaded by :func:`load_cluster` with the topology
loader's hardened YAML reader, so every problem is ``file:line: field: what is wrong``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from lab.errors import TopologyError
from lab.topology.model import MACHINE_NAME

ENGINE_SCHEMES = ("unix", "ssh", "tcp")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TLS(Strict):
    """Client certificates for a ``tcp://`` engine (paths relative to the cluster file)."""

    ca: Path
    cert: Path
    key: Path


class Machine(Strict):
    engine: str = Field(description="the engine's endpoint: unix:///path, ssh://user@host or tcp://host:port")
    tls: TLS | None = None

    @field_validator("engine")
    @classmethod
    def _engine_url(cls, value: str) -> str:
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in ENGINE_SCHEMES or not rest or any(c.isspace() for c in value):
            raise ValueError("expected an engine endpoint: unix:///var/run/docker.sock, ssh://user@host "
                             "or tcp://host:2376")
        if scheme == "unix" and not rest.startswith("/"):
            raise ValueError("a unix endpoint names an absolute socket path: unix:///var/run/docker.sock")
        return value

    @property
    def scheme(self) -> str:
        return self.engine.partition("://")[0]


MachineName = Annotated[str, StringConstraints(pattern=MACHINE_NAME)]
REGISTRY_ADDRESS = r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$"


class Registry(Strict):
    """Where the machines pull the lab images from, instead of receiving them through their engines.

    ``lab up`` pushes what the registry lacks, from the engine of the machine running lab, or
    from ``push_from``'s engine when only the cluster reaches the registry (the images are sent
    to that one machine first); every machine then pulls ``ADDRESS/lab-NAME:HASH``. The engines
    must trust the registry (TLS, or ``insecure-registries`` for plain HTTP), as for any pull.
    """

    address: str = Field(description="host[:port], as image references name it: registry.example:5000")
    push_from: MachineName | None = Field(None, description="a machine of this file whose engine pushes")

    @field_validator("address")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        if not re.fullmatch(REGISTRY_ADDRESS, value):
            raise ValueError("expected host[:port] as image references name it, e.g. registry.example:5000 "
                             "(no scheme, no path)")
        return value

    def reference(self, tag: str) -> str:
        """The registry's name for a local tag: ``lab-host:HASH`` → ``ADDRESS/lab-host:HASH``."""
        return f"{self.address}/{tag}"


class ClusterFile(Strict):
    machines: dict[MachineName, Machine] = Field(min_length=1)
    registry: Registry | None = None


class Cluster:
    """A loaded cluster file: its machines, and where it was read from (for TLS paths and messages)."""

    def __init__(self, spec: ClusterFile, path: Path, lines: dict[str, int],
                 tls: dict[str, tuple[str, str, str]] | None = None) -> None:
        self.spec = spec
        self.path = path
        self.lines = lines  # machine name → line of its entry
        # machine → (ca, cert, key), absolute: relative paths are the cluster file's
        self.tls = tls if tls is not None else {
            m: (_near(path, t.ca), _near(path, t.cert), _near(path, t.key))
            for m, machine in spec.machines.items() if (t := machine.tls) is not None}

    @property
    def machines(self) -> dict[str, Machine]:
        return self.spec.machines

    @property
    def registry(self) -> Registry | None:
        return self.spec.registry

    def where(self, machine: str) -> str:
        """``file:line`` of a machine's entry, for messages about it."""
        return f"{self.path}:{self.lines.get(machine, 1)}"

    def tls_paths(self, machine: str) -> tuple[str, str, str] | None:
        return self.tls.get(machine)


def _near(cluster_file: Path, path: Path) -> str:
    """A path the cluster file names: relative to the file's directory unless absolute."""
    return str(path if path.is_absolute() else cluster_file.parent / path)


def load_cluster(path: str | Path) -> Cluster:
    """Read and check a cluster file; raise TopologyError (exit 2) with file:line on any problem."""
    from lab.topology.loader import load_model_file

    spec, smap = load_model_file(path, ClusterFile, "cluster file")
    problems = []
    for name, machine in spec.machines.items():
        if machine.tls is not None and machine.scheme != "tcp":
            problems.append(f"{smap.where(('machines', name, 'tls'))}: machines.{name}.tls: TLS is for tcp:// "
                            f"engines (this one is {machine.scheme}://)")
        if machine.tls is not None:
            for key in ("ca", "cert", "key"):
                full = Path(_near(Path(path), getattr(machine.tls, key)))
                if not full.is_file():
                    problems.append(f"{smap.where(('machines', name, 'tls', key))}: machines.{name}.tls.{key}: "
                                    f"no such file {str(full)!r}")
    registry = spec.registry
    if registry is not None and registry.push_from is not None and registry.push_from not in spec.machines:
        problems.append(f"{smap.where(('registry', 'push_from'))}: registry.push_from: {registry.push_from!r} is not "
                        f"a machine of this file (machines: {', '.join(spec.machines)})")
    if problems:
        raise TopologyError(problems)
    lines = {name: smap.line_of(("machines", name)) for name in spec.machines}
    return Cluster(spec, Path(path), lines)


def cluster_record(cluster: Cluster) -> dict[str, Any]:
    """What the journal keeps of the cluster file, so every other verb finds the machines without it."""
    return {"file": str(cluster.path.resolve()), "spec": json.loads(cluster.spec.model_dump_json()),
            "tls": {m: list(paths) for m, paths in cluster.tls.items()}}


def cluster_from_record(record: dict[str, Any]) -> Cluster:
    spec = ClusterFile.model_validate(record["spec"])
    tls = {m: (str(p[0]), str(p[1]), str(p[2])) for m, p in (record.get("tls") or {}).items()}
    return Cluster(spec, Path(record["file"]), {}, tls)
