"""``lab check`` of a real run: copied elsewhere it checks there; a capture missing a packet is an error verdict.

The run is tcp-handshake-close on its own lab; the check runs in a child ``lab`` in a fresh
directory, with the lab gone, so it can only use the run's files.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import dpkt
import pytest

from lab.capture.decode import decode_frame
from lab.experiments.engine import find
from lab.experiments.runner import run_one

pytestmark = pytest.mark.root


def lab_check(run_dir: Path, cwd: Path) -> tuple[int, list[dict[str, Any]]]:
    done = subprocess.run([sys.executable, "-m", "lab", "check", str(run_dir), "--json"], capture_output=True,
                          text=True, timeout=120, cwd=cwd)
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else []


def drop_synacks(pcap: Path) -> int:
    """Rewrite ``pcap`` without its SYN-ACKs; return how many went."""
    with pcap.open("rb") as f:
        reader = dpkt.pcap.Reader(f)
        link = reader.datalink()
        frames = list(reader)
    kept = []
    for ts, frame in frames:
        packet = decode_frame(frame, ts, "x")
        if packet.tcp is not None and packet.tcp.flag_str == "S.":
            continue
        kept.append((ts, frame))
    with pcap.open("wb") as f:
        writer = dpkt.pcap.Writer(f, linktype=link)
        for ts, frame in kept:
            writer.writepkt(frame, ts)
    return len(frames) - len(kept)


def test_a_run_checks_elsewhere_and_a_missing_packet_is_an_error(tmp_path: Path) -> None:
    result = run_one(find("tcp-handshake-close"), {}, tmp_path / "runs")
    assert result.verdict == "pass", result.error
    elsewhere = tmp_path / "another-machine" / result.run_dir.name
    shutil.copytree(result.run_dir, elsewhere)
    code, [checked] = lab_check(elsewhere, tmp_path / "another-machine")
    assert code == 0 and checked["verdict"] == "pass" == checked["run_verdict"], checked

    [pcap] = elsewhere.glob("*.pcap")
    assert drop_synacks(pcap) == 1
    code, [checked] = lab_check(elsewhere, tmp_path)
    assert code == 1
    assert checked["verdict"] == "error", checked  # not fewer claims: an error naming what is missing
    errors = {v["description"]: v["observed"] for v in checked["expectations"] if v["verdict"] == "error"}
    assert "the handshake's sequence numbers" in errors, checked
