"""A cluster whose engines lab reaches over TCP with TLS, from a namespace that shares only the network.

``lab cluster local up 2 --tls`` has every engine listen on ``tcp://198.18.0.N:2376`` with
``--tlsverify`` and writes ``cluster-tcp.yaml`` naming them so, with the client certificate of
the cluster's own CA. Only the underlay reaches those addresses, so ``lab`` runs in the
underlay's namespace (198.18.0.254) and in a PID namespace of its own: every verb then goes
through the engines' TCP endpoints, as from a workstation.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import two_machines
from two_machines import build_images_here, lan_topology_file

from lab import state
from lab.capture.pcapfile import read_pcap
from lab.cluster import certs, local

pytestmark = [pytest.mark.root, pytest.mark.docker]
CLUSTER = "tlsci"
LAB = "clu-tls"


def on_machine(machine: str, *argv: str) -> str:
    return two_machines.on_machine(CLUSTER, machine, *argv)


def from_underlay(*argv: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``argv`` in the underlay's network namespace and a PID namespace of its own."""
    return subprocess.run(["ip", "netns", "exec", local.netns_name(CLUSTER, "_ul"),
                           "unshare", "--pid", "--fork", "--mount-proc", *argv],
                          capture_output=True, text=True, timeout=timeout)


def lab(*argv: str) -> subprocess.CompletedProcess[str]:
    return from_underlay(sys.executable, "-m", "lab", *argv)


@pytest.fixture(scope="module")
def tcp_file() -> Iterator[Path]:
    local.down(CLUSTER)  # a previous run that was killed
    build_images_here()
    local.up(2, CLUSTER, tls=True)
    try:
        yield local.tcp_cluster_file(CLUSTER)
    finally:
        lab("down", LAB)
        assert local.down(CLUSTER) == []


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lan_topology_file(tmp_path_factory.mktemp("tls"), LAB, "10.9.1.0/24")


def test_the_engines_answer_only_a_client_of_the_clusters_ca(tcp_file: Path) -> None:
    tls = local.cluster_dir(CLUSTER) / "tls"
    url = "https://198.18.0.1:2376/version"
    ok = from_underlay("curl", "-sf", "--cacert", str(tls / "ca.pem"), "--cert", str(tls / "client-cert.pem"),
                       "--key", str(tls / "client-key.pem"), url, timeout=30)
    assert ok.returncode == 0 and "ApiVersion" in ok.stdout, ok.stderr
    anonymous = from_underlay("curl", "-sf", "--cacert", str(tls / "ca.pem"), url, timeout=30)
    assert anonymous.returncode != 0  # --tlsverify: no client certificate, no answer
    # The engine listens on the underlay only (asked without sending anything: from this machine's own
    # namespace, 198.18.0.1 is not the lab's but whatever its uplink routes to, and lab traffic never goes there).
    listening = subprocess.run(["ip", "netns", "exec", local.netns_name(CLUSTER, "m1"), "ss", "-Hltn"],
                               capture_output=True, text=True, timeout=30, check=True).stdout
    assert "198.18.0.1:2376" in listening, listening
    assert 'engine: "tcp://198.18.0.2:2376"' in tcp_file.read_text()


def test_the_doctor_checks_every_machine_over_tls(tcp_file: Path) -> None:
    doctor = lab("cluster", "doctor", str(tcp_file), "--json")
    rows = {r["name"]: r for r in json.loads(doctor.stdout)["checks"]}
    for machine in ("m1", "m2"):
        assert rows[f"{machine}: engine"]["status"] == "ok", rows


def test_a_lab_over_tcp_engines_works_and_goes(tcp_file: Path, topology: Path) -> None:
    up = lab("up", "-q", str(topology), "--cluster", str(tcp_file))
    assert up.returncode == 0, up.stderr
    info = state.read_lab_info(LAB)
    assert {m["engine"] for m in info["machines"].values()} == {"tcp://198.18.0.1:2376", "tcp://198.18.0.2:2376"}
    ping = lab("exec", "--lab", LAB, "a", "--", "ping", "-c", "2", "-W", "2", "10.9.1.2")
    assert ping.returncode == 0, ping.stdout + ping.stderr
    pcap = topology.parent / "b.pcap"
    capture = subprocess.Popen(["ip", "netns", "exec", local.netns_name(CLUSTER, "_ul"), sys.executable, "-m", "lab",
                                "capture", "--lab", LAB, "b:eth0", "-w", str(pcap), "-f", "icmp", "-d", "6"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)  # tcpdump on m2, started through m2's agent over TLS
    pinged = lab("exec", "--lab", LAB, "a", "--", "ping", "-c", "3", "-i", "0.3", "10.9.1.2")
    assert pinged.returncode == 0
    _, err = capture.communicate(timeout=60)
    assert capture.returncode == 0, err
    echoes = [p for p in read_pcap(pcap, "b:eth0") if p.icmp is not None and p.icmp.type == 8]
    assert len(echoes) >= 3, echoes
    inspect = lab("inspect", LAB, "--json")
    assert inspect.returncode == 0, inspect.stderr
    assert {n: s["machine"] for n, s in json.loads(inspect.stdout)["nodes"].items()} == {"a": "m1", "b": "m2"}
    down = lab("down", LAB)
    assert down.returncode == 0, down.stderr
    for machine in ("m1", "m2"):
        assert on_machine(machine, "ps", "-aq") == ""


def test_a_certificate_of_another_ca_is_one_line_and_nothing_is_made(tcp_file: Path, topology: Path,
                                                                    tmp_path: Path) -> None:
    certs.make_all(tmp_path / "tls", {})
    stranger = tmp_path / "cluster.yaml"
    stranger.write_text(tcp_file.read_text())
    up = lab("up", "-q", str(topology), "--cluster", str(stranger))
    assert up.returncode == 3, up.stdout + up.stderr
    [line] = [x for x in up.stderr.splitlines() if x.strip()][:1]
    assert "m1" in line, up.stderr
    assert not state.Journal(LAB).exists()
    for machine in ("m1", "m2"):
        assert on_machine(machine, "ps", "-aq") == ""


def test_local_cluster_down_takes_its_labs_down_first(tcp_file: Path, topology: Path) -> None:
    """Removing the machines a lab runs on would strand its journal: the lab goes first (last test here)."""
    up = subprocess.run([sys.executable, "-m", "lab", "up", "-q", str(topology), "--cluster",
                         str(local.cluster_file(CLUSTER))], capture_output=True, text=True, timeout=600)
    assert up.returncode == 0, up.stderr
    assert local.labs_on(CLUSTER) == [LAB]
    steps: list[str] = []
    assert local.down(CLUSTER, progress=steps.append) == []
    assert f"lab {LAB}: down first, it runs on this cluster" in steps
    assert not state.Journal(LAB).exists()
    assert not local.cluster_dir(CLUSTER).exists()
