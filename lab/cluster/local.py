"""A simulated cluster on this one machine: ``lab cluster local up N`` / ``lab cluster local down``.

Each machine is what a real one would be to ``lab``: a Docker engine at an endpoint, and a
member of one Swarm. Here a machine is

- a network namespace ``labc-<cluster>.<machine>`` with one underlay interface ``eth0``
  (198.18.0.<i>/24, RFC 2544's benchmarking range, MTU 1550 so that VXLAN carries full
  1500-byte frames) into a bridge in the cluster's own switch namespace ``labc-<cluster>._ul``;
  no default route, so nothing of it can leave;
- its own dockerd (``--data-root``, ``--exec-root``, ``--pidfile``, a socket of its own,
  ``--bridge=none`` so a task gets no network lab did not make, ``--iptables=false``,
  ``--cgroup-parent`` of its own), in a UTS namespace named after the machine and a private
  mount namespace (:mod:`lab.cluster.boot`), started in a session of its own.

The first machine inits the Swarm; the others join it; every node gets the label
``lab.machine=<name>``. With ``--registry`` the switch namespace also holds a registry (Debian's
``docker-registry``, plain HTTP at 198.18.0.254:5000, which the machines' engines are told to
trust): the cluster file names it, with ``push_from: m1``, since only the machines reach it.
With ``--tls`` every engine also listens on ``tcp://<its underlay address>:2376`` and answers
only a client with a certificate of the cluster's own CA (:mod:`lab.cluster.certs`); a second
file, ``cluster-tcp.yaml``, names the engines so. Only the underlay reaches those addresses:
its namespace (``labc-<cluster>._ul``, 198.18.0.254) is where ``lab`` runs to use it, as if from
a workstation that shares nothing with the machines but the network.
What is made is journaled before it exists (namespaces, the data
directory, the cgroups) or right after (the engine processes, by PID and start time), in
``$LAB_STATE_DIR/_clusters/<cluster>/``; ``down`` removes exactly that, and is idempotent.
The machine's own Docker engine is never touched.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab import procs
from lab.cluster import certs, leftovers
from lab.errors import EnvironmentProblem, InputError
from lab.state import Journal, ensure_root_dir, state_root

DEFAULT_NAME = "local"
MAX_MACHINES = 9
UNDERLAY = ipaddress.ip_network("198.18.0.0/24")
UNDERLAY_MTU = 1550
BRIDGE = "ul0"
WORKSTATION_ADDRESS = ipaddress.IPv4Interface(f"{UNDERLAY.broadcast_address - 1}/{UNDERLAY.prefixlen}")
REGISTRY_PORT = 5000
TLS_PORT = 2376
ENGINE_START_TIMEOUT = 60.0
ENGINE_STOP_GRACE = 20.0
CGROUP_ROOT = Path("/sys/fs/cgroup")
DATA_ROOT = Path(os.environ.get("LAB_CLUSTER_DATA", "/var/lib/lab/clusters"))

Progress = Callable[[str], None]


def _no_progress(step: str) -> None:
    pass


def cluster_dir(name: str) -> Path:
    return state_root() / "_clusters" / name


def cluster_file(name: str) -> Path:
    """The cluster file ``up`` writes: what ``--cluster`` takes."""
    return cluster_dir(name) / "cluster.yaml"


def tcp_cluster_file(name: str) -> Path:
    """With ``--tls``: the same machines, their engines named by ``tcp://`` and TLS (usable from the underlay)."""
    return cluster_dir(name) / "cluster-tcp.yaml"


def machine_names(count: int) -> list[str]:
    return [f"m{i}" for i in range(1, count + 1)]


def netns_name(name: str, machine: str) -> str:
    return f"labc-{name}.{machine}"


def underlay_address(index: int) -> ipaddress.IPv4Interface:
    """The ``index``-th machine's (1-based) underlay address."""
    return ipaddress.IPv4Interface(f"{UNDERLAY.network_address + index}/{UNDERLAY.prefixlen}")


def socket_path(name: str, machine: str) -> Path:
    return cluster_dir(name) / machine / "docker.sock"


def cgroup_parent(name: str, machine: str) -> str:
    return f"lab-cluster-{name}-{machine}"


def is_up(name: str) -> bool:
    """Whether a local cluster of that name has a journal here (up, or interrupted)."""
    return Journal(f"cluster {check_name(name)}", cluster_dir(name)).exists()


def check_name(name: str) -> str:
    import re

    if not re.fullmatch(r"[a-z][a-z0-9]{0,7}", name):
        raise InputError(f"cluster name {name!r}: expected up to 8 lower-case letters and digits, starting with a "
                         "letter", "e.g. --name local")
    return name


# --- up -------------------------------------------------------------------------------------


def registry_endpoint() -> str:
    return f"{WORKSTATION_ADDRESS.ip}:{REGISTRY_PORT}"


def up(count: int, name: str = DEFAULT_NAME, mtu: int = UNDERLAY_MTU, progress: Progress = _no_progress,
       registry: bool = False, tls: bool = False) -> Path:
    """Make ``count`` machines, join them into a Swarm, write the cluster file; return its path.

    On any failure everything made so far is removed again (``down``) before the error is raised.
    """
    check_name(name)
    if not 1 <= count <= MAX_MACHINES:
        raise InputError(f"a local cluster has 1 to {MAX_MACHINES} machines (asked for {count})")
    if not 1280 <= mtu <= 9000:
        raise InputError(f"--mtu {mtu}: expected 1280 to 9000")
    _require_tools()
    registry_binary = _registry_binary() if registry else None
    ensure_root_dir()
    journal = Journal(f"cluster {name}", cluster_dir(name))
    if journal.exists():
        raise InputError(f"a local cluster named {name!r} is up already (its file: {cluster_file(name)})",
                         f"use it, or remove it first: lab cluster local down --name {name}")
    machines = machine_names(count)
    try:
        journal.start({"kind": "cluster", "machines": machines, "data": str(DATA_ROOT / name)})
        progress(f"underlay: {count} namespaces on a bridge, MTU {mtu}")
        _make_underlay(journal, name, machines, mtu)
        if tls:
            progress("tls: a CA, a certificate per engine and one for lab")
            certs.make_all(cluster_dir(name) / "tls", {m: str(underlay_address(i).ip)
                                                       for i, m in enumerate(machines, start=1)})
        if registry_binary is not None:
            progress(f"registry: {registry_endpoint()} in the underlay's namespace")
            _start_registry(journal, name, registry_binary)
        progress(f"engines: starting {count} dockerd")
        for index, machine in enumerate(machines, start=1):
            _start_engine(journal, name, machine, index, registry, tls)
        clients = {m: _wait_for_engine(name, m) for m in machines}
        progress("swarm: init and join")
        _form_swarm(clients, machines)
        if registry_binary is not None:
            _wait_for_registry(name)
        path = _write_cluster_file(name, machines, mtu, registry)
        if tls:
            _write_cluster_file(name, machines, mtu, registry, tls=True)
    except BaseException:
        down(name)
        raise
    progress(f"cluster {name}: {count} machines ready")
    return path


def _require_tools() -> None:
    if os.geteuid() != 0:
        raise EnvironmentProblem("a local cluster needs root (namespaces, engines)", "run lab as root")
    for tool, package in (("dockerd", "docker.io"), ("ip", "iproute2"), ("nsenter", "util-linux"),
                          ("unshare", "util-linux")):
        if shutil.which(tool) is None:
            raise EnvironmentProblem(f"{tool} is not installed",
                                     f"apt-get install {package} (or: bash scripts/setup.sh)")


def _registry_binary() -> str:
    """Debian's ``docker-registry`` binary: installed, or unpacked by scripts/setup.sh (no service of it runs)."""
    unpacked = Path(_package_parent()) / ".cache" / "registry" / "usr" / "bin" / "docker-registry"
    found = shutil.which("docker-registry") or (str(unpacked) if os.access(unpacked, os.X_OK) else None)
    if found is None:
        raise EnvironmentProblem("--registry needs Debian's docker-registry binary",
                                 "bash scripts/setup.sh (unpacks it without its service), or: "
                                 "apt-get install docker-registry")
    return found


def _start_registry(journal: Journal, name: str, binary: str) -> None:
    """A plain-HTTP registry on the underlay (its address on the bridge), its storage in the data root."""
    storage = DATA_ROOT / name / "registry"
    journal.record([{"kind": "dir", "name": str(storage)}])
    storage.mkdir(mode=0o700, parents=True, exist_ok=True)
    switch = netns_name(name, "_ul")
    config = cluster_dir(name) / "registry.yml"
    config.write_text("version: 0.1\nlog: {level: warn}\nstorage:\n  filesystem: {rootdirectory: "
                      f"{storage}}}\nhttp: {{addr: \"{registry_endpoint()}\"}}\n")
    log = open(cluster_dir(name) / "registry.log", "ab")  # noqa: SIM115 - the registry's, kept open by it
    try:
        proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{switch}", "--", binary, "serve", str(config)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    finally:
        log.close()
    journal.record([procs.process_record(proc.pid, "registry", switch)])


def _wait_for_registry(name: str) -> None:
    """Until the registry listens (seen from its own namespace: this machine has no route to the underlay)."""
    deadline = time.monotonic() + ENGINE_START_TIMEOUT
    port = f":{REGISTRY_PORT}"
    while True:
        listing = subprocess.run(["ip", "netns", "exec", netns_name(name, "_ul"), "ss", "-Hltn"],
                                 capture_output=True, text=True, timeout=30).stdout
        if any(line.split()[3].endswith(port) for line in listing.splitlines() if len(line.split()) > 3):
            return
        if time.monotonic() > deadline:
            raise EnvironmentProblem(f"the local registry did not listen within {ENGINE_START_TIMEOUT:.0f} s",
                                     f"see {cluster_dir(name) / 'registry.log'}")
        time.sleep(0.1)


def _ip(*args: str, stdin: str | None = None) -> None:
    result = subprocess.run(["ip", *args], input=stdin, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise EnvironmentProblem(f"ip {' '.join(args)}: {result.stderr.strip() or 'failed'}")


def _make_underlay(journal: Journal, name: str, machines: list[str], mtu: int) -> None:
    """The machines' namespaces on one bridge, which has 198.18.0.254 too (the workstation's address).

    That address is where the registry listens and where ``lab`` reaches ``tcp://`` and ``ssh://``
    engines from; nothing on the bridge routes anywhere else.
    """
    switch = netns_name(name, "_ul")
    spaces = [switch] + [netns_name(name, m) for m in machines]
    journal.record([{"kind": "netns", "name": ns} for ns in spaces])
    for ns in spaces:
        _ip("netns", "add", ns)
    batch = [f"link add {BRIDGE} mtu {mtu} type bridge", f"link set {BRIDGE} up", "link set lo up"]
    for machine in machines:
        port = f"u-{machine}"
        batch += [f"link add {port} mtu {mtu} type veth peer name eth0 mtu {mtu} netns {netns_name(name, machine)}",
                  f"link set {port} master {BRIDGE} up"]
    _ip("-n", switch, "-batch", "-", stdin="\n".join(batch) + "\n")
    for i, machine in enumerate(machines, start=1):
        _ip("-n", netns_name(name, machine), "-batch", "-",
            stdin=f"link set lo up\nlink set eth0 up\naddr add {underlay_address(i)} dev eth0\n")
    _ip("-n", switch, "addr", "add", str(WORKSTATION_ADDRESS), "dev", BRIDGE)


def _start_engine(journal: Journal, name: str, machine: str, index: int, registry: bool = False,
                  tls: bool = False) -> None:
    home = cluster_dir(name) / machine
    data = DATA_ROOT / name / machine
    etc = home / "etc-docker"
    journal.record([{"kind": "dir", "name": str(data)},
                    *({"kind": "cgroup", "name": str(CGROUP_ROOT / c / cgroup_parent(name, machine))}
                      for c in _cgroup_controllers())])
    for d in (home, etc, data):
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
    config = home / "daemon.json"
    # nothing of this machine's own /etc/docker/daemon.json; the local registry speaks plain HTTP
    config.write_text(json.dumps({"insecure-registries": [registry_endpoint()]} if registry else {}) + "\n")
    command = [
        "nsenter", f"--net=/run/netns/{netns_name(name, machine)}", "--",
        "unshare", "--uts", "--mount", "--propagation", "slave", "--",
        sys.executable, "-m", "lab.cluster.boot", "--hostname", machine, "--etc-docker", str(etc), "--",
        "dockerd", f"--config-file={config}", f"--data-root={data}", f"--exec-root={home / 'exec'}",
        f"--pidfile={home / 'docker.pid'}", f"--host=unix://{socket_path(name, machine)}",
        "--bridge=none", "--iptables=false", "--ip-masq=false", "--ip-forward=false", "--userland-proxy=false",
        f"--cgroup-parent=/{cgroup_parent(name, machine)}", "--log-level=warn",
    ]
    if tls:
        directory = cluster_dir(name) / "tls"
        command += [f"--host=tcp://{underlay_address(index).ip}:{TLS_PORT}", "--tlsverify",
                    f"--tlscacert={directory / 'ca.pem'}", f"--tlscert={directory / f'{machine}-cert.pem'}",
                    f"--tlskey={directory / f'{machine}-key.pem'}"]
    log = open(home / "dockerd.log", "ab")  # noqa: SIM115 - the engine's, kept open by it
    try:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, "PYTHONPATH": _package_parent()})
    finally:
        log.close()
    journal.record([procs.process_record(proc.pid, f"dockerd {machine}", netns_name(name, machine))])


def _package_parent() -> str:
    """Where ``lab`` is importable from, for the boot helper's ``python3 -m``."""
    import lab

    return str(Path(lab.__file__).resolve().parent.parent)


def _cgroup_controllers() -> list[str]:
    """The cgroup v1 hierarchies, or the v2 root (''), under which an engine's --cgroup-parent lands."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return [""]
    return sorted(p.name for p in CGROUP_ROOT.iterdir()
                  if p.is_dir() and not p.is_symlink() and (p / "cgroup.procs").exists())


def _wait_for_engine(name: str, machine: str) -> Any:
    import docker
    import docker.errors
    import requests.exceptions

    url = f"unix://{socket_path(name, machine)}"
    deadline = time.monotonic() + ENGINE_START_TIMEOUT
    while True:
        if socket_path(name, machine).exists():
            try:
                client = docker.DockerClient(base_url=url, timeout=30)
                client.ping()
                return client
            except (docker.errors.DockerException, requests.exceptions.RequestException, OSError):
                pass
        if time.monotonic() > deadline:
            log = cluster_dir(name) / machine / "dockerd.log"
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
            raise EnvironmentProblem(f"machine {machine}: its dockerd did not answer within "
                                     f"{ENGINE_START_TIMEOUT:.0f} s{': ' + tail[0] if tail else ''}",
                                     f"see {log}")
        time.sleep(0.1)


def _form_swarm(clients: dict[str, Any], machines: list[str]) -> None:
    first = clients[machines[0]]
    leader = str(underlay_address(1).ip)
    first.swarm.init(advertise_addr=leader, listen_addr=f"{leader}:2377")
    token = first.swarm.attrs["JoinTokens"]["Worker"]
    for i, machine in enumerate(machines[1:], start=2):
        address = str(underlay_address(i).ip)
        clients[machine].swarm.join(remote_addrs=[f"{leader}:2377"], join_token=token,
                                    advertise_addr=address, listen_addr=f"{address}:2377")
    deadline = time.monotonic() + 30
    while True:
        nodes = first.api.nodes()
        ready = {n["Description"]["Hostname"]: n for n in nodes if n["Status"]["State"] == "ready"}
        if all(m in ready for m in machines):
            break
        if time.monotonic() > deadline:
            missing = [m for m in machines if m not in ready]
            raise EnvironmentProblem(f"swarm: machines {', '.join(missing)} did not become ready within 30 s")
        time.sleep(0.1)
    from lab.cluster.engines import MACHINE_LABEL

    for machine in machines:
        node = first.nodes.get(ready[machine]["ID"])
        spec = dict(node.attrs["Spec"])
        spec["Labels"] = {**(spec.get("Labels") or {}), MACHINE_LABEL: machine}
        node.update(spec)


def _write_cluster_file(name: str, machines: list[str], mtu: int, registry: bool = False, tls: bool = False) -> Path:
    path = tcp_cluster_file(name) if tls else cluster_file(name)
    lines = [f"# lab cluster local up {len(machines)} --name {name}: {len(machines)} simulated machines on this one,",
             f"# underlay {UNDERLAY} (MTU {mtu}). Remove with: lab cluster local down --name {name}"]
    if tls:
        lines += ["# Engines over TCP with TLS: reachable from the underlay only, so run lab there:",
                  f"#   ip netns exec {netns_name(name, '_ul')} lab up TOPOLOGY --cluster {path}"]
        tls_keys = "tls: {ca: tls/ca.pem, cert: tls/client-cert.pem, key: tls/client-key.pem}"
        lines += ["machines:"] + [f"  {m}: {{engine: \"tcp://{underlay_address(i).ip}:{TLS_PORT}\", {tls_keys}}}"
                                  for i, m in enumerate(machines, start=1)]
    else:
        lines += ["machines:"] + [f"  {m}: {{engine: unix://{socket_path(name, m)}}}" for m in machines]
    if registry:  # only the machines reach it: m1's engine pushes what it lacks
        lines += [f"registry: {{address: \"{registry_endpoint()}\", push_from: {machines[0]}}}"]
    path.write_text("\n".join(lines) + "\n")
    return path


# --- down -----------------------------------------------------------------------------------


def down(name: str = DEFAULT_NAME, progress: Progress = _no_progress) -> list[str]:
    """Remove everything the cluster's journal names; return what could not be removed (empty: all gone)."""
    check_name(name)
    journal = Journal(f"cluster {name}", cluster_dir(name))
    entries = journal.entries()
    if not entries:
        shutil.rmtree(cluster_dir(name), ignore_errors=True)
        return []
    problems: list[str] = []
    residents = labs_on(name)
    _take_labs_down(residents, progress)
    processes = [e for e in entries if e["kind"] == "process"]
    engines = [e for e in processes if str(e["name"]).startswith("dockerd ")]
    progress(f"engines: stopping {len(engines)}")
    for entry in engines:
        _empty_engine(name, entry)
    for entry in processes:  # the engines, and the registry if there is one
        procs.stop(int(entry["pid"]), entry.get("start_time"), grace=ENGINE_STOP_GRACE)
    spaces = [e["name"] for e in entries if e["kind"] == "netns"]
    leftovers.stop_processes(spaces, [e["name"] for e in entries if e["kind"] == "cgroup"])
    progress(f"underlay: removing {len(spaces)} namespaces")
    for ns in spaces:
        if os.path.exists(f"/run/netns/{ns}"):
            result = subprocess.run(["ip", "netns", "del", ns], capture_output=True, text=True, timeout=30)
            if result.returncode != 0:
                problems.append(f"namespace {ns}: {result.stderr.strip()}")
    for entry in entries:
        if entry["kind"] == "cgroup":
            leftovers.remove_cgroup(Path(entry["name"]), problems)
    for entry in entries:
        if entry["kind"] == "dir":
            leftovers.remove_data(Path(entry["name"]), problems, DATA_ROOT)
    _forget_labs(residents, progress)
    if not problems:
        journal.remove()
        parent = cluster_dir(name).parent
        if parent.exists() and not any(parent.iterdir()):
            parent.rmdir()
    return problems


def labs_on(name: str) -> list[str]:
    """The labs whose journal says they were spread over this cluster (by either of its files)."""
    from lab.state import labs_with_state

    home = cluster_dir(name).resolve()
    found = []
    for lab in labs_with_state():
        first = (Journal(lab).entries() or [{}])[0]
        record = first.get("cluster") or {}
        if record.get("file") and Path(str(record["file"])).resolve().parent == home:
            found.append(lab)
    return found


def _take_labs_down(labs: list[str], progress: Progress) -> None:
    """``lab down`` of each lab still up on the cluster, while its engines answer.

    Only a lab made through the engines' sockets (``cluster.yaml``): one made through
    ``cluster-tcp.yaml`` names addresses only the underlay reaches, and from this machine's own
    namespace they would go to its uplink. Its containers go with the engines' own emptying.
    """
    from lab.deploy import down as lab_down
    from lab.errors import LabError

    for lab in labs:
        record = (Journal(lab).entries() or [{}])[0].get("cluster") or {}
        engines = [str(m.get("engine", "")) for m in ((record.get("spec") or {}).get("machines") or {}).values()]
        if not all(e.startswith("unix://") for e in engines):
            continue
        progress(f"lab {lab}: down first, it runs on this cluster")
        try:
            lab_down(lab)
        except LabError:
            pass  # what is left of it goes with the machines; its journal is forgotten below


def _forget_labs(labs: list[str], progress: Progress) -> None:
    """A lab's state once its machines are gone: nothing of it exists anywhere any more."""
    from lab.state import lab_dir

    for lab in labs:
        if Journal(lab).exists():
            progress(f"lab {lab}: forgotten with the machines it ran on")
            shutil.rmtree(lab_dir(lab), ignore_errors=True)


def _empty_engine(name: str, entry: dict[str, Any]) -> None:
    """Remove the engine's services and containers while it still answers, so none outlives it."""
    import docker
    import docker.errors
    import requests.exceptions

    if not procs.is_same_process(int(entry["pid"]), entry.get("start_time")):
        return
    machine = str(entry["name"]).split(" ")[1].split("[")[0]
    try:
        client = docker.DockerClient(base_url=f"unix://{socket_path(name, machine)}", timeout=15)
        if (client.info().get("Swarm") or {}).get("ControlAvailable"):
            for service in client.services.list():
                service.remove()
        for container in client.containers.list(all=True):
            container.remove(force=True)
        client.swarm.leave(force=True)
        client.close()
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError):
        pass  # an engine that does not answer: its processes are stopped below all the same
