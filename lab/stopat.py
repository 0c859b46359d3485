"""A barrier for tests: a process run with ``LAB_STOP_AT=POINT`` stops itself (SIGSTOP) at POINT.

A test that must interrupt ``lab up`` at a given moment cannot race a poll against the
clock: on a busy machine the moment passes before the poll sees it. Instead it starts
``lab`` with ``LAB_STOP_AT``, waits for the stop (``waitpid`` with ``WUNTRACED``: no
clock involved), sends its signal and then SIGCONT. The signal lands exactly at POINT,
however fast or busy the machine is. A point is a progress step and its count
(``namespaces:200``, ``links:1``). Unset, it costs one environment lookup per ``up``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

ENV = "LAB_STOP_AT"
Progress = Callable[[str, int, int], None]


def stopping(progress: Progress) -> Progress:
    """``progress``, stopping this process once it has reported the point ``LAB_STOP_AT`` names."""
    point = os.environ.get(ENV)
    if not point:
        return progress

    def reported(step: str, done: int, total: int) -> None:
        progress(step, done, total)
        if f"{step}:{done}" == point:
            os.kill(os.getpid(), signal.SIGSTOP)

    return reported
