"""The doctor's kernel probes, for real: they run in throwaway namespaces and agree with the fault code."""

from __future__ import annotations

import subprocess

import pytest

from lab import doctor
from lab.net import probe

pytestmark = pytest.mark.root


def test_probes_run_in_a_scratch_namespace_that_vanishes() -> None:
    worked, _ = probe.scratch(["ip", "link", "add", "lbdoc0", "type", "veth", "peer", "name", "lbdoc1"])
    assert worked
    host = subprocess.run(["ip", "link", "show", "lbdoc0"], capture_output=True)
    assert host.returncode != 0, "the probe's veth appeared in the machine's own namespace"
    worked, detail = probe.scratch(["ip", "link", "set", "dev", "no-such-device", "up"])
    assert not worked and detail


def test_link_emulator_check_agrees_with_tc(monkeypatch: pytest.MonkeyPatch) -> None:
    probe = subprocess.run(["unshare", "--net", "--", "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay",
                            "1ms"], capture_output=True)
    monkeypatch.delenv("LAB_EMULATOR", raising=False)
    check = doctor.check_link_emulator()
    assert check.status == "ok"
    assert ("netem works" in check.summary) == (probe.returncode == 0)
    monkeypatch.setenv("LAB_EMULATOR", "lab")  # forced: lab's own emulator must work on every machine
    check = doctor.check_link_emulator()
    assert check.status == "ok" and "lab's own emulator" in check.summary


def test_statistic_match_check_agrees_with_iptables() -> None:
    check = doctor.check_statistic()
    probe = subprocess.run(["unshare", "--net", "--", "iptables", "-w", "-A", "INPUT", "-m", "statistic",
                            "--mode", "nth", "--every", "2", "--packet", "0", "-j", "ACCEPT"], capture_output=True)
    assert (check.status == "ok") == (probe.returncode == 0)


def test_preflight_as_root_passes_the_root_check() -> None:
    doctor.preflight({"root"})
