"""The engine leaves an exec's stream open when its container (in the host's PID namespace) is killed mid-exec;
lab's exec returns an error instead."""

from __future__ import annotations

import secrets
import threading

import pytest

from lab.dockerexec import exec_run
from lab.errors import EnvironmentProblem

pytestmark = [pytest.mark.root, pytest.mark.docker]


def test_an_exec_into_a_container_killed_under_it_is_an_error_not_a_hang() -> None:
    from lab.dockerclient import docker_client
    from lab.images import ensure_image

    client = docker_client()
    # the host's PID namespace, as the cluster's agents have: killing the container leaves the exec's stream open
    container = client.containers.run(ensure_image(client, "host"), ["sleep", "300"], network_mode="none",
                                      pid_mode="host", name=f"lab-test-exec-{secrets.token_hex(3)}", detach=True)
    try:
        assert exec_run(container, ["echo", "hello"]) == (0, b"hello\n")
        threading.Timer(1.0, container.kill).start()
        with pytest.raises(EnvironmentProblem, match="the container ended .* while lab was running sleep"):
            exec_run(container, ["sleep", "60"], "node a")
    finally:
        container.remove(force=True)
