"""A program a run started in a node: in the background (:class:`Proc`), or to completion (:class:`Result`).

A :class:`Proc` reads through its run's ``observe`` (so ``lab check`` replays what it printed and when it
ended) and signals through its node; :class:`Observer` is all it needs of the run.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from lab.nodes import NodeHandle
from lab.report.model import StepRecord


class Observer(Protocol):
    """What a program needs of its run: readings kept for replay, and its node."""

    def observe(self, kind: str, node: str, live: Callable[[], Any]) -> Any: ...

    def node(self, name: str) -> NodeHandle: ...


@dataclass
class Proc:
    """A program running in the background in a node (a server, a slow client)."""

    run: Observer
    node: str
    title: str
    popen: subprocess.Popen[str] | None  # None when a saved run is replayed (lab check)
    step: StepRecord
    out: list[str] = field(default_factory=list)
    jailed: bool = False  # a reader's program in its sandbox (lab.sandbox.jail), which can pause it

    def pause(self) -> None:
        """Stop a reader's program where it is (SIGSTOP, through its sandbox) until :meth:`resume`: the kernel
        goes on completing handshakes and queueing data for it, so a listing that reads as soon as it accepts
        (5-7) reads what its peer sent in full, as the book's run did."""
        self._freeze(signal.SIGUSR1)

    def resume(self) -> None:
        self._freeze(signal.SIGUSR2)

    def _freeze(self, sig: int) -> None:
        if not self.jailed:
            raise ValueError(f"{self.title}: only a reader's program in its sandbox can be paused")
        if self.popen is not None and self.popen.poll() is None:
            self.run.node(self.node).signal(self.popen, sig)

    def _live(self) -> subprocess.Popen[str]:
        assert self.popen is not None, "a replayed program has no process"
        return self.popen

    def _drain(self, timeout: float = 0.0) -> None:
        assert self.popen is not None and self.popen.stdout is not None
        fd = self.popen.stdout.fileno()
        end = time.monotonic() + timeout
        while True:
            remaining = max(0.0, end - time.monotonic())
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                return
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            self.out.append(chunk.decode(errors="replace"))

    @property
    def stdout(self) -> str:
        """What the program printed so far (an observation: saved with the run, replayed by ``lab check``)."""
        return str(self.run.observe("stdout", self.node, self._read))

    def _read(self) -> str:
        self._drain()
        return "".join(self.out)

    def wait_for(self, text: str, timeout: float = 10.0) -> bool:
        """Wait until the program printed ``text`` (readiness is checked, not slept)."""
        return bool(self.run.observe("wait_for", self.node, lambda: self._wait_for(text, timeout)))

    def _wait_for(self, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self._read():
                return True
            if self._live().poll() is not None:
                self._drain()
                return text in "".join(self.out)
            self._drain(0.05)
        return False

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the program to exit (reading its output meanwhile, so a chatty one never blocks);
        returns its exit code, and records its output in the step. Stopped if still running at the timeout."""
        return self._ended("wait", lambda: self._wait(timeout))

    def _wait(self, timeout: float) -> int:
        popen = self._live()
        deadline = time.monotonic() + timeout
        while popen.poll() is None and time.monotonic() < deadline:
            self._drain(0.05)
        if popen.poll() is None:
            return self._stop(2.0)
        return self._finish()

    def stop(self, grace: float = 2.0) -> int:
        """SIGTERM, then SIGKILL after ``grace`` seconds; the exit code is the one the kernel reported."""
        return self._ended("stop", lambda: self._stop(grace))

    def _ended(self, kind: str, live: Callable[[], int]) -> int:
        """The end of the program as observed: its exit code, and what it printed, in its step."""
        def end() -> list[Any]:
            live()
            return [self.step.rc, self.step.stdout, self.step.stderr, self.step.duration]

        rc, self.step.stdout, self.step.stderr, self.step.duration = self.run.observe(kind, self.node, end)
        self.step.rc = rc
        self.out = [self.step.stdout]
        return int(rc)

    def _stop(self, grace: float) -> int:
        if self._live().poll() is None:
            assert self.popen is not None
            node = self.run.node(self.node)
            node.signal(self.popen, signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                node.signal(self.popen, signal.SIGKILL)
                try:
                    self.popen.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.popen.kill()
                    self.popen.wait(timeout=5)
        return self._finish()

    def _finish(self) -> int:
        self._drain()
        assert self.popen is not None
        rc = self.popen.returncode if self.popen.returncode is not None else -9
        stderr = self.popen.stderr.read() if self.popen.stderr and not self.popen.stderr.closed else ""
        self.step.rc = rc
        self.step.stdout = "".join(self.out)
        self.step.stderr = stderr or ""
        self.step.duration = time.time() - self.step.started
        return rc


@dataclass
class Result:
    """A finished command: exit code and output."""

    rc: int
    stdout: str
    stderr: str
    elapsed: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr
