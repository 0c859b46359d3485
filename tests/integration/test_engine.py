"""The engine for real, through the CLI: run verdicts and exit codes, JSON, --keep, faults, cable pulls, capture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab import deploy, state
from lab.capture.pcapfile import read_pcap
from lab.cli import main
from lab.errors import InputError
from lab.experiments import expect
from lab.net import faults
from lab.report.jsonreport import problems

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]
BOOK_LAN = ROOT / "topologies" / "book-lan.yaml"

FAILING = '''
from lab.experiments import expect
from lab.experiments.engine import experiment

@experiment(id="user-expects-too-much", title="a claim that cannot hold", section="test",
            topology="book-lan.yaml", params={"count": 3})
def steps(run):
    with run.capture(["kongming20:eth0"], "icmp"):
        run.sh("kongming20", ["ping", "-c", "1", "-W", "2", run.ip("ernest-laptop")])
    run.expect(expect.count("echo requests", expect.icmp(run.packets, type=8), run.p.count))
'''


def test_run_json_schema_and_exit_code_zero(tmp_path, capsys):
    rc = main(["run", "rst-closed-port", "--json", "--out", str(tmp_path)])
    document = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert problems(document) == []
    item = document["experiments"][0]
    assert item["id"] == "rst-closed-port" and item["verdict"] == "pass"
    assert item["parameters"] == {"family": 4, "port": 54321}
    assert all(e["verdict"] == "pass" for e in item["expectations"])
    assert Path(item["report"]).exists()
    assert state.labs_with_state() == [] or all(not lab.startswith("rcp-") for lab in state.labs_with_state())


def test_a_failed_expectation_exits_one_and_says_why(tmp_path, capsys):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "too_much.py").write_text(FAILING)
    rc = main(["run", "user-expects-too-much", "--path", str(user), "--out", str(tmp_path / "runs")])
    text = capsys.readouterr().out
    assert rc == 1
    assert "FAIL" in text and "echo requests" in text
    rc = main(["run", "user-expects-too-much", "--path", str(user), "-p", "count=1", "--out", str(tmp_path / "r2")])
    assert rc == 0


def test_bad_parameters_and_ids_exit_two(tmp_path):
    assert main(["run", "no-such-experiment", "--out", str(tmp_path)]) == 2
    assert main(["run", "rst-closed-port", "-p", "nope=1", "--out", str(tmp_path)]) == 2
    assert main(["run", "rst-closed-port", "-p", "port=abc", "--out", str(tmp_path)]) == 2


def test_keep_leaves_the_lab_up(tmp_path):
    before = set(state.labs_up())
    assert main(["run", "rst-closed-port", "--keep", "-q", "--out", str(tmp_path)]) == 0
    kept = set(state.labs_up()) - before
    assert len(kept) == 1
    deploy.down(kept.pop())


def test_faults_links_and_capture_through_the_cli(lab_factory, tmp_path):
    lab = lab_factory(BOOK_LAN, name="eng-f")
    journal = state.Journal("eng-f")
    server = "192.168.1.108"
    assert lab.exec("kongming20", ["ping", "-c1", "-W1", server]).returncode == 0

    # 100 % loss in: pings fail; listed by inspect; cleared: pings work again.
    assert main(["fault", "add", "ernest-laptop:eth0", "--loss", "100%", "--direction", "in", "--lab", "eng-f"]) == 0
    assert lab.exec("kongming20", ["ping", "-c1", "-W1", server]).returncode == 1
    assert [f["what"] for f in faults.active(journal)] == ["loss 100% in"]
    assert main(["fault", "clear", "--lab", "eng-f"]) == 0
    assert faults.active(journal) == []
    assert lab.exec("kongming20", ["ping", "-c1", "-W1", server]).returncode == 0

    # Dropping SYNs: a connect times out; the ping still works (only SYNs are hit).
    assert main(["fault", "add", "ernest-laptop:eth0", "--drop", "tcp syn dport 9", "--lab", "eng-f"]) == 0
    r = lab.exec("kongming20", ["nc", "-z", "-w", "2", server, "9"])
    assert r.returncode != 0
    assert lab.exec("kongming20", ["ping", "-c1", "-W1", server]).returncode == 0
    assert main(["fault", "clear", "ernest-laptop:eth0", "--lab", "eng-f"]) == 0

    # The cable pull at the switch: the server's NIC stays administratively up and loses carrier,
    # as with a real pulled cable; nothing crosses.
    assert main(["link", "down", "ernest-laptop:eth0", "--lab", "eng-f"]) == 0
    flags = lab.exec("ernest-laptop", ["ip", "link", "show", "eth0"]).stdout.split("<")[1].split(">")[0].split(",")
    assert "UP" in flags and "NO-CARRIER" in flags
    assert lab.exec("kongming20", ["ping", "-c1", "-W1", server]).returncode == 1
    assert main(["link", "up", "ernest-laptop:eth0", "--lab", "eng-f"]) == 0
    assert lab.exec("kongming20", ["ping", "-c1", "-W2", server]).returncode == 0

    # Rate limit is a tbf qdisc on the interface.
    assert main(["fault", "add", "kongming20:eth0", "--rate", "1mbit", "--direction", "out", "--lab", "eng-f"]) == 0
    assert "tbf" in lab.exec("kongming20", ["tc", "qdisc", "show", "dev", "eth0"]).stdout
    assert main(["fault", "clear", "--lab", "eng-f"]) == 0
    assert "tbf" not in lab.exec("kongming20", ["tc", "qdisc", "show", "dev", "eth0"]).stdout

    # Delay works with or without netem (lab's own emulator): the RTT grows by it.
    assert main(["fault", "add", "kongming20:eth0", "--delay", "20ms", "--lab", "eng-f"]) == 0
    ping = lab.exec("kongming20", ["ping", "-c3", "-i", "0.2", "-q", server]).stdout
    assert 19.0 < float(ping.rsplit("=", 1)[1].split("/")[1]) < 30.0, ping
    assert main(["fault", "clear", "--lab", "eng-f"]) == 0

    # An ad-hoc capture sees a ping.
    pcap = tmp_path / "adhoc.pcap"
    import threading

    pinger = threading.Timer(1.0, lambda: lab.exec("kongming20", ["ping", "-c2", "-i", "0.2", server]))
    pinger.start()
    assert main(["capture", "ernest-laptop:eth0", "-w", str(pcap), "-d", "2.5", "-f", "icmp", "--lab", "eng-f"]) == 0
    pinger.join()
    packets = read_pcap(pcap, "ernest-laptop:eth0")
    assert len(expect.icmp(packets, type=8)) == 2 and len(expect.icmp(packets, type=0)) == 2


def test_bad_fault_input_exits_two(lab_factory):
    lab_factory(BOOK_LAN, name="eng-g")
    assert main(["fault", "add", "kongming20:eth0", "--drop", "tcp $(reboot)", "--lab", "eng-g"]) == 2
    assert main(["fault", "add", "kongming20:eth9", "--loss", "5%", "--lab", "eng-g"]) == 2
    assert main(["fault", "add", "kongming20:eth0", "--loss", "500%", "--lab", "eng-g"]) == 2
    assert main(["fault", "add", "kongming20:eth0", "--lab", "eng-g"]) == 2


def test_run_reuses_a_running_lab_of_its_topology_and_leaves_it_up(lab_factory, tmp_path, capsys):
    lab_factory(BOOK_LAN, name="eng-r")
    assert main(["fault", "add", "far-host:eth0", "--rate", "50mbit", "--lab", "eng-r"]) == 0
    capsys.readouterr()
    rc = main(["run", "rst-closed-port", "--json", "--out", str(tmp_path)])
    document = json.loads(capsys.readouterr().out)
    assert rc == 0 and problems(document) == []
    assert document["experiments"][0]["topology"] == "eng-r"
    notes = document["experiments"][0]["notes"]  # the fault is not the run's: it stays, and the report says so
    assert len(notes) == 1 and "rate 50mbit out on far-host:eth0" in notes[0] and "lab fault clear" in notes[0]
    # --rate: out by default, as in the API
    assert [e["what"] for e in faults.active(state.Journal("eng-r"))] == ["rate 50mbit out"]
    assert "eng-r" in state.labs_up()
    rc = main(["run", "rst-closed-port", "--fresh", "--json", "--out", str(tmp_path)])
    assert json.loads(capsys.readouterr().out)["experiments"][0]["topology"] != "eng-r"


def test_link_up_on_a_healthy_link_leaves_it_up(lab_factory):
    lab = lab_factory(BOOK_LAN, name="eng-l")
    assert main(["link", "up", "ernest-laptop:eth0", "--lab", "eng-l"]) == 0
    assert main(["fault", "clear", "--lab", "eng-l"]) == 0
    assert lab.exec("kongming20", ["ping", "-c1", "-W2", "192.168.1.108"]).returncode == 0


def test_programs_report_their_real_exit_codes(lab_factory, tmp_path):
    from types import SimpleNamespace

    from lab.experiments.context import Run

    lab_factory(BOOK_LAN, name="eng-p")
    run = Run(state.read_lab_info("eng-p"), SimpleNamespace(), tmp_path)
    try:
        assert run.spawn("kongming20", ["sleep", "30"]).stop() == -15  # SIGTERM, not a made-up 0
        assert run.spawn("kongming20", ["sh", "-c", "exit 3"]).wait(5) == 3
        chatty = run.spawn("kongming20", ["sh", "-c", "yes lab | head -c 300000"])
        assert chatty.wait(10) == 0 and len(chatty.step.stdout) == 300000  # read while waiting: no pipe stall
    finally:
        run.cleanup()


def test_a_run_s_sysctls_come_back_at_its_end_and_after_a_killed_run(lab_factory, tmp_path, capsys):
    from types import SimpleNamespace

    from lab.experiments.context import Run

    lab_factory(BOOK_LAN, name="eng-s")
    info = state.read_lab_info("eng-s")
    key = "net.ipv4.tcp_syn_retries"

    def value() -> str:
        return Run(info, SimpleNamespace(), tmp_path).node("kongming20").exec(["sysctl", "-n", key]).stdout.strip()

    before = value()
    run = Run(info, SimpleNamespace(), tmp_path)
    run.sysctl("kongming20", key, 2)
    run.sysctl("kongming20", key, 3)
    assert value() == "3"
    run.cleanup()
    assert value() == before

    killed = Run(info, SimpleNamespace(), tmp_path)
    killed.sysctl("kongming20", key, 1)  # and the run dies here: no cleanup
    assert main(["fault", "ls", "--lab", "eng-s"]) == 0
    assert f"sysctl {key}=1" in capsys.readouterr().out
    assert main(["fault", "clear", "--lab", "eng-s"]) == 0
    assert value() == before
    with pytest.raises(InputError):
        killed.sysctl("kongming20", "kernel.pid_max", 40000)  # machine-wide: refused


def test_a_templated_lab_is_saved_as_rendered(lab_factory, capsys):
    lab_factory(ROOT / "topologies" / "routed-lans.yaml", name="eng-t", hosts="5")
    saved = (state.lab_dir("eng-t") / "topology.yaml").read_text()
    assert "red5:" in saved and "{%" not in saved
    assert main(["graph", "eng-t"]) == 0
    assert "red5" in capsys.readouterr().out
