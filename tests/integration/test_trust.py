"""Trust: crashes leave nothing ``lab down`` cannot remove, nothing leaks, lab acts only on what it made.

The crash trials are scripts/crash_trials.py's, in a shorter run: ``lab up``
killed with SIGKILL at random moments (and ``lab fault add``, ``lab run --keep``
mid-step), then ``lab down``, then a search for anything of the lab left on the
machine. Ctrl-C rolls ``up`` back by itself. A hundred up/down cycles in one
process leave its descriptors and mounts, and the machine's namespaces and
interfaces, as they were. Hand-made namespaces and containers named like a
lab's, and another state directory's lab of the same name, survive ``up``,
``down`` and ``clean``, which say what they skipped. Two ``up`` of one lab at
once: one wins, the other is told so. State files are root's only; containers
get NET_ADMIN and NET_RAW and nothing more.

Lab names here start with ``tr-`` so they clash with no other test file's.
"""

from __future__ import annotations

import importlib.util
import os
import random
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from barriers import in_namespace, lab_stopped_at, stderr_of

from lab import deploy, state
from lab.cli import main
from lab.errors import EnvironmentProblem
from lab.topology import load_topology, load_topology_text

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]
BOOK_LAN = ROOT / "topologies" / "book-lan.yaml"
TRUST_MIX = ROOT / "topologies" / "trust-mix.yaml"


def _load_trials():
    spec = importlib.util.spec_from_file_location("crash_trials", ROOT / "scripts" / "crash_trials.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["crash_trials"] = module
    spec.loader.exec_module(module)
    return module


ct = _load_trials()


def lab_up(path: Path, name: str, **kw) -> None:
    topo, _ = load_topology(path)
    topo.name = name
    deploy.up(topo, path.read_text(), str(path), **kw)


def hand_made_namespace(name: str) -> None:
    subprocess.run(["ip", "netns", "add", name], check=True)


def delete_namespace(name: str) -> None:
    subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def nothing_of(lab: str) -> list[str]:
    """Debris of ``lab`` without a ``lab down``: what must be empty after a rollback."""
    left = ct.Left.of(lab)
    return ct.debris(lab, ct.Machine.now(), left, set())


# --- crash safety ---------------------------------------------------------------------------


@pytest.mark.docker
def test_sigkill_at_random_points_of_up_then_down_leaves_nothing():
    ws = ct.Workspace.make("tr-crash")
    try:
        build_seconds = ct.measure_up(ws)
        rng = random.Random(int.from_bytes(os.urandom(4), "big"))
        trials = ct.up_trials(ws, 10, rng, build_seconds)
    finally:
        deploy.down(ws.lab)
        ws.remove()
    print("\n" + ct.HEADER + "\n" + "\n".join(t.line() for t in trials))
    assert [t.line() for t in trials if not t.ok] == []
    assert any(t.outcome == "killed" and t.left.journal > 1 for t in trials), "no kill landed mid-build"


@pytest.mark.docker
def test_sigkill_of_fault_add_run_keep_and_down_then_down_leaves_nothing():
    ws = ct.Workspace.make("tr-crashf")
    try:
        rng = random.Random(int.from_bytes(os.urandom(4), "big"))
        trials = ct.fault_trials(ws, 3, rng) + ct.run_trials(ws, 3, rng) + ct.down_trials(ws, 2, rng)
    finally:
        deploy.down(ws.lab)
        ws.remove()
    print("\n" + ct.HEADER + "\n" + "\n".join(t.line() for t in trials))
    assert [t.line() for t in trials if not t.ok] == []
    assert sum(t.outcome == "killed" for t in trials) >= 5
    assert any(t.what == "down" and t.outcome == "killed" for t in trials), "no down was killed mid-way"


def test_the_debris_check_finds_what_is_left():
    """The trials' checker is not blind: a namespace, a process inside it and the state dir are all found."""
    lab = "tr-probe"
    lab_up(BOOK_LAN, lab)
    try:
        sleeper = in_namespace(f"lab-{lab}.kongming20", "sleep 60")
        left = ct.Left.of(lab)
        found = ct.debris(lab, ct.Machine.now(), left, set())
        assert f"namespace lab-{lab}.kongming20" in found
        assert f"state dir {state.lab_dir(lab)}" in found
        assert f"process {sleeper.pid} still in a lab namespace" in found
    finally:
        sleeper.kill()
        sleeper.wait()
        deploy.down(lab)
    assert nothing_of(lab) == []


def test_ctrl_c_during_up_rolls_back_by_itself(tmp_path: Path):
    """SIGINT at three moments of ``lab up``: exit 130, 'interrupted', and nothing left, with no ``down``.

    ``up`` stops itself at each moment (LAB_STOP_AT, see lab.stopat); the SIGINT is sent while
    it is stopped and lands when it goes on, so the moment is the same however busy the machine.
    """
    lab = "tr-sigint"
    text = f"""
name: {lab}
networks: {{lan: {{subnet: 10.7.0.0/22}}}}
nodes:
{{% for i in range(400) %}}
  h{{{{ i }}}}: {{interfaces: {{eth0: {{network: lan}}}}, sysctls: {{net.ipv4.tcp_syn_retries: 2}}}}
{{% endfor %}}
"""
    topo_file = tmp_path / "sigint.yaml"
    topo_file.write_text(text)
    deploy.down(lab)
    # Before any namespace is made; halfway through them; veths made, no address yet.
    for point in ("namespaces:0", "namespaces:200", "links:1"):
        before = ct.Machine.now()
        out = tmp_path / point.replace(":", "-")
        proc = lab_stopped_at(point, ["up", "-q", str(topo_file)], out)
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGCONT)
        assert proc.wait(timeout=60) == 130, (point, stderr_of(out))
        assert "interrupted" in stderr_of(out) and "Traceback" not in stderr_of(out), stderr_of(out)
        found = ct.debris(lab, before, ct.Left(), set())
        assert found == [], f"SIGINT at {point} left {found}"


# --- no leaks -------------------------------------------------------------------------------

LEAK_TOPOLOGY = """
name: tr-leak
networks: {lan: {subnet: 10.9.0.0/24}}
nodes:
  a: {interfaces: {eth0: {network: lan}, eth1: {address: 10.0.78.1/30}}, sysctls: {net.ipv4.tcp_syn_retries: 2}}
  b: {interfaces: {eth0: {network: lan}, eth1: {address: 10.0.78.2/30}}}
  c: {interfaces: {eth0: {network: lan}}}
links: [[a:eth1, b:eth1]]
"""


def docker_pool_fds() -> set[int]:
    """The descriptors of the connections this process's Docker client keeps for reuse.

    docker-py keeps a pool per URL, at most 10 pools of at most 10 connections, and drops
    the least recently used pool when an 11th URL comes: that many sockets may come and go
    between two counts, whatever ran before. They are the client's, not leaks of lab's.
    """
    from lab import dockerclient

    client = dockerclient._client
    if client is None:
        return set()
    found: set[int] = set()
    for adapter in client.api.adapters.values():
        pools: Any = getattr(adapter, "pools", {})
        for key in list(pools.keys()):
            for conn in list(pools[key].pool.queue):
                if getattr(conn, "sock", None) is not None:
                    found.add(conn.sock.fileno())
    return found


def own_fds() -> list[str]:
    """What each open descriptor of this process is, but the Docker client's pooled connections."""
    pooled = docker_pool_fds()
    return sorted(os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
                  if os.path.exists(f"/proc/self/fd/{fd}") and int(fd) not in pooled)


def same_fds(after: list[str], before: list[str]) -> bool:
    """No descriptor leaked: files identical; sockets no more numerous (a connection pool of an
    earlier test in this process may replace one of its sockets meanwhile; a leak would add one per cycle)."""
    def split(fds: list[str]) -> tuple[list[str], int]:
        return [f for f in fds if not f.startswith("socket:")], sum(f.startswith("socket:") for f in fds)

    (files_after, sockets_after), (files_before, sockets_before) = split(after), split(before)
    return files_after == files_before and sockets_after <= sockets_before


def own_mounts(lab: str) -> list[str]:
    """This process's mount table, less what other tests running at the same time change in it
    (their labs' namespace directories in the state root or /run/netns, their containers' file systems)."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    others = (f"{state.state_root()}/", "/run/netns/", "/var/lib/docker/", "/run/docker/")
    return sorted(set(ct.lab_mounts(lab)) | {p for p in points if not p.startswith(others)})


def test_a_hundred_up_down_cycles_leak_nothing():
    topo, _ = load_topology_text(LEAK_TOPOLOGY, "leak.yaml")
    deploy.up(topo, LEAK_TOPOLOGY)  # a first cycle warms up imports and caches
    deploy.down(topo.name)
    fds, mounts, links = own_fds(), own_mounts(topo.name), ct.root_links()
    netns_before = set(os.listdir("/run/netns"))
    threads = {t for t in os.listdir("/proc/self/task")}
    start = time.monotonic()
    for _ in range(100):
        deploy.up(topo, LEAK_TOPOLOGY)
        assert len(ct.lab_namespaces(topo.name)) == 4
        deploy.down(topo.name)
    elapsed = time.monotonic() - start
    print(f"100 up/down cycles of a 3-node lab in {elapsed:.1f} s")
    assert ct.lab_namespaces(topo.name) == [] and ct.lab_etc_entries(topo.name) == []
    assert same_fds(own_fds(), fds)
    assert own_mounts(topo.name) == mounts
    assert ct.root_links() == links
    assert len(set(os.listdir("/proc/self/task")) - threads) == 0, "threads left running"
    assert not any(n.startswith("lab-tr-leak.") for n in set(os.listdir("/run/netns")) - netns_before)
    assert not state.lab_dir(topo.name).exists() and not (state.state_root() / ".tr-leak.lock").exists()


@pytest.mark.docker
def test_up_down_cycles_with_a_container_leak_nothing():
    """The same with a container node: no container, descriptor (Docker connections included) or mount stays."""
    lab = "tr-leakc"
    lab_up(TRUST_MIX, lab)  # warm-up: the images, imports
    deploy.down(lab)
    assert ct.lab_containers(lab) == []  # the checker's own Docker connection, opened before counting
    fds, mounts, links = own_fds(), own_mounts(lab), ct.root_links()
    for _ in range(5):
        lab_up(TRUST_MIX, lab)
        assert len(ct.lab_namespaces(lab)) == 7
        deploy.down(lab)
    assert same_fds(own_fds(), fds) and own_mounts(lab) == mounts and ct.root_links() == links
    assert ct.lab_containers(lab) == [] and ct.lab_namespaces(lab) == []


# --- ownership ------------------------------------------------------------------------------


def test_a_hand_made_namespace_with_our_name_makes_up_refuse_and_survives():
    lab = "tr-own1"
    theirs = f"lab-{lab}.router"
    hand_made_namespace(theirs)
    try:
        topo, _ = load_topology(BOOK_LAN)
        topo.name = lab
        with pytest.raises(EnvironmentProblem, match=f"namespace {theirs} already exists and is not this lab's"):
            deploy.up(topo, BOOK_LAN.read_text())
        assert ct.lab_namespaces(lab) == [theirs]
        assert not state.lab_dir(lab).exists()
        assert main(["up", "-q", str(_renamed(BOOK_LAN, lab))]) == 3
        assert ct.lab_namespaces(lab) == [theirs]
        assert main(["down", lab]) == 0
        assert ct.lab_namespaces(lab) == [theirs]
    finally:
        delete_namespace(theirs)


RENAMED = Path(tempfile.mkdtemp(prefix="lab-trust-"))


@pytest.fixture(scope="module", autouse=True)
def _renamed_files():
    yield
    shutil.rmtree(RENAMED, ignore_errors=True)


def _renamed(path: Path, lab: str) -> Path:
    """A copy of a topology under another lab name (beside nothing: no relative files in these)."""
    out = RENAMED / f"{lab}-{secrets.token_hex(3)}.yaml"
    out.write_text(ct.topology_for(lab, path))
    return out


def test_names_taken_while_up_builds_are_never_deleted_by_its_rollback(monkeypatch):
    """The O_EXCL claim's path (a name taken after the early check): neither that name nor later ones are touched."""
    lab = "tr-own2"
    topo, _ = load_topology(BOOK_LAN)
    topo.name = lab
    order = [s.name for s in deploy.make_plan(topo).namespaces if s.kind != "container"]
    theirs = [order[1], order[-1]]
    for name in theirs:
        hand_made_namespace(name)
    monkeypatch.setattr(deploy, "_refuse_taken_names", lambda plan: None)
    try:
        with pytest.raises(EnvironmentProblem, match=f"namespace {theirs[0]} already exists"):
            deploy.up(topo, BOOK_LAN.read_text())
        assert ct.lab_namespaces(lab) == sorted(theirs)
        assert not state.lab_dir(lab).exists()
    finally:
        for name in theirs:
            delete_namespace(name)


def test_another_state_directorys_lab_of_the_same_name_is_left_alone(tmp_path, monkeypatch, capsys):
    lab = "tr-own3"
    mine, other = tmp_path / "mine", tmp_path / "other"
    monkeypatch.setenv("LAB_STATE_DIR", str(other))
    lab_up(BOOK_LAN, lab)
    try:
        theirs = ct.lab_namespaces(lab)
        assert len(theirs) == 6
        monkeypatch.setenv("LAB_STATE_DIR", str(mine))
        with pytest.raises(EnvironmentProblem, match="already exists and is not this lab's"):
            lab_up(BOOK_LAN, lab)
        assert main(["down", lab]) == 0
        assert main(["clean"]) == 0
        err = capsys.readouterr().err
        assert f"skipped: namespace lab-{lab}.router: no lab journal here names it, left alone" in err
        assert ct.lab_namespaces(lab) == theirs
        assert not (mine / lab).exists()
        monkeypatch.setenv("LAB_STATE_DIR", str(other))
        info = state.read_lab_info(lab)
        from lab.nodes import node_from_info

        r = node_from_info(info, "kongming20").exec(["ping", "-c1", "-W2", "far-host"])
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        monkeypatch.setenv("LAB_STATE_DIR", str(other))
        deploy.down(lab)
    assert ct.lab_namespaces(lab) == []


def test_a_namespace_named_like_ours_but_not_in_the_journal_survives_down_and_clean(tmp_path, monkeypatch, capsys):
    lab = "tr-own4"
    monkeypatch.setenv("LAB_STATE_DIR", str(tmp_path / "state"))
    lab_up(BOOK_LAN, lab)
    stray = f"lab-{lab}.extra"
    hand_made_namespace(stray)
    try:
        assert main(["down", lab]) == 0
        assert ct.lab_namespaces(lab) == [stray]
        assert main(["clean"]) == 0
        assert f"skipped: namespace {stray}: no lab journal here names it, left alone" in capsys.readouterr().err
        assert ct.lab_namespaces(lab) == [stray]
    finally:
        delete_namespace(stray)
        deploy.down(lab)


def test_a_journaled_name_someone_else_took_before_we_claimed_it_survives_down(tmp_path, monkeypatch, capsys):
    """The journal names a namespace before it is claimed; if the build stopped in between and
    someone made a namespace of that name, ``down`` must not take theirs."""
    lab = "tr-own5"
    monkeypatch.setenv("LAB_STATE_DIR", str(tmp_path / "state"))
    lab_up(BOOK_LAN, lab)
    late = f"lab-{lab}.late"
    state.Journal(lab).record([{"kind": "netns", "name": late}])
    hand_made_namespace(late)
    try:
        assert main(["down", lab]) == 0
        assert f"namespace {late}: /run/netns/{late} is not this lab's, left alone" in capsys.readouterr().err
        assert ct.lab_namespaces(lab) == [late]
        assert os.path.ismount(f"/run/netns/{late}")
    finally:
        delete_namespace(late)
        deploy.down(lab)


def test_a_lab_directory_is_not_removed_while_its_namespaces_are_mounted_in_it(tmp_path, monkeypatch):
    from lab.net import netns

    monkeypatch.setenv("LAB_STATE_DIR", str(tmp_path / "state"))
    journal = state.Journal("tr-mnt")
    journal.start({})
    netns.mount_nsdir(state.netns_dir("tr-mnt"))
    try:
        with pytest.raises(EnvironmentProblem, match="still mounted"):
            journal.remove()
        assert journal.exists()
    finally:
        assert netns.unmount_nsdir(state.netns_dir("tr-mnt"))
    journal.remove()
    assert not journal.dir.exists()


def test_a_relative_state_directory_works(tmp_path, monkeypatch):
    """/run/netns links to the lab's nsdir by an absolute path, whatever LAB_STATE_DIR looks like."""
    lab = "tr-rel"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAB_STATE_DIR", "state")
    lab_up(BOOK_LAN, lab)
    try:
        from lab.nodes import node_from_info

        r = node_from_info(state.read_lab_info(lab), "kongming20").exec(["ping", "-c1", "-W2", "far-host"])
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        deploy.down(lab)
    assert ct.lab_namespaces(lab) == [] and not (tmp_path / "state" / lab).exists()


# --- ownership of containers ----------------------------------------------------------------


@pytest.fixture
def docker():
    from lab.dockerclient import docker_client

    return docker_client()


def plain_container(client, name: str, labels: dict[str, str] | None = None):
    from lab.images import ensure_image

    return client.containers.run(ensure_image(client, "host"), ["sleep", "300"], name=name, labels=labels or {},
                                 network_mode="none", detach=True)


@pytest.mark.docker
def test_containers_of_other_labs_and_other_state_dirs_survive_down_and_clean(docker, tmp_path, monkeypatch, capsys):
    from lab.nodes.container import LABEL_LAB, LABEL_STATE

    lab = "tr-ownc1"
    monkeypatch.setenv("LAB_STATE_DIR", str(tmp_path / "state"))
    other_lab = plain_container(docker, f"tr-other-{secrets.token_hex(3)}", {LABEL_LAB: "tr-someone-else"})
    other_dir = plain_container(docker, f"tr-otherdir-{secrets.token_hex(3)}",
                                {LABEL_LAB: lab, LABEL_STATE: str(tmp_path / "elsewhere")})
    try:
        lab_up(TRUST_MIX, lab)
        srv = docker.containers.get(f"lab-{lab}.srv")
        assert srv.labels[LABEL_STATE] == str(tmp_path / "state")
        assert main(["down", lab]) == 0
        assert f"skipped: container {other_dir.name}: lab {lab!r} of another state directory" in capsys.readouterr().err
        assert main(["clean"]) == 0
        err = capsys.readouterr().err
        assert f"skipped: container {other_lab.name}: lab 'tr-someone-else' of another state directory" in err
        for c in (other_lab, other_dir):
            c.reload()
            assert c.status == "running"
        assert ct.lab_containers(lab) == [other_dir.name]
    finally:
        for c in (other_lab, other_dir):
            c.remove(force=True)
        deploy.down(lab)


@pytest.mark.docker
def test_a_container_named_like_ours_without_labels_is_refused_and_skipped(docker, tmp_path, capsys):
    lab = "tr-ownc2"
    name = f"lab-{lab}.srv"
    squatter = plain_container(docker, name)
    try:
        assert main(["up", "-q", str(_renamed(TRUST_MIX, lab))]) == 3
        err = capsys.readouterr().err
        assert f"a container {name} already exists" in err, err
        squatter.reload()
        assert squatter.status == "running"
        assert ct.lab_namespaces(lab) == [] and not state.lab_dir(lab).exists()
        squatter.remove(force=True)
        # Replaced behind the lab's back after up: down skips it and says so.
        lab_up(TRUST_MIX, lab)
        docker.containers.get(name).remove(force=True)
        squatter = plain_container(docker, name)
        assert main(["down", lab]) == 0
        assert f"skipped: container {name}: not labelled as lab {lab!r}, left alone" in capsys.readouterr().err
        squatter.reload()
        assert squatter.status == "running"
    finally:
        squatter.remove(force=True)
        deploy.down(lab)


# --- concurrency ----------------------------------------------------------------------------


def test_two_ups_of_different_labs_at_once_both_succeed():
    files = [_renamed(BOOK_LAN, lab) for lab in ("tr-con1", "tr-con2")]
    procs = [subprocess.Popen([sys.executable, "-m", "lab", "up", "-q", str(f)], stderr=subprocess.PIPE, text=True)
             for f in files]
    try:
        results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
        assert [rc for rc, _ in results] == [0, 0], results
        for lab in ("tr-con1", "tr-con2"):
            assert len(ct.lab_namespaces(lab)) == 6 and (state.lab_dir(lab) / "lab.json").exists()
    finally:
        for lab in ("tr-con1", "tr-con2"):
            deploy.down(lab)


def test_two_ups_of_the_same_lab_at_once_one_wins_the_other_is_told():
    lab = "tr-con3"
    topo_file = _renamed(BOOK_LAN, lab)
    for _ in range(3):
        procs = [subprocess.Popen([sys.executable, "-m", "lab", "up", "-q", str(topo_file)], stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
        try:
            results = sorted((p.wait(timeout=120), p.stderr.read()) for p in procs)  # type: ignore[union-attr]
            (win, _), (lose, message) = results
            assert (win, lose) == (0, 2), results
            assert ("is being changed by another lab process" in message
                    or f"lab {lab!r} is already up" in message), message
            assert len(ct.lab_namespaces(lab)) == 6, "the winner's lab is whole"
            assert (state.lab_dir(lab) / "lab.json").exists()
        finally:
            deploy.down(lab)
        assert nothing_of(lab) == []


# --- least privilege and sealing ------------------------------------------------------------


@pytest.fixture(scope="module")
def mix():
    """One trust-mix lab for the privilege and sealing checks."""
    from lab.dockerclient import docker_client

    docker_client()
    lab = "tr-priv"
    deploy.down(lab)
    lab_up(TRUST_MIX, lab)
    try:
        yield lab
    finally:
        deploy.down(lab)


@pytest.mark.docker
def test_state_files_are_root_only(mix):
    root = state.state_root()
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    lock = root / f".{mix}.lock"
    assert not lock.exists() or stat.S_IMODE(lock.stat().st_mode) == 0o600
    seen = 0
    nsfs = os.stat("/proc/self/ns/net").st_dev
    for dirpath, _dirnames, filenames in os.walk(state.lab_dir(mix)):
        assert stat.S_IMODE(os.stat(dirpath).st_mode) == 0o700, dirpath
        for name in filenames:
            path = Path(dirpath) / name
            mode = stat.S_IMODE(path.stat().st_mode)
            seen += 1
            if path.parent == Path(state.netns_dir(mix)):
                assert path.stat().st_dev == nsfs, path  # a namespace mounted there (the kernel's 0444), no file
                continue
            if path.parent.parent.name == "etc" and name in ("hosts", "resolv.conf"):
                # seen inside the lab as /etc/hosts (bind-mounted), so readable there; private by path
                assert mode == 0o644, path
            else:
                assert mode == 0o600, (path, oct(mode))
            assert path.stat().st_uid == 0
    assert seen >= 4  # journal, lab.json, topology.yaml, etc files


@pytest.mark.docker
def test_containers_get_net_admin_and_net_raw_only(mix):
    from lab.dockerclient import docker_client
    from lab.nodes import node_from_info

    c = docker_client().containers.get(f"lab-{mix}.srv")
    host = c.attrs["HostConfig"]
    assert sorted(host["CapAdd"]) == ["NET_ADMIN", "NET_RAW"]
    assert host["Privileged"] is False and host["NetworkMode"] == "none"
    assert not host.get("Binds") and not host.get("PortBindings") and not host.get("Devices")
    srv = node_from_info(state.read_lab_info(mix), "srv")
    cap_eff = int(next(line.split()[1] for line in srv.exec(["cat", "/proc/1/status"]).stdout.splitlines()
                       if line.startswith("CapEff:")), 16)
    cap_sys_admin, cap_net_admin, cap_sys_module = 21, 12, 16
    assert cap_eff & (1 << cap_net_admin)
    assert not cap_eff & (1 << cap_sys_admin) and not cap_eff & (1 << cap_sys_module)
    made = srv.exec(["ip", "link", "add", "trv0", "type", "veth", "peer", "name", "trv1"])  # NET_ADMIN works
    assert made.returncode == 0, made.stderr
    assert srv.exec(["ip", "link", "delete", "trv0"]).returncode == 0
    assert srv.exec(["mount", "-t", "tmpfs", "none", "/mnt"]).returncode != 0  # SYS_ADMIN is not there


@pytest.mark.docker
def test_no_node_has_a_way_out(mix):
    """No lab interface in the machine's namespace, and every node's route to the uplink's gateway stays inside."""
    import ipaddress
    import json

    from lab.nodes import node_from_info

    info = state.read_lab_info(mix)
    lab_nets = [ipaddress.ip_network(n["subnet"]) for n in info["networks"].values()] + [
        ipaddress.ip_network("10.0.78.0/30")]
    routes = json.loads(subprocess.run(["ip", "-j", "-4", "route", "show", "default"], capture_output=True,
                                       text=True).stdout or "[]")
    probe = routes[0]["gateway"] if routes and routes[0].get("gateway") else "198.51.100.1"
    for node in info["nodes"]:
        handle = node_from_info(info, node)
        r = handle.exec(["ip", "-j", "route", "get", probe])  # asks the routing table; sends nothing
        if r.returncode != 0:
            assert "unreachable" in r.stderr, (node, r.stderr)
            continue
        hop = json.loads(r.stdout)[0]
        assert hop.get("gateway"), (node, hop)
        assert any(ipaddress.ip_address(hop["gateway"]) in net for net in lab_nets), (node, hop)
