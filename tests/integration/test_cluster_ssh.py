"""A cluster whose engines lab reaches over ssh, from a workstation that shares only the network.

Each machine of ``lab cluster local up 2`` gets an sshd (:mod:`ssh_machines`), and the cluster
file names its engine ``ssh://root@198.18.0.N``: docker-py runs ``ssh ... docker system
dial-stdio``, as the docker CLI does, with the workstation's key and known_hosts. ``lab`` runs
in the underlay's namespace, a PID namespace and a home of its own, so every verb goes through
the machines' sshd.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import two_machines
from ssh_machines import SshCluster, sshd_on_machines
from two_machines import build_images_here, lan_topology_file

from lab import state
from lab.capture.pcapfile import read_pcap
from lab.cluster import local

pytestmark = [pytest.mark.root, pytest.mark.docker]
CLUSTER = "sshci"
LAB = "clu-ssh"


def on_machine(machine: str, *argv: str) -> str:
    return two_machines.on_machine(CLUSTER, machine, *argv)


@pytest.fixture(scope="module")
def ssh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshCluster]:
    local.down(CLUSTER)  # a previous run that was killed
    build_images_here()
    local.up(2, CLUSTER)
    try:
        with sshd_on_machines(CLUSTER, ["m1", "m2"], tmp_path_factory.mktemp("ssh")) as machines:
            try:
                yield machines
            finally:
                machines.from_workstation(sys.executable, "-m", "lab", "down", LAB)
    finally:
        assert local.down(CLUSTER) == []


@pytest.fixture(scope="module")
def topology(ssh: SshCluster) -> Path:
    return lan_topology_file(ssh.workdir, LAB, "10.9.2.0/24")


def lab(ssh: SshCluster, *argv: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    return ssh.from_workstation(sys.executable, "-m", "lab", *argv, home=home)


def test_the_doctor_checks_every_machine_over_ssh(ssh: SshCluster) -> None:
    doctor = lab(ssh, "cluster", "doctor", str(ssh.file), "--json")
    rows = {r["name"]: r for r in json.loads(doctor.stdout)["checks"]}
    for machine in ("m1", "m2"):
        assert rows[f"{machine}: engine"]["status"] == "ok", rows
        assert rows[f"{machine}: swarm"]["status"] == "ok", rows


def test_a_lab_over_ssh_engines_works_and_goes(ssh: SshCluster, topology: Path) -> None:
    up = lab(ssh, "up", "-q", str(topology), "--cluster", str(ssh.file))
    assert up.returncode == 0, up.stderr
    info = state.read_lab_info(LAB)
    assert {m["engine"] for m in info["machines"].values()} == {"ssh://root@198.18.0.1", "ssh://root@198.18.0.2"}
    ping = lab(ssh, "exec", "--lab", LAB, "a", "--", "ping", "-c", "2", "-W", "2", "10.9.2.2")
    assert ping.returncode == 0, ping.stdout + ping.stderr
    pcap = ssh.workdir / "b.pcap"
    capture = subprocess.Popen(ssh.workstation_argv(sys.executable, "-m", "lab", "capture", "--lab", LAB, "b:eth0",
                                                    "-w", str(pcap), "-f", "icmp", "-d", "6"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)  # tcpdump on m2, started through m2's agent over ssh
    pinged = lab(ssh, "exec", "--lab", LAB, "a", "--", "ping", "-c", "3", "-i", "0.3", "10.9.2.2")
    assert pinged.returncode == 0
    _, err = capture.communicate(timeout=60)
    assert capture.returncode == 0, err
    echoes = [p for p in read_pcap(pcap, "b:eth0") if p.icmp is not None and p.icmp.type == 8]
    assert len(echoes) >= 3, echoes
    inspect = lab(ssh, "inspect", LAB, "--json")
    assert inspect.returncode == 0, inspect.stderr
    assert {n: s["machine"] for n, s in json.loads(inspect.stdout)["nodes"].items()} == {"a": "m1", "b": "m2"}
    down = lab(ssh, "down", LAB)
    assert down.returncode == 0, down.stderr
    for machine in ("m1", "m2"):
        assert on_machine(machine, "ps", "-aq") == ""


def test_a_machine_whose_host_key_is_not_known_is_one_line_and_nothing_is_made(ssh: SshCluster, topology: Path,
                                                                               tmp_path: Path) -> None:
    stranger = tmp_path / "home"
    shutil.copytree(ssh.home, stranger)
    known = stranger / ".ssh" / "known_hosts"
    known.write_text("".join(line + "\n" for line in known.read_text().splitlines() if "198.18.0.2" not in line))
    up = lab(ssh, "up", "-q", str(topology), "--cluster", str(ssh.file), home=stranger)
    assert up.returncode == 3, up.stdout + up.stderr
    [line] = [x for x in up.stderr.splitlines() if x.strip()]  # ssh's own words are inside lab's one line
    assert "machine m2" in line and "ssh: Host key verification failed." in line, up.stderr
    assert not state.Journal(LAB).exists()
    for machine in ("m1", "m2"):
        assert on_machine(machine, "ps", "-aq") == ""
