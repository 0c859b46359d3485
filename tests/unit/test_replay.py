"""``lab check``'s replay, without a lab: a saved run's steps given their saved readings and generated pcaps.

The experiment is a user's (loaded with ``--path``), the run directory is made by hand: the
readings the steps asked for, in order, and a pcap from pcapgen. So the checks are decided
from files alone, and a changed pcap or a changed experiment changes the outcome.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pcapgen import handshake_frames, timed, write_pcap

from lab.errors import InputError
from lab.experiments import engine
from lab.experiments.recheck import check
from lab.experiments.replay import FORMAT, SAVED

EXPERIMENT = '''
from lab.experiments import expect
from lab.experiments.engine import experiment


@experiment("replay-probe", title="a handshake, checked from its capture", section="test", topology="book-lan.yaml")
def steps(run, port: int = 80):
    hello = run.sh("client", ["echo", "hello"])
    run.expect(expect.output_contains("the client said hello", hello.stdout, "hello"))
    started = run.clock()
    with run.capture(["client:eth0"], f"tcp port {port}"):
        run.sleep(5)  # a replay does not sleep
    run.expect(expect.count("one SYN", expect.syns(run.packets), 1))
    run.expect(expect.within("the capture lasted under 10 s", run.clock() - started, 0.0, 10.0))
'''

LAB_INFO = {"name": "probe", "nodes": {
    "client": {"kind": "host", "netns": "lab-probe.client",
               "interfaces": {"eth0": {"network": "lan", "address": "192.168.1.108/24"}}},
}}


@pytest.fixture
def experiment_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's experiment module; the registry is the test's own, so the catalogue is left as it was."""
    monkeypatch.setattr(engine, "REGISTRY", dict(engine.REGISTRY))
    where = tmp_path / "mine"
    where.mkdir()
    (where / f"probe_{tmp_path.name.replace('-', '_')}.py").write_text(EXPERIMENT)
    return where


def saved_run(tmp_path: Path, frames: list[bytes], observations: list[dict[str, object]] | None = None) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_pcap(run_dir / "01-client-eth0.pcap", timed(frames))
    readings = observations if observations is not None else [
        {"kind": "sh", "node": "client", "value": [0, "hello\n", "", 1000.0, 0.01]},
        {"kind": "clock", "node": "", "value": 50.0},
        {"kind": "capture", "node": "", "value": {"pcaps": {"client:eth0": "01-client-eth0.pcap"}, "dropped": 0}},
        {"kind": "clock", "node": "", "value": 55.2},
    ]
    (run_dir / SAVED).write_text(json.dumps({
        "format": FORMAT, "experiment": "replay-probe", "overrides": {}, "parameters": {"port": 80},
        "verdict": "pass", "error": None, "lab_info": LAB_INFO, "observations": readings}))
    return run_dir


def test_a_saved_run_is_decided_again_from_its_files(tmp_path: Path, experiment_dir: Path) -> None:
    checked = check(saved_run(tmp_path, handshake_frames()), [experiment_dir])
    assert checked.error is None
    assert [(v.description, v.verdict) for v in checked.expectations] == [
        ("the client said hello", "pass"), ("one SYN", "pass"), ("the capture lasted under 10 s", "pass")]
    assert checked.verdict == "pass" == checked.was


def test_a_run_copied_elsewhere_checks_there(tmp_path: Path, experiment_dir: Path) -> None:
    copy = tmp_path / "elsewhere" / "run"
    shutil.copytree(saved_run(tmp_path, handshake_frames()), copy)
    assert check(copy, [experiment_dir]).verdict == "pass"


def test_a_changed_capture_changes_the_verdict(tmp_path: Path, experiment_dir: Path) -> None:
    frames = handshake_frames()
    checked = check(saved_run(tmp_path, frames[:1] + frames), [experiment_dir])  # the SYN twice
    assert checked.verdict == "fail"
    assert [v.description for v in checked.expectations if not v.ok] == ["one SYN"]


def test_a_changed_experiment_is_an_error_naming_the_first_difference(tmp_path: Path, experiment_dir: Path) -> None:
    readings: list[dict[str, object]] = [
        {"kind": "clock", "node": "", "value": 50.0},  # the run read a clock first; today's steps run a command
    ]
    checked = check(saved_run(tmp_path, handshake_frames(), readings), [experiment_dir])
    assert checked.verdict == "error"
    assert checked.error is not None and "reading 1: the steps asked for 'sh' on client where the run read " \
        "'clock'" in checked.error


def test_a_missing_pcap_is_said(tmp_path: Path, experiment_dir: Path) -> None:
    run_dir = saved_run(tmp_path, handshake_frames())
    (run_dir / "01-client-eth0.pcap").unlink()
    with pytest.raises(InputError, match="the run's capture 01-client-eth0.pcap is missing"):
        check(run_dir, [experiment_dir])


@pytest.mark.parametrize("what", ["empty", "not json", "no such"])
def test_a_directory_that_is_not_a_run_is_one_line_exit_2(tmp_path: Path, what: str) -> None:
    target = tmp_path / "d"
    if what != "no such":
        target.mkdir()
    if what == "not json":
        (target / SAVED).write_text("{")
    with pytest.raises(InputError) as raised:
        check(target)
    assert raised.value.exit_code == 2
    assert "\n" not in str(raised.value)


def test_lab_check_exits_like_lab_run(tmp_path: Path, experiment_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lab.cli import main

    held = saved_run(tmp_path, handshake_frames())
    assert main(["check", str(held), "--path", str(experiment_dir)]) == 0
    assert "decided again from its files; as the run said" in capsys.readouterr().out
    frames = handshake_frames()
    (held / "01-client-eth0.pcap").unlink()
    write_pcap(held / "01-client-eth0.pcap", timed(frames[:1] + frames))
    assert main(["check", str(held), "--path", str(experiment_dir)]) == 1
    assert main(["check", str(tmp_path / "mine")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a run of lab" in err, err
