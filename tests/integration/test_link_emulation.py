"""Impairments for real: the topology's impair:, lab fault add's keys, lab's own emulator (forced, so
it is tested where netem exists too) and netem where the kernel has it; nothing survives down."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab import deploy, procs, state
from lab.cli import main
from lab.net import impair

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[2]
BOOK_LAN = ROOT / "topologies" / "book-lan.yaml"

WAN = """\
name: {name}
networks:
  lan: {{subnet: 192.168.5.0/24}}
nodes:
  client:
    interfaces:
      eth0: {{network: lan, address: 192.168.5.10/24}}
    routes: [{{to: default, via: 192.168.5.1}}]
  gw:
    kind: router
    interfaces:
      eth0: {{network: lan, address: 192.168.5.1/24, impair: {{delay: 5ms}}}}
      eth1: {{address: 10.5.0.1/30}}
  far:
    interfaces:
      eth0: {{address: 10.5.0.2/30}}
    routes: [{{to: default, via: 10.5.0.1}}]
links:
  - {{ends: [gw:eth1, far:eth0], impair: {{delay: 20ms, jitter: 2ms}}}}
"""


def _topology(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(WAN.format(name=name))
    return path


def _rtts(lab: str, node: str, target: str, count: int = 20) -> list[float]:
    out = subprocess.run(["ip", "netns", "exec", f"lab-{lab}.{node}", "ping", "-n", "-c", str(count), "-i", "0.05",
                          target], capture_output=True, text=True, timeout=60).stdout
    return [float(line.split("time=")[1].split()[0]) for line in out.splitlines() if "time=" in line]


def _emulator_pids(lab: str) -> list[tuple[int, int | None]]:
    found: list[tuple[int, int | None]] = []
    for pidfile in (state.lab_dir(lab) / "emulators").glob("*.pid"):
        pid, started = pidfile.read_text().split()[:2]
        found.append((int(pid), int(started)))
    return found


def test_topology_impairments_delay_the_links_and_end_with_the_lab(tmp_path: Path, capsys) -> None:
    topo = _topology(tmp_path, "em-topo")
    assert main(["up", "-q", "--emulator", "lab", str(topo)]) == 0
    try:
        # client → far crosses gw's LAN port (5 ms out) and the WAN link (20±2 ms each way): 45 ms
        rtt = statistics.median(_rtts("em-topo", "client", "10.5.0.2"))
        assert 45 * 0.9 <= rtt <= 45 * 1.1, rtt
        capsys.readouterr()
        assert main(["fault", "ls", "--lab", "em-topo"]) == 0
        listing = capsys.readouterr().out
        assert "gw:eth0" in listing and "impair delay 5ms out" in listing and "delay 20ms±2ms" in listing
        pids = _emulator_pids("em-topo")
        assert len(pids) == 1  # the topology's impairments: one daemon for the lab, a queue per direction
        assert all(procs.is_running(pid, started) for pid, started in pids)
        # clearing one impairment takes its rule away, and the delay goes with it
        assert main(["fault", "clear", "gw:eth0", "--lab", "em-topo"]) == 0
        assert statistics.median(_rtts("em-topo", "client", "192.168.5.1")) < 2
        assert 40 * 0.9 <= statistics.median(_rtts("em-topo", "client", "10.5.0.2")) <= 40 * 1.1
        # a fault added later has a daemon of its own, which its clear stops
        assert main(["fault", "add", "client:eth0", "--delay", "10ms", "--lab", "em-topo", "--emulator", "lab"]) == 0
        assert len(_emulator_pids("em-topo")) == 2
        assert main(["fault", "clear", "client:eth0", "--lab", "em-topo"]) == 0
        assert len(_emulator_pids("em-topo")) == 1
    finally:
        assert main(["down", "em-topo"]) == 0
    assert not any(procs.is_running(pid, started) for pid, started in pids)


def test_fault_add_takes_every_key_on_lab_emulator(lab_factory) -> None:
    lab = lab_factory(BOOK_LAN, name="em-add")
    base = ["--lab", "em-add", "--emulator", "lab"]
    assert main(["fault", "add", "kongming20:eth0", "--delay", "10ms", "--duplicate", "50%", *base]) == 0
    out = lab.exec("kongming20", ["ping", "-n", "-c", "40", "-i", "0.05", "-q", "192.168.1.1"]).stdout
    dups = int(out.split("+")[1].split()[0]) if "duplicates" in out else 0
    assert 10 <= dups <= 30, out
    assert main(["fault", "clear", "--lab", "em-add"]) == 0
    assert main(["fault", "add", "kongming20:eth0", "--delay", "2ms", "--corrupt", "50%", *base]) == 0
    out = lab.exec("kongming20", ["ping", "-n", "-c", "40", "-i", "0.05", "-q", "192.168.1.1"]).stdout
    received = int(out.split(" received")[0].rsplit(None, 1)[1])
    assert 10 <= received <= 30, out  # a corrupted header fails the receiver's checksum: the ping is lost
    assert main(["fault", "clear", "--lab", "em-add"]) == 0
    # bad input: one line, exit 2, nothing applied
    assert main(["fault", "add", "kongming20:eth0", "--reorder", "10%", *base]) == 2
    assert main(["fault", "add", "kongming20:eth0", "--delay", "10", *base]) == 2
    assert main(["fault", "add", "kongming20:eth0", "--delay", "1ms", "--duplicate", "1%", "--direction", "in",
                 *base]) == 2
    assert lab.exec("kongming20", ["ping", "-c1", "-W2", "192.168.1.1"]).returncode == 0


def test_lab_emulator_impairs_ipv6_and_neighbour_discovery_works_through_it(lab_factory) -> None:
    """On book-lan6: IPv6 is delayed like IPv4 (its own nf_tables table feeds the queue); a packet the node
    sent is sent again by the emulator's IPv6 raw socket, neighbour solicitations to a multicast group too."""
    lab = lab_factory(ROOT / "topologies" / "book-lan6.yaml", name="em-six")
    assert main(["fault", "add", "kongming20:eth0", "--delay", "20ms", "--lab", "em-six", "--emulator", "lab"]) == 0
    lab.exec("kongming20", ["ip", "-6", "neigh", "flush", "dev", "eth0"])  # resolved again, through the delay
    for target in ("fd00:1::108", "192.168.1.108"):
        rtts = _rtts("em-six", "kongming20", target)
        assert len(rtts) >= 18, (target, rtts)
        assert 19.0 <= statistics.median(rtts) <= 22.0, (target, rtts)
    corrupt = ["fault", "add", "kongming20:eth0", "--corrupt", "50%", "--lab", "em-six", "--emulator", "lab"]
    assert main(["fault", "clear", "--lab", "em-six"]) == 0
    assert main(corrupt) == 0
    out = lab.exec("kongming20", ["ping", "-6", "-n", "-c", "40", "-i", "0.05", "-q", "fd00:1::108"]).stdout
    received = int(out.split(" received")[0].rsplit(None, 1)[1])
    assert 10 <= received <= 30, out  # past the header, where ICMPv6's checksum catches it
    assert main(["fault", "clear", "--lab", "em-six"]) == 0
    assert lab.exec("kongming20", ["ping", "-6", "-c1", "-W2", "fd00:1::108"]).returncode == 0


def test_a_sigkilled_up_leaves_no_emulator_that_down_cannot_end(tmp_path: Path) -> None:
    topo = _topology(tmp_path, "em-kill")
    proc = subprocess.Popen([sys.executable, "-m", "lab", "up", "-q", "--emulator", "lab", str(topo)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not _emulator_pids("em-kill") and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    pids = _emulator_pids("em-kill")
    assert pids, "up was killed before any emulator started"
    assert main(["down", "em-kill"]) == 0
    assert not any(procs.is_running(pid, started) for pid, started in pids)


def test_netem_applies_the_same_impairment_where_the_kernel_has_it(lab_factory, tmp_path: Path) -> None:
    works, detail = impair.netem_works()
    if not works:
        pytest.skip(f"this kernel has no sch_netem ({detail}): the netem path cannot run here")
    topo = _topology(tmp_path, "em-netem-topo")
    assert main(["up", "-q", "--emulator", "netem", str(topo)]) == 0
    try:
        assert 45 * 0.9 <= statistics.median(_rtts("em-netem-topo", "client", "10.5.0.2")) <= 45 * 1.1
        assert not (state.lab_dir("em-netem-topo") / "emulators").exists()  # netem needs no daemon
    finally:
        assert main(["down", "em-netem-topo"]) == 0
    lab = lab_factory(BOOK_LAN, name="em-netem")
    assert main(["fault", "add", "kongming20:eth0", "--delay", "10ms", "--lab", "em-netem",
                 "--emulator", "netem"]) == 0
    assert "netem" in lab.exec("kongming20", ["tc", "qdisc", "show", "dev", "eth0"]).stdout
    deploy.down("em-netem")
