"""The process's one Docker client: its connection pool is reused, never leaked per call.

A leaf module (Docker's SDK and lab.errors only), so every layer that speaks to the engine
(container nodes, services, images, teardown) takes the client from here without
importing one another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lab.errors import EnvironmentProblem

if TYPE_CHECKING:
    from docker import DockerClient

_client: DockerClient | None = None


def docker_client() -> DockerClient:
    """The process's one Docker client (its connection pool is reused, never leaked per call),
    or a clear error saying how to get an engine running."""
    global _client
    try:
        import docker

        if _client is None:
            _client = docker.from_env(timeout=120)
        _client.ping()
        return _client
    except Exception as exc:  # docker raises several unrelated types when no engine answers
        if _client is not None:
            _client.close()
            _client = None
        raise EnvironmentProblem(
            f"no Docker engine answers ({type(exc).__name__})",
            "start one: systemctl start docker, or dockerd &; install with apt-get install docker.io",
        ) from None
