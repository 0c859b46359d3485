"""A cluster with a registry: the machines pull the lab images from it instead of receiving them.

``lab cluster local up 2 --registry`` runs Debian's docker-registry on the simulated underlay,
where only the machines reach it; its cluster file says ``push_from: m1``, so ``lab up`` sends
the images to m1 through its engine, pushes them from there, and every machine pulls them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import two_machines
from two_machines import lan_topology_file

from lab import state
from lab.cli import main
from lab.cluster import local

pytestmark = [pytest.mark.root, pytest.mark.docker]
CLUSTER = "regci"
LAB = "clu-registry"


def on_machine(machine: str, *argv: str) -> str:
    return two_machines.on_machine(CLUSTER, machine, *argv)


def catalog() -> list[str]:
    """The registry's repositories, asked from the underlay's own namespace (this machine has no route there)."""
    out = subprocess.run(["ip", "netns", "exec", local.netns_name(CLUSTER, "_ul"), "curl", "-sf",
                          f"http://{local.registry_endpoint()}/v2/_catalog"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return list(json.loads(out)["repositories"])


def apart(*argv: str) -> subprocess.CompletedProcess[str]:
    """``lab`` in a PID namespace of its own, as on a computer that shares no kernel with the machines."""
    return subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-m", "lab", *argv],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def cluster_file() -> Iterator[Path]:
    local.down(CLUSTER)  # a previous run that was killed
    path = local.up(2, CLUSTER, registry=True)
    try:
        yield path
    finally:
        main(["down", LAB])
        assert local.down(CLUSTER) == []


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lan_topology_file(tmp_path_factory.mktemp("registry"), LAB, "10.9.0.0/24")


def test_the_cluster_file_names_the_registry(cluster_file: Path) -> None:
    text = cluster_file.read_text()
    assert f'registry: {{address: "{local.registry_endpoint()}", push_from: m1}}' in text, text
    assert catalog() == []


def test_the_machines_pull_the_images_from_the_registry(cluster_file: Path, topology: Path) -> None:
    up = apart("up", "-q", str(topology), "--cluster", str(cluster_file))
    assert up.returncode == 0, up.stderr
    assert {"lab-agent", "lab-base", "lab-host"} <= set(catalog())
    prefix = f"{local.registry_endpoint()}/lab-host:"
    held = on_machine("m2", "images", "--format", "{{.Repository}}:{{.Tag}}").split()
    assert any(t.startswith(prefix) for t in held), held
    assert not any(t.startswith("lab-host:") for t in held), f"m2 was sent the image, not pulled: {held}"
    digests = on_machine("m2", "image", "inspect", "--format", "{{json .RepoDigests}}",
                         next(t for t in held if t.startswith(prefix)))
    assert local.registry_endpoint() in digests  # a pulled image knows its registry digest; a loaded one does not
    info = state.read_lab_info(LAB)
    assert {n: s["machine"] for n, s in info["nodes"].items()} == {"a": "m1", "b": "m2"}
    ping = apart("exec", "--lab", LAB, "a", "--", "ping", "-c", "2", "-W", "2", "10.9.0.2")
    assert ping.returncode == 0, ping.stdout + ping.stderr


def test_the_doctor_checks_the_registry_from_every_machine(cluster_file: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cluster", "doctor", str(cluster_file), "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["checks"]}
    for machine in ("m1", "m2"):
        assert rows[f"{machine}: registry"]["status"] == "ok", rows
        assert "reaches" in rows[f"{machine}: registry"]["summary"]
        images = rows[f"{machine}: images"]["summary"]  # the host, agent and base images of this lab, not all
        assert images.startswith("all ") or images.endswith("pulled from the registry when a lab needs them"), images


def test_down_then_up_again_pulls_nothing(cluster_file: Path, topology: Path) -> None:
    assert apart("down", LAB).returncode == 0
    for machine in ("m1", "m2"):
        assert on_machine(machine, "ps", "-aq") == ""
    before = sorted(on_machine("m2", "images", "-q", "--no-trunc").split())  # the engine's order of equal times varies
    up = apart("up", "-q", str(topology), "--cluster", str(cluster_file))
    assert up.returncode == 0, up.stderr
    assert sorted(on_machine("m2", "images", "-q", "--no-trunc").split()) == before
    assert apart("down", LAB).returncode == 0


def test_a_registry_that_does_not_answer_is_one_line_and_nothing_is_made(cluster_file: Path, topology: Path,
                                                                          tmp_path: Path) -> None:
    """Nothing listens at .253 on the underlay: m1's engine cannot push, so up stops before it makes anything."""
    elsewhere = tmp_path / "cluster.yaml"
    elsewhere.write_text(cluster_file.read_text().replace(local.registry_endpoint(), "198.18.0.253:5000"))
    up = apart("up", "-q", str(topology), "--cluster", str(elsewhere))
    assert up.returncode == 3, up.stderr
    [line] = [x for x in up.stderr.splitlines() if x.strip()][:1]
    assert "registry 198.18.0.253:5000: machine m1's engine cannot reach it" in line, up.stderr
    assert not state.Journal(LAB).exists()
    for machine in ("m1", "m2"):
        assert on_machine(machine, "ps", "-aq") == ""
