"""The pytest handle is the experiment API: the same verbs as ``run``, each undone when the test ends."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from lab.experiments import expect
from lab.net import faults

pytestmark = pytest.mark.root
BOOK_LAN = Path(__file__).resolve().parents[2] / "topologies" / "book-lan.yaml"


def _rtt(lab, node: str, target: str) -> float:
    out = lab.exec(node, ["ping", "-n", "-c", "5", "-i", "0.1", target]).stdout
    return statistics.median(float(line.split("time=")[1].split()[0]) for line in out.splitlines() if "time=" in line)


def test_a_test_uses_the_experiment_verbs_and_they_are_undone(lab_factory) -> None:
    lab = lab_factory(BOOK_LAN, name="api-verbs")
    far = lab.ip("far-host")
    before = lab.sh("kongming20", ["sysctl", "-n", "net.ipv4.tcp_syn_retries"]).stdout.strip()
    lab.sysctl("kongming20", "net.ipv4.tcp_syn_retries", 2)
    assert lab.sh("kongming20", ["sysctl", "-n", "net.ipv4.tcp_syn_retries"]).stdout.strip() == "2"
    dropped = lab.drop("far-host:eth0", "icmp")
    assert lab.exec("kongming20", ["ping", "-c1", "-W1", far]).returncode == 1
    lab.clear(dropped)
    assert lab.exec("kongming20", ["ping", "-c1", "-W2", far]).returncode == 0
    lab.impair("router:eth1", delay="20ms")
    assert 19 <= _rtt(lab, "kongming20", far) <= 25
    lab.serve("ernest-laptop", "echo", lab.ip("ernest-laptop"), "7")
    with lab.capture(["kongming20:eth0"], "tcp port 7"):
        typed = lab.py("kongming20", "keystroke_client", lab.ip("ernest-laptop"), "7", "--count", "2")
    assert typed.rc == 0
    assert lab.expect(expect.count("2 keystrokes and 2 echoes", expect.data(lab.packets), min=4)).ok
    mtu = ["ip", "link", "set", "dev", "eth0", "mtu"]
    lab.change("kongming20", [*mtu, "1400"], undo=[[*mtu, "1500"]])
    assert "mtu 1400" in lab.exec("kongming20", ["ip", "link", "show", "eth0"]).stdout
    assert any(e["what"] == "ip link set dev eth0 mtu 1400" for e in faults.active(lab.journal))  # journaled
    # what the fixture does when the test ends: every change undone
    assert lab.cleanup() == []
    assert "mtu 1500" in lab.exec("kongming20", ["ip", "link", "show", "eth0"]).stdout
    assert lab.sh("kongming20", ["sysctl", "-n", "net.ipv4.tcp_syn_retries"]).stdout.strip() == before
    assert faults.active(lab.journal) == []
    assert _rtt(lab, "kongming20", far) < 5


def test_the_readme_s_experiment_example_runs_as_written(tmp_path: Path) -> None:
    """The README's example experiment, taken from the README itself, so the example cannot rot."""
    from lab.cli import main

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("from lab.experiments import expect\n")
    (tmp_path / "my_rtt.py").write_text(readme[start:readme.index("```", start)])
    assert main(["run", "my-rtt", "--path", str(tmp_path), "--fresh", "-q", "-p", "delay=40ms",
                 "--out", str(tmp_path / "runs")]) == 0
    assert main(["run", "my-rtt", "--path", str(tmp_path), "-p", "delay=fast"]) == 2


def test_the_guide_s_tutorial_experiment_runs_as_written(tmp_path: Path) -> None:
    """docs/EXPERIMENT_GUIDE.md's tutorial, taken from the guide, with its three command lines."""
    from lab.cli import main

    guide = (Path(__file__).resolve().parents[2] / "docs" / "EXPERIMENT_GUIDE.md").read_text()
    start = guide.index("```python\n") + len("```python\n")
    (tmp_path / "mss.py").write_text(guide[start:guide.index("```", start)])
    (tmp_path / "_helpers.py").write_text("raise RuntimeError('a helper module is not an experiment module')\n")
    out = ["--fresh", "-q", "--out", str(tmp_path / "runs")]
    assert main(["run", "my-mss", "--path", str(tmp_path), *out]) == 0
    [run_dir] = (tmp_path / "runs").glob("my-mss-*")
    assert main(["check", str(run_dir), "--path", str(tmp_path)]) == 0
    assert main(["run", "my-mss", "--path", str(tmp_path), "-p", "mtu=1280", *out]) == 0
    assert main(["run", "my-mss", "--path", str(tmp_path), "-p", "mtu=big"]) == 2
