"""The agent's main process (``agent serve``): what it does when the engine stops it, told by its exit code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lab.cluster import agent

ROOT = Path(__file__).resolve().parents[2]


def serve_then_stop(tmp_path: Path, kept: list[dict[str, Any]] | None) -> int:
    """Run ``serve`` as a process of its own (its on-stop file in tmp_path), SIGTERM it as docker stop would."""
    on_stop = tmp_path / "on-stop.json"
    if kept is not None:
        on_stop.write_text(json.dumps(kept))
    code = (f"import sys; from lab.cluster import agent; agent.ON_STOP_FILE = {str(on_stop)!r}; "
            "print('ready', flush=True); sys.exit(agent.serve(False))")
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    time.sleep(0.1)  # into sigwait
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=30)


def test_stopped_it_carries_out_what_it_kept_and_exits_0(tmp_path: Path) -> None:
    done = tmp_path / "undone"
    assert serve_then_stop(tmp_path, [{"op": "run", "argv": ["touch", str(done)]},
                                      {"op": "run", "argv": ["false"], "ok": [0, 1]}]) == 0
    assert done.exists()


def test_a_kept_operation_that_fails_makes_it_exit_1(tmp_path: Path) -> None:
    assert serve_then_stop(tmp_path, [{"op": "run", "argv": ["false"]}]) == 1


def test_given_nothing_to_keep_it_says_so_by_exit_3(tmp_path: Path) -> None:
    assert serve_then_stop(tmp_path, None) == agent.NOTHING_TO_UNDO == 3


def test_keeping_replaces_what_was_kept_whole(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(agent, "ON_STOP_FILE", str(tmp_path / "d" / "on-stop.json"))
    agent.keep_on_stop([{"op": "run", "argv": ["a"]}])
    agent.keep_on_stop([{"op": "run", "argv": ["b"]}])
    assert json.loads((tmp_path / "d" / "on-stop.json").read_text()) == [{"op": "run", "argv": ["b"]}]
    assert os.listdir(tmp_path / "d") == ["on-stop.json"]
