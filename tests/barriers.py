"""Barriers for tests that act at a moment of another process: wait for the moment, never guess it.

A sleep or a poll against the clock decides by the machine's speed: on a busy machine
the moment has passed before the test looks (or has not come yet when it acts). These
helpers wait for the moment itself: a line the process prints once it is there, or a
stop the process makes at a named point of its work (``LAB_STOP_AT``, see lab.stopat).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def in_namespace(netns: str, command: str) -> subprocess.Popen[str]:
    """``command`` running in ``netns``, returned once it is there (it says so first), in a session of its own."""
    proc = subprocess.Popen(["ip", "netns", "exec", netns, "sh", "-c", f"echo inside; exec {command}"],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None and proc.stdout.readline() == "inside\n", f"{command} did not start in {netns}"
    return proc


def _sigint_default() -> None:
    """In the child before exec: SIGINT handled and unblocked, whatever the test process inherited or set."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def lab_stopped_at(point: str, args: list[str], out: Path) -> subprocess.Popen[str]:
    """``lab ARGS`` started with LAB_STOP_AT=POINT, returned once it has stopped itself there.

    Its stdout and stderr go to ``out``.stdout/.stderr (files, not pipes: a full pipe could block it
    before the point). Send it a signal and then SIGCONT: the signal lands exactly at ``point``.
    """
    with out.with_suffix(".stdout").open("w") as stdout, out.with_suffix(".stderr").open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "lab", *args], stdout=stdout, stderr=stderr, text=True,
                                preexec_fn=_sigint_default, env={**os.environ, "LAB_STOP_AT": point})
    _, status = os.waitpid(proc.pid, os.WUNTRACED)
    if not os.WIFSTOPPED(status):
        raise AssertionError(f"lab {' '.join(args)} ended (wait status {status}) before reaching {point}: "
                             + out.with_suffix(".stderr").read_text())
    return proc


def stderr_of(out: Path) -> str:
    return out.with_suffix(".stderr").read_text()
