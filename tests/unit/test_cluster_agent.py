"""The wiring agent's two ways of being given its operations, and lab's choice between them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lab.cluster import agent, agents


def test_the_agent_reads_its_operations_from_its_argument(capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agent, "writable_proc_sys", lambda: None)
    ops = [{"op": "run", "argv": ["true"]}, {"op": "run", "argv": ["false"], "ok": [1]}]
    assert agent.main(["--ops-json", json.dumps(ops)]) == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True, "done": 2, "error": None}


def test_the_agent_names_the_step_that_failed(capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agent, "writable_proc_sys", lambda: None)
    assert agent.main(["--ops-json", json.dumps([{"op": "run", "argv": ["true"]},
                                                 {"op": "run", "argv": ["false"]}])]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is False and result["done"] == 1 and "exit 1" in result["error"]


class FakeAgentContainer:
    """What agent_ops asks of a container: an optional archive, then one exec, answered as the agent would."""

    def __init__(self) -> None:
        self.archives: list[bytes] = []
        self.commands: list[list[str]] = []

    def put_archive(self, path: str, data: bytes) -> bool:
        self.archives.append(data)
        return True

    def exec_run(self, command: list[str]) -> tuple[int, bytes]:
        self.commands.append(command)
        return 0, json.dumps({"ok": True, "done": 1, "error": None}).encode()


def test_small_operations_go_in_the_exec_argument_and_large_ones_in_a_file() -> None:
    small, large = FakeAgentContainer(), FakeAgentContainer()
    agents.agent_ops(small, "m1", [{"op": "run", "argv": ["true"]}])
    assert small.archives == [] and small.commands[0][3] == "--ops-json"
    assert json.loads(small.commands[0][4]) == [{"op": "run", "argv": ["true"]}]
    many: list[dict[str, Any]] = [{"op": "run", "argv": ["true", "x" * 1000]}] * 100
    agents.agent_ops(large, "m1", many)
    assert len(large.archives) == 1 and large.commands[0][3] == "--ops"
