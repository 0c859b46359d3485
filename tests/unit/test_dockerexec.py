"""An exec whose container ends under it returns an error instead of waiting forever (fakes, no engine)."""

from __future__ import annotations

import threading

import pytest

from lab import dockerexec
from lab.errors import EnvironmentProblem


class Container:
    """What lab.dockerexec asks of a docker-py container: exec_run, reload, status, name."""

    def __init__(self, status: str, answer: tuple[int, bytes] | None) -> None:
        self.status, self.name, self.answer = status, "lab-x-a", answer
        self.forever = threading.Event()

    def exec_run(self, argv: list[str]) -> tuple[int, bytes]:
        if self.answer is None:
            self.forever.wait()  # the engine's stream that never closes
        return self.answer or (0, b"")

    def reload(self) -> None:
        pass


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dockerexec, "POLL", 0.05)
    monkeypatch.setattr(dockerexec, "GRACE", 0.2)


def test_an_exec_that_ends_gives_its_code_and_output() -> None:
    assert dockerexec.exec_run(Container("running", (3, b"out")), ["true"]) == (3, b"out")


def test_an_exec_whose_container_ended_is_an_error_naming_it() -> None:
    with pytest.raises(EnvironmentProblem, match=r"^node a: the container ended \(exited\) while lab was running"):
        dockerexec.exec_run(Container("exited", None), ["sleep", "30"], "node a")


def test_a_long_exec_in_a_running_container_is_waited_for() -> None:
    container = Container("running", None)

    def finish() -> None:
        container.answer = (0, b"done")
        container.forever.set()

    threading.Timer(0.6, finish).start()
    assert dockerexec.exec_run(container, ["sleep", "1"]) == (0, b"done")
