"""The doctor's judgements and preflight, with the machine's facts replaced where a test needs them."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import doctor
from lab.errors import EnvironmentProblem
from lab.topology.model import Topology


def test_preflight_raises_the_checks_own_words(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor.os, "geteuid", lambda: 1000)
    with pytest.raises(EnvironmentProblem) as exc:
        doctor.preflight({"root", "docker"})
    check = doctor.check_root()
    assert (exc.value.message, exc.value.hint) == (check.summary, check.fix)
    assert exc.value.exit_code == 3


def test_preflight_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor.os, "geteuid", lambda: 0)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(EnvironmentProblem) as exc:
        doctor.preflight({"root", "docker"})
    assert exc.value.message.startswith("no Docker engine answers at unix:///nonexistent/docker.sock")
    assert "container nodes" in exc.value.message
    assert exc.value.hint and ("dockerd" in exc.value.hint or "docker.io" in exc.value.hint)


def test_preflight_passes_when_all_needed_checks_are_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor.os, "geteuid", lambda: 0)
    doctor.preflight({"root"})
    doctor.preflight(set())


def test_preflight_refuses_unknown_needs() -> None:
    with pytest.raises(ValueError, match="unknown preflight needs"):
        doctor.preflight({"root", "warp-drive"})


def test_needs_for_a_topology() -> None:
    hosts = Topology.model_validate({"name": "t", "nodes": {"a": {}, "b": {"kind": "router"}}})
    mixed = Topology.model_validate({"name": "t", "nodes": {"a": {}, "w": {"kind": "container", "image": "web"}}})
    assert doctor.needs_for(hosts) == {"root"}
    assert doctor.needs_for(mixed) == {"root", "docker"}


def fake_proc(monkeypatch: pytest.MonkeyPatch, values: dict[str, int]) -> None:
    monkeypatch.setattr(doctor, "_read_int", lambda path: values.get(path))


NEIGH = "/proc/sys/net/ipv4/neigh/default/gc_thresh"


@pytest.mark.parametrize("nodes, status", [(20, "ok"), (30, "warn"), (40, "warn")])
def test_neighbour_limits_against_lab_size(monkeypatch: pytest.MonkeyPatch, nodes: int, status: str) -> None:
    fake_proc(monkeypatch, {f"{NEIGH}1": 128, f"{NEIGH}2": 512, f"{NEIGH}3": 1024})
    check = doctor.check_neighbours(nodes)
    assert check.status == status
    if status != "ok":
        assert f"gc_thresh3={max(1024, 2 * nodes * (nodes - 1))}" in check.fix
    if nodes == 40:  # 1560 entries: past gc_thresh3
        assert "neighbour table overflow" in check.summary


def test_inotify_limits_against_lab_size(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_proc(monkeypatch, {"/proc/sys/fs/inotify/max_user_instances": 128,
                            "/proc/sys/fs/inotify/max_user_watches": 65536})
    assert doctor.check_inotify(20).status == "ok"
    low = doctor.check_inotify(500)
    assert low.status == "warn" and "fs.inotify.max_user_instances=564" in low.fix


def test_missing_tools_say_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None)
    assert (doctor.check_tcpdump().status, doctor.check_tcpdump().fix) == ("fail", "apt-get install tcpdump")
    assert doctor.check_nsenter().status == "fail"
    assert doctor.check_ethtool().status == "warn"
    assert doctor.check_iptables().status == "fail"
    assert doctor.check_iproute2().fix == "apt-get install iproute2"


def test_iptables_backend_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor.shutil, "which", lambda name: f"/usr/sbin/{name}")
    for version, backend in (("iptables v1.8.9 (nf_tables)", "nf_tables"), ("iptables v1.8.7 (legacy)", "legacy")):
        monkeypatch.setattr(doctor, "_first_line", lambda argv, v=version: v)
        check = doctor.check_iptables()
        assert check.status == "ok" and f"{backend} backend" in check.summary


def test_kernel_probes_are_not_tried_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor.os, "geteuid", lambda: 1000)
    for check in (doctor.check_statistic(), doctor.check_link_emulator(), doctor.check_rate_qdiscs()):
        assert check.status == "warn" and "needs root" in check.summary


def test_every_check_has_a_name_status_and_summary() -> None:
    for check in doctor.run_checks(5):
        assert check.name and check.status in ("ok", "warn", "fail") and check.summary
        assert "\n" not in check.summary + check.fix
        if check.status == "fail":
            assert check.fix, f"{check.name} fails without saying what to do"


def test_open_files_are_judged_by_what_up_holds_at_once_not_by_the_lab_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor.resource, "getrlimit", lambda what: (1024, 20000))
    ten_thousand = doctor.check_open_files(10000)
    assert ten_thousand.status == "ok" and "at most 768 at once" in ten_thousand.summary
    monkeypatch.setattr(doctor.resource, "getrlimit", lambda what: (256, 512))
    low = doctor.check_open_files(10)
    assert low.status == "fail" and low.fix.startswith("raise the hard limit: ulimit -Hn 768")


def test_memory_is_judged_against_what_is_available(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:  8000000 kB\nMemAvailable:    1000000 kB\n")
    real_path = doctor.Path
    monkeypatch.setattr(doctor, "Path", lambda p: meminfo if p == "/proc/meminfo" else real_path(p))
    assert doctor.check_memory(1000).status == "ok"  # ~293 MiB of ~976
    big = doctor.check_memory(10000)  # ~2.9 GiB of ~976 MiB
    assert big.status == "warn" and "build at most 2666 nodes" in big.fix
