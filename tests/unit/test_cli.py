"""The CLI as a user meets it: exit codes, one-line messages, --dry-run, world-writable files, preflight."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lab import doctor
from lab.cli import main

ROOT = Path(__file__).resolve().parents[2]
BOOK_LAN = ROOT / "topologies" / "book-lan.yaml"
ROUTED = ROOT / "topologies" / "routed-lans.yaml"

SMALL = ("name: {name}\nnetworks:\n  lan: {{subnet: 10.0.0.0/24}}\n"
         "nodes:\n  a: {{interfaces: {{eth0: {{network: lan}}}}}}\n")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private state directory: anything lab up would create shows up here."""
    path = tmp_path / "state"
    monkeypatch.setenv("LAB_STATE_DIR", str(path))
    return path


def lab_namespaces(lab: str) -> list[str]:
    try:
        return [n for n in os.listdir("/run/netns") if n.startswith(f"lab-{lab}.")]
    except FileNotFoundError:
        return []


def test_validate_ok(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "validate", str(BOOK_LAN))
    assert (code, err) == (0, "")
    assert out.strip() == f"{BOOK_LAN}: ok — lab book-lan: 5 nodes, 2 networks, 1 link, 7 interfaces"


def test_validate_template_with_variables(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", str(ROUTED), "-v", "hosts=5")
    assert code == 0 and "lab routed-lans: 12 nodes" in out


def test_validate_bad_is_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(SMALL.format(name="cli-bad").replace("network: lan", "network: wan"))
    code, out, err = run(capsys, "validate", str(f))
    assert (code, out) == (2, "")
    assert err == f"lab: error: {f}:5: nodes.a.interfaces.eth0.network: unknown network 'wan' (networks: lan)\n"


@pytest.mark.parametrize("args, message", [
    (["validate", "/nonexistent/t.yaml"], "no such topology file"),
    (["validate", str(BOOK_LAN), "-v", "1x=3"], "expected NAME=VALUE"),
    (["validate", "/dev/null"], "not a regular file"),
])
def test_usage_errors_are_exit_2(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, _, err = run(capsys, *args)
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.splitlines()) == 1


def test_up_dry_run_prints_the_plan_and_creates_nothing(capsys: pytest.CaptureFixture[str], state: Path) -> None:
    before = lab_namespaces("book-lan")
    code, out, err = run(capsys, "up", "--dry-run", str(BOOK_LAN))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "lab book-lan"
    assert "  create namespace lab-book-lan._sw (switch)" in lines
    assert any(line.startswith("  bridge br-lan ") for line in lines)
    assert any("veth lab-book-lan.router:eth1#3 10.0.0.1/30 <-> lab-book-lan.isp:eth0#2 10.0.0.2/30" in line
               for line in lines)
    assert not state.exists()
    assert lab_namespaces("book-lan") == before


# ----------------------------------------------------------------------------- world-writable places


def world_writable_dir(tmp_path: Path, sticky: bool) -> Path:
    d = tmp_path / ("sticky" if sticky else "open")
    d.mkdir()
    d.chmod(0o1777 if sticky else 0o777)
    return d


def test_topology_in_a_world_writable_directory_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                          state: Path) -> None:
    d = world_writable_dir(tmp_path, sticky=False)
    f = d / "t.yaml"
    f.write_text(SMALL.format(name="cli-ww"))
    for verb in (["validate"], ["up", "--quiet"]):
        code, out, err = run(capsys, *verb, str(f))
        assert (code, out) == (2, "")
        assert err.startswith(f"lab: error: {f}: refusing a topology from a world-writable place: the directory {d} ")
        assert "--force" in err and len(err.splitlines()) == 1
    assert not state.exists()
    code, out, _ = run(capsys, "validate", "--force", str(f))
    assert code == 0 and "ok — lab cli-ww" in out


def test_sticky_directories_are_fine(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = world_writable_dir(tmp_path, sticky=True) / "t.yaml"
    f.write_text(SMALL.format(name="cli-sticky"))
    assert run(capsys, "validate", str(f))[0] == 0


def test_world_writable_file_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "t.yaml"
    f.write_text(SMALL.format(name="cli-wwf"))
    f.chmod(0o666)
    code, _, err = run(capsys, "validate", str(f))
    assert code == 2 and f"the file {f} can be changed by any user" in err


def test_symlink_into_a_world_writable_directory_is_refused(capsys: pytest.CaptureFixture[str],
                                                            tmp_path: Path) -> None:
    target = world_writable_dir(tmp_path, sticky=False) / "t.yaml"
    target.write_text(SMALL.format(name="cli-link"))
    link = tmp_path / "link.yaml"
    link.symlink_to(target)
    code, _, err = run(capsys, "validate", str(link))
    assert code == 2 and "world-writable" in err


# ----------------------------------------------------------------------------- preflight and doctor


def test_up_refuses_early_in_the_doctors_words(capsys: pytest.CaptureFixture[str], tmp_path: Path, state: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    f = tmp_path / "c.yaml"
    f.write_text("name: cli-pf\nnodes:\n  a: {kind: container, image: host}\n")
    expected = doctor.check_root() if os.geteuid() != 0 else doctor.check_docker()
    assert expected.status == "fail"
    code, out, err = run(capsys, "up", "--quiet", str(f))
    assert code == 3
    assert err == f"lab: error: {expected.summary} ({expected.fix})\n"
    assert not state.exists() and lab_namespaces("cli-pf") == []


def test_doctor_json_and_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    code, out, _ = run(capsys, "doctor", "--json")
    report = json.loads(out)
    names = [c["name"] for c in report["checks"]]
    assert names[:2] == ["root", "docker"] and "link emulator" in names and "neighbour table" in names
    assert all(c["status"] in ("ok", "warn", "fail") and c["summary"] for c in report["checks"])
    failed = any(c["status"] == "fail" for c in report["checks"])
    assert report["ok"] is not failed
    assert code == (3 if failed else 0)


def test_doctor_fails_with_exit_3_when_not_root(capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor.os, "geteuid", lambda: 1000)
    code, out, _ = run(capsys, "doctor")
    assert code == 3
    assert "lab needs root to create namespaces" in out and "run it with sudo" in out
    assert "failed" in out.splitlines()[-1]


@pytest.mark.parametrize("args", [["down", ".."], ["down", "."], ["inspect", ".."],
                                  ["exec", "--lab", "..", "a", "--", "true"]])
def test_lab_names_from_the_command_line_never_become_paths(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    """`lab down ..` once made the lab directory the state root's parent (/run) and removed it."""
    root = tmp_path / "state"
    root.mkdir()
    canary = tmp_path / "canary"
    canary.write_text("still here")
    monkeypatch.setenv("LAB_STATE_DIR", str(root))
    code, _, err = run(capsys, *args)
    assert canary.exists() and root.exists()
    needs_root_first = args[0] == "down" and os.geteuid() != 0
    assert code == (3 if needs_root_first else 2), err
    assert needs_root_first or "is not a lab name" in err


def test_validate_refuses_a_bad_service_reference(tmp_path, capsys):
    import shutil
    from pathlib import Path

    from lab.cli import main

    root = Path(__file__).resolve().parents[2] / "topologies"
    (tmp_path / "book-web").mkdir()
    shutil.copy(root / "book-web" / "index.html", tmp_path / "book-web" / "index.html")
    text = (root / "book-web.yaml").read_text()
    (tmp_path / "ok.yaml").write_text(text)
    (tmp_path / "bad.yaml").write_text(text.replace("allow: [lan]", "allow: [nosuchnet]"))
    tmp_path.chmod(0o700)
    assert main(["validate", str(tmp_path / "ok.yaml")]) == 0
    assert main(["validate", str(tmp_path / "bad.yaml")]) == 2
    assert "proxy.allow names network 'nosuchnet'" in capsys.readouterr().err


def test_a_broken_pipe_inside_lab_is_an_internal_error_not_a_silent_exit(capsys: pytest.CaptureFixture[str],
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """click ends on any EPIPE with a silent exit 1, meant for a reader that has gone; a socket's is a bug to show."""
    def broken() -> int:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(doctor.os, "geteuid", broken)
    code, _, err = run(capsys, "doctor")
    assert code == 70
    assert err.startswith("lab: error: internal error: BrokenPipeError: [Errno 32] Broken pipe"), err


def test_a_reader_that_has_gone_still_ends_lab_quietly() -> None:
    """``lab validate FILE | true``: our stdout's reader closed it; that is exit 1 and no message."""
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([sys.executable, "-m", "lab", "validate", str(BOOK_LAN)], stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (1, "")


def test_a_bare_name_is_the_shipped_file_everywhere(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """``lab validate book-lan`` from another directory names, checks and would record the shipped file."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "validate", "book-lan")
    assert (code, err) == (0, "")
    assert out.startswith(f"{(ROOT / 'lab' / 'topologies' / 'book-lan.yaml')}: ok"), out


def test_a_dry_run_on_a_cluster_checks_the_pins_without_an_engine(capsys: pytest.CaptureFixture[str],
                                                                  tmp_path: Path, state: Path) -> None:
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text("machines:\n  m1: {engine: unix:///nonexistent/1.sock}\n"
                       "  m2: {engine: unix:///nonexistent/2.sock}\n")
    pinned = tmp_path / "pinned.yaml"
    pinned.write_text(SMALL.format(name="cli-pins").replace("  a: {", "  a: {machine: m7, "))
    code, out, err = run(capsys, "up", "--dry-run", str(pinned), "--cluster", str(cluster))
    assert (code, out) == (2, "")
    assert err == (f"lab: error: {pinned}:5: nodes.a.machine: 'm7' is not a machine of {cluster} "
                   "(machines: m1, m2)\n")
    pinned.write_text(SMALL.format(name="cli-pins").replace("  a: {", "  a: {machine: m2, "))
    code, out, err = run(capsys, "up", "--dry-run", str(pinned), "--cluster", str(cluster))
    assert code == 0 and out.startswith("lab cli-pins") and "the pins fit" in err
    assert not state.exists() or not any(state.iterdir())


def test_run_list_is_the_catalogue_and_runs_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    code, listed, _ = run(capsys, "run", "--list", "--json")
    assert code == 0 and "tcp-connect-timeout" in {e["id"] for e in json.loads(listed)}
    assert run(capsys, "experiments", "--json") == (0, listed, "")
    code, out, err = run(capsys, "run", "--list", "tcp-connect-timeout")
    assert code == 2 and "--list runs nothing" in err and len(err.strip().splitlines()) == 1


def test_ls_says_where_each_lab_runs(state: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A lab on a cluster lists its machines and cluster file; a lab here says so (table and --json)."""
    for name, info in {
        "here": {"nodes": {"a": {}}, "file": "/t/here.yaml"},
        "spread": {"nodes": {"a": {"machine": "m2"}, "b": {"machine": "m1"}, "c": {"machine": "m2"}},
                   "file": "/t/spread.yaml", "cluster": {"file": "/c/cluster.yaml"}},
    }.items():
        (state / name).mkdir(parents=True)
        (state / name / "journal.jsonl").write_text("")
        (state / name / "lab.json").write_text(json.dumps({"name": name, **info}))
    code, out, _ = run(capsys, "ls", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["spread"]["machines"] == ["m1", "m2"] and rows["spread"]["cluster"] == "/c/cluster.yaml"
    assert rows["here"]["machines"] is None and rows["here"]["cluster"] is None
    code, out, _ = run(capsys, "ls")
    assert "m1, m2 of /c/cluster.yaml" in out and "this machine" in out
