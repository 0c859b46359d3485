"""``docker exec`` through docker-py that returns even when the container ends under it.

The engine (Docker 20.10, Debian's) leaves an exec's output stream open when its container,
sharing the host's PID namespace as the cluster's agents do, is killed while the exec runs:
the exec instance is gone, the exec's program ends, and docker-py's read of the stream never
returns (measured: still blocked after 60 s for a 20-s ``sleep``), so ``lab up`` or ``lab down``
would wait forever. Here the exec runs in a thread; once it has taken longer than a moment, lab
asks the engine every second whether the container still runs, and a container that has ended
is an error naming it, not a hang. (The thread stays blocked on its socket until lab exits; it
holds nothing else.)
"""

from __future__ import annotations

import threading
import time
from typing import Any

from lab.errors import EnvironmentProblem

POLL = 1.0  # seconds between asking whether the container still runs
GRACE = 3.0  # seconds an exec's stream may stay open after its container ended (the last output arriving)


def exec_run(container: Any, argv: list[str], what: str | None = None) -> tuple[int | None, bytes]:
    """``container.exec_run(argv)``: its exit code and output; EnvironmentProblem if the container ends first."""
    import docker.errors

    done: dict[str, Any] = {}

    def work() -> None:
        try:
            done["result"] = container.exec_run(argv)
        except BaseException as exc:  # handed to the caller's thread below
            done["error"] = exc

    worker = threading.Thread(target=work, name=f"docker-exec {argv[0]}", daemon=True)
    worker.start()
    ended_at: float | None = None
    while True:
        worker.join(POLL)
        if not worker.is_alive():
            break
        try:
            container.reload()
            status = str(container.status)
        except docker.errors.NotFound:
            status = "removed"
        if status in ("running", "restarting"):
            ended_at = None
            continue
        ended_at = ended_at if ended_at is not None else time.monotonic()
        if time.monotonic() - ended_at > GRACE:
            who = what or f"container {container.name}"
            raise EnvironmentProblem(f"{who}: the container ended ({status}) while lab was running {argv[0]} in it")
    if "error" in done:
        raise done["error"]
    code, output = done["result"]
    return code, output or b""
