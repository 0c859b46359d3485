"""A lab over a simulated cluster: three machines, each a namespace with its own dockerd, in one Swarm.

The module's cluster (``lab cluster local up 3``) is made once and removed at the end, exactly:
no engine process, namespace, data directory or cgroup of it is left. On it the book's web case
(squid, dnsmasq, nginx) runs spread over the three machines, with its LAN spanning all three
over VXLAN, and every check reaches the machines through their engines only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from lab import state
from lab.cli import main
from lab.cluster import local
from lab.cluster.wiring import VXLAN_PORT, firewall_chain
from lab.nodes import node_from_info

pytestmark = [pytest.mark.root, pytest.mark.docker]
ROOT = Path(__file__).resolve().parents[2]
CLUSTER = "ci"
LAB = "clu-bookweb"  # the book's web case, renamed so that it cannot clash with a user's book-web
URL = "http://www.baidu.com/index.html"


def engine(machine: str) -> list[str]:
    return ["docker", "-H", f"unix://{local.socket_path(CLUSTER, machine)}"]


def on_machine(machine: str, *argv: str) -> str:
    return subprocess.run([*engine(machine), *argv], capture_output=True, text=True, check=True, timeout=60).stdout


def in_machine_ns(machine: str, *argv: str) -> str:
    """What the machine's own namespace holds (only the test looks there; lab goes through the engine)."""
    return subprocess.run(["ip", "netns", "exec", local.netns_name(CLUSTER, machine), *argv],
                          capture_output=True, text=True, timeout=30).stdout


def engine_pids() -> list[int]:
    journal = state.Journal("cluster", local.cluster_dir(CLUSTER))
    return [int(e["pid"]) for e in journal.entries() if e["kind"] == "process"]


@pytest.fixture(scope="module")
def cluster_file() -> Iterator[Path]:
    local.down(CLUSTER)  # a previous run that was killed
    assert local.UNDERLAY == IPv4Network("198.18.0.0/24")  # (also puts it on the uplink watch's list)
    start = time.monotonic()
    path = local.up(3, CLUSTER)
    print(f"lab cluster local up 3: {time.monotonic() - start:.1f} s")
    try:
        yield path
    finally:
        main(["down", LAB])
        problems = local.down(CLUSTER)
        assert problems == []


def apart(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``lab ARGV`` in a PID namespace of its own: the machines' processes and their /proc entries are
    not there, as on a computer that shares no kernel with them; only the engines' endpoints are."""
    return subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-m", "lab", *argv],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def lab(cluster_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    here = tmp_path_factory.mktemp("topology")
    shutil.copytree(ROOT / "topologies" / "book-web", here / "book-web")  # its documents, beside it
    topology = here / "book-web.yaml"
    topology.write_text((ROOT / "topologies" / "book-web.yaml").read_text().replace("name: book-web", f"name: {LAB}"))
    start = time.monotonic()
    up = apart("up", "-q", str(topology), "--cluster", str(cluster_file), "--spread")
    print(f"lab up book-web --cluster (3 machines, images copied if missing): {time.monotonic() - start:.1f} s")
    assert up.returncode == 0, up.stderr
    yield state.read_lab_info(LAB)


def test_lab_needs_only_the_engines(lab: dict, tmp_path: Path) -> None:
    """exec, inspect, a fault and a capture, from a PID namespace where no machine process can be seen."""
    assert apart("exec", "--lab", LAB, "kongming20", "--", "ping", "-c1", "-W2", "web1").returncode == 0
    assert apart("inspect", LAB).returncode == 0
    added = apart("fault", "add", "--lab", LAB, "web1:eth0", "--drop", "icmp")
    assert added.returncode == 0, added.stderr
    assert apart("exec", "--lab", LAB, "kongming20", "--", "ping", "-c1", "-W1", "web1").returncode == 1
    assert apart("fault", "clear", "--lab", LAB).returncode == 0
    # an impairment by lab's own emulator, which runs in the machine's agent
    added = apart("fault", "add", "--lab", LAB, "web1:eth0", "--delay", "20ms", "--emulator", "lab")
    assert added.returncode == 0, added.stderr
    ping = apart("exec", "--lab", LAB, "kongming20", "--", "ping", "-c3", "-i", "0.2", "-q", "web1").stdout
    assert 19.0 < float(ping.rsplit("=", 1)[1].split("/")[1]) < 30.0, ping
    assert apart("fault", "clear", "--lab", LAB).returncode == 0
    pcap = tmp_path / "web1.pcap"
    capture = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-m", "lab", "capture",
                                "--lab", LAB, "web1:eth0", "-w", str(pcap), "-d", "4", "-f", "icmp"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert capture.stderr is not None
    said = [capture.stderr.readline()]  # "capturing on" is printed once tcpdump listens: wait for it
    while said[-1] and not said[-1].startswith("capturing on"):
        said.append(capture.stderr.readline())
    assert said[-1], "lab capture ended before it listened: " + "".join(said)
    assert apart("exec", "--lab", LAB, "kongming20", "--", "ping", "-c2", "-i", "0.2", "-W1", "web1").returncode == 0
    out, err = capture.communicate(timeout=60)
    assert capture.returncode == 0, err
    assert "4 packets in" in out, out


def run(info: dict, node: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    return node_from_info(info, node).exec(argv, timeout=60)


def test_doctor_finds_every_machine_ready(cluster_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cluster", "doctor", str(cluster_file), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"]
    names = {c["name"] for c in report["checks"]}
    assert {"swarm: manager", "m1: swarm", "m2: swarm", "m3: swarm"} <= names


def test_spread_puts_nodes_on_every_machine(lab: dict) -> None:
    machines = {spec["machine"] for spec in lab["nodes"].values()}
    assert machines == {"m1", "m2", "m3"}, {n: s["machine"] for n, s in lab["nodes"].items()}


BUSY = """name: clu-busy
nodes:
  b1: {machine: m1}
  b2: {machine: m1}
  b3: {machine: m2}
  b4: {machine: m2}
"""
SMALL = """name: clu-small
nodes: {s1: {}, s2: {}, s3: {}}
"""


def test_spread_goes_over_every_machine_beside_a_busier_lab(cluster_file: Path, tmp_path: Path) -> None:
    """With two nodes each on m1 and m2 (another lab's), the Swarm would balance the machines' load and
    put a small lab's first two nodes on m3; ``--spread`` still gives each of its three a machine."""
    (tmp_path / "busy.yaml").write_text(BUSY)
    (tmp_path / "small.yaml").write_text(SMALL)
    assert main(["up", "-q", str(tmp_path / "busy.yaml"), "--cluster", str(cluster_file)]) == 0
    try:
        assert main(["up", "-q", str(tmp_path / "small.yaml"), "--cluster", str(cluster_file), "--spread"]) == 0
        try:
            machines = {n: s["machine"] for n, s in state.read_lab_info("clu-small")["nodes"].items()}
            assert sorted(machines.values()) == ["m1", "m2", "m3"], machines
        finally:
            assert main(["down", "clu-small"]) == 0
    finally:
        assert main(["down", "clu-busy"]) == 0
    nothing_of("clu-small")


def test_the_web_case_works_across_machines(lab: dict) -> None:
    """kongming20 fetches through squid on ernest-laptop, which asks dnsmasq and reaches nginx behind the router."""
    r = run(lab, "kongming20", ["wget", "-S", "-O-", "--header", "Connection: close", URL])
    assert r.returncode == 0, r.stderr
    assert "Connecting to ernest-laptop (ernest-laptop)|192.168.1.108|:3128" in r.stderr
    assert (ROOT / "topologies" / "book-web" / "index.html").read_text() == r.stdout
    answer = run(lab, "ernest-laptop", ["host", "-t", "A", "www.baidu.com"])
    assert "www.baidu.com is an alias for www.a.shifen.com." in answer.stdout, answer.stdout


def test_full_size_frames_cross_the_vxlan(lab: dict) -> None:
    """The underlay's 1550 bytes carry a 1500-byte frame whole: no MTU was lowered."""
    lan = [n for n, s in lab["nodes"].items() if s["interfaces"].get("eth0", {}).get("network") == "lan"]
    here = lab["nodes"]["kongming20"]["machine"]
    other = next(n for n in lan if lab["nodes"][n]["machine"] != here)
    address = lab["nodes"][other]["interfaces"]["eth0"]["address"].split("/")[0]
    r = run(lab, "kongming20", ["ping", "-c", "2", "-W", "2", "-M", "do", "-s", "1472", address])
    assert r.returncode == 0, r.stdout + r.stderr
    assert run(lab, "kongming20", ["cat", "/sys/class/net/eth0/mtu"]).stdout.strip() == "1500"


def test_nodes_hold_only_what_lab_made(lab: dict) -> None:
    """Sealed: each node has lo and its topology's interfaces, and only its topology's routes."""
    for node, spec in lab["nodes"].items():
        links = json.loads(run(lab, node, ["ip", "-j", "link", "show"]).stdout)
        assert {link["ifname"] for link in links} == {"lo", *spec["interfaces"]}, node
        routes = json.loads(run(lab, node, ["ip", "-j", "route", "show"]).stdout)
        assert all(r.get("dev") in spec["interfaces"] for r in routes), (node, routes)


def test_vxlan_port_only_from_the_cluster(lab: dict) -> None:
    for machine in ("m1", "m2", "m3"):
        rules = in_machine_ns(machine, "iptables", "-S", firewall_chain(LAB))
        sources = {line.split()[3] for line in rules.splitlines() if "-j RETURN" in line}
        others = {str(local.underlay_address(i).ip) + "/32" for i in (1, 2, 3) if f"m{i}" != machine}
        assert sources == others, rules
        assert rules.strip().endswith("-j DROP"), rules
        assert f"--dport {VXLAN_PORT}" in in_machine_ns(machine, "iptables", "-S", "INPUT")


def test_inspect_names_each_nodes_machine(lab: dict, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["inspect", LAB, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {n: d["machine"] for n, d in data["nodes"].items()} == {n: s["machine"] for n, s in lab["nodes"].items()}
    assert data["nodes"]["router"]["interfaces"]["eth1"]["addresses"] == ["10.0.2.254/24"]
    assert data["problems"] == []


def test_graph_draws_each_machine_around_its_nodes(lab: dict, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["graph", LAB]) == 0
    svg = capsys.readouterr().out
    for machine in {s["machine"] for s in lab["nodes"].values()}:
        assert f"machine {machine}" in svg and f"on {machine}" in svg


SLAAC = """\
name: clu-ra
networks:
  lan:  {subnet: 10.69.0.0/24, subnet6: "fd00:69::/64"}
nodes:
  client: {machine: m2, interfaces: {eth0: {network: lan}}}
  router:
    kind: router
    machine: m1
    interfaces: {eth0: {network: lan, address: 10.69.0.1/24, address6: "fd00:69::1/64", ra: true}}
"""


def test_router_advertisements_cross_machines(cluster_file: Path, tmp_path: Path) -> None:
    """radvd in the router's container on m1; the client on m2 takes its SLAAC address over the VXLAN LAN."""
    topology = tmp_path / "ra.yaml"
    topology.write_text(SLAAC)
    up = apart("up", "-q", str(topology), "--cluster", str(cluster_file))
    assert up.returncode == 0, up.stderr
    try:
        shown = apart("exec", "--lab", "clu-ra", "client", "--", "ip", "-j", "-6", "addr", "show", "dev", "eth0",
                      "scope", "global")
        slaac = [a for a in json.loads(shown.stdout)[0]["addr_info"] if a.get("dynamic")]
        assert len(slaac) == 1 and slaac[0]["local"].startswith("fd00:69::"), shown.stdout
        route = apart("exec", "--lab", "clu-ra", "client", "--", "ip", "-6", "route", "show", "default").stdout
        assert "proto ra" in route, route
        ping = apart("exec", "--lab", "clu-ra", "client", "--", "ping", "-6", "-c1", "-W2", "fd00:69::1")
        assert ping.returncode == 0, ping.stdout
    finally:
        assert apart("down", "clu-ra").returncode == 0
    nothing_of("clu-ra")


def test_a_machine_that_stops_answering_is_named(lab: dict, capsys: pytest.CaptureFixture[str]) -> None:
    """Freeze one machine's engine (SIGSTOP): inspect says which machine, exit 3; thawed, all is well again."""
    machine = lab["nodes"]["web1"]["machine"]
    pid = engine_pids()[int(machine[1:]) - 1]
    os.kill(pid, signal.SIGSTOP)
    try:
        capsys.readouterr()
        assert main(["inspect", LAB]) == 3
        err = capsys.readouterr().err
        assert f"machine {machine}" in err, err
    finally:
        os.kill(pid, signal.SIGCONT)
    assert main(["inspect", LAB]) == 0


def test_bad_cluster_input_is_one_line_and_creates_nothing(cluster_file: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    unknown_key = tmp_path / "bad.yaml"
    unknown_key.write_text("machines:\n  m1: {engine: unix:///run/x.sock, color: red}\n")
    capsys.readouterr()
    assert main(["up", str(ROOT / "topologies" / "book-lan.yaml"), "--cluster", str(unknown_key)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"lab: error: {unknown_key}:2: machines.m1.color: unknown key") and "\n" not in err, err

    silent = tmp_path / "silent.yaml"
    silent.write_text(f"machines:\n  m1: {{engine: unix://{tmp_path}/nobody.sock}}\n")
    assert main(["up", str(ROOT / "topologies" / "book-lan.yaml"), "--cluster", str(silent)]) == 3
    err = capsys.readouterr().err.strip()
    assert f"{silent}:2: machine m1: its engine unix://{tmp_path}/nobody.sock does not answer" in err, err

    pinned = tmp_path / "pinned.yaml"
    pinned.write_text((ROOT / "topologies" / "book-lan.yaml").read_text().replace(
        "  far-host:\n", "  far-host:\n    machine: m9\n"))
    assert main(["up", str(pinned), "--cluster", str(cluster_file)]) == 2
    err = capsys.readouterr().err.strip()
    assert "nodes.far-host.machine: 'm9' is not a machine of" in err and f"{pinned}:" in err, err
    assert not state.Journal("book-lan").exists()
    assert on_machine("m1", "service", "ls", "-q", "--filter", "label=lab.name=book-lan") == ""


def nothing_of(lab_name: str) -> None:
    """No service, container, VXLAN device or firewall chain of ``lab_name`` on any machine."""
    assert on_machine("m1", "service", "ls", "-q", "--filter", f"label=lab.name={lab_name}") == ""
    for machine in ("m1", "m2", "m3"):
        assert on_machine(machine, "ps", "-aq", "--filter", f"label=lab.name={lab_name}") == "", machine
        assert firewall_chain(lab_name) not in in_machine_ns(machine, "iptables", "-S"), machine
    from lab.cluster.wiring import vni, vxlan_name

    for machine in ("m1", "m2", "m3"):
        links = in_machine_ns(machine, "ip", "-o", "link")
        assert vxlan_name(vni(lab_name, "net:lan")) not in links and "lvxp" not in links, (machine, links)


@pytest.mark.parametrize("kill_at", ["probe", "service", "machine-container", "vxlan"])
def test_a_killed_up_leaves_nothing_down_cannot_remove(cluster_file: Path, tmp_path: Path, kill_at: str) -> None:
    """SIGKILL ``lab up --cluster`` at a point of its build; ``lab down`` (or, before its journal exists,
    ``lab clean --cluster``) then leaves nothing of it on any machine."""
    name = f"clu-crash-{kill_at[:4]}"
    topology = tmp_path / "t.yaml"
    topology.write_text((ROOT / "topologies" / "book-lan.yaml").read_text().replace("name: book-lan", f"name: {name}"))
    journal = state.Journal(name)
    proc = subprocess.Popen([sys.executable, "-m", "lab", "up", "-q", str(topology), "--cluster", str(cluster_file),
                             "--spread"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if kill_at == "probe":
                if on_machine("m1", "ps", "-q", "--filter", f"label=lab.name={name}"):
                    break
            elif any(e["kind"] == kill_at for e in journal.entries()):
                break
            time.sleep(0.01)
    finally:
        proc.kill()
        proc.wait()
    if kill_at == "probe":  # before the journal: what lab clean --cluster sweeps (not every lab, as clean does)
        from lab.cluster.model import load_cluster
        from lab.cluster.teardown import clean_orphans

        swept = clean_orphans(load_cluster(cluster_file))
        assert swept.skipped == [], swept
    assert main(["down", name]) == 0
    nothing_of(name)
    assert not journal.exists()


def test_the_catalogue_holds_when_spread(cluster_file: Path, tmp_path: Path) -> None:
    """Every experiment of the book, each in its own lab spread over the three machines, checked from its
    captures as on one machine (``lab run --all --cluster FILE --spread``).

    One at a time: the three simulated machines share this machine's two cores, and with two labs at
    once the experiments that time a WAN (rtt-rto: SRTT 97 ms across an 80 ms path) measured the
    CPU contention of lab's emulator and the engines, not the path."""
    out = tmp_path / "runs"
    assert main(["run", "--all", "--cluster", str(cluster_file), "--spread", "--jobs", "1", "-q", "--out", str(out),
                 "--json-file", str(tmp_path / "all.json")]) == 0, (tmp_path / "all.json").read_text()[-2000:]
    document = json.loads((tmp_path / "all.json").read_text())
    items = document["experiments"]
    assert len(items) >= 31 and all(i["verdict"] == "pass" for i in items)
    spread = [i for i in items if len(set(i["machines"].values())) > 1]
    assert len(spread) == len(items), [i["id"] for i in items if i not in spread]


def test_down_with_a_machine_frozen_finishes_once_it_answers(cluster_file: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    name = "clu-frozen"
    topology = tmp_path / "t.yaml"
    topology.write_text((ROOT / "topologies" / "book-lan.yaml").read_text().replace("name: book-lan", f"name: {name}"))
    assert main(["up", "-q", str(topology), "--cluster", str(cluster_file), "--spread"]) == 0
    machines = {s["machine"] for s in state.read_lab_info(name)["nodes"].values()}
    frozen = sorted(machines - {"m1"})[0]  # not the manager
    pid = engine_pids()[int(frozen[1:]) - 1]
    os.kill(pid, signal.SIGSTOP)
    try:
        capsys.readouterr()
        assert main(["down", name]) == 3
        captured = capsys.readouterr()
        assert f"skipped: machine {frozen}:" in captured.err and "not removed everywhere" in captured.err, captured
        assert state.Journal(name).exists()
    finally:
        os.kill(pid, signal.SIGCONT)
    assert main(["down", name]) == 0
    nothing_of(name)


@pytest.mark.parametrize("agent_end", ["killed", "running"])
def test_down_undoes_the_wiring_whether_the_agent_can_or_not(cluster_file: Path, tmp_path: Path, agent_end: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The lab's agent undoes its machine's VXLAN devices and firewall as ``down`` stops it; an agent
    killed beforehand cannot, and a throwaway one does it instead."""
    name = f"clu-agent-{agent_end[:4]}"
    topology = tmp_path / "t.yaml"
    topology.write_text((ROOT / "topologies" / "book-lan.yaml").read_text().replace("name: book-lan", f"name: {name}"))
    assert main(["up", "-q", str(topology), "--cluster", str(cluster_file), "--spread"]) == 0
    machines = {s["machine"] for s in state.read_lab_info(name)["nodes"].values()}
    assert len(machines) > 1
    for machine in machines:
        assert firewall_chain(name) in in_machine_ns(machine, "iptables", "-S"), machine
    if agent_end == "killed":
        victim = sorted(machines - {"m1"})[0]
        on_machine(victim, "kill", f"lab-{name}._agent.{victim}")
    else:  # every agent undoes its own machine's part: no throwaway is needed
        from lab.cluster import teardown

        def no_throwaway(*args: object, **kwargs: object) -> None:
            raise AssertionError("a throwaway agent was started, though the lab's agents were running")

        monkeypatch.setattr(teardown, "run_agent", no_throwaway)
    assert main(["down", name]) == 0
    nothing_of(name)  # no container, no VXLAN device, no firewall chain of it anywhere


def test_down_leaves_nothing_on_any_machine(lab: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert apart("down", LAB).returncode == 0
    assert on_machine("m1", "service", "ls", "-q") == ""
    for machine in ("m1", "m2", "m3"):
        assert on_machine(machine, "ps", "-aq") == ""
        assert "lvx" not in in_machine_ns(machine, "ip", "-o", "link")
        assert firewall_chain(LAB) not in in_machine_ns(machine, "iptables", "-S")
    assert not state.Journal(LAB).exists()
    assert main(["down", LAB]) == 0  # idempotent


def test_local_cluster_down_removes_it_exactly(cluster_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pids = engine_pids()
    assert main(["cluster", "local", "down", "--name", CLUSTER]) == 0
    assert main(["cluster", "local", "down", "--name", CLUSTER]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"cluster {CLUSTER}: nothing to remove"
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"labc-{CLUSTER}." not in listing
    assert not local.cluster_dir(CLUSTER).exists()
    assert not (local.DATA_ROOT / CLUSTER).exists()
    assert not list(Path("/sys/fs/cgroup").glob(f"*/{local.cgroup_parent(CLUSTER, 'm1')}"))
