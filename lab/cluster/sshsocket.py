"""docker-py's ``ssh://`` transport through the ssh command, mended in two places.

``lab`` reaches an ``ssh://user@host[:port]`` engine as the docker CLI does: ``ssh`` runs
``docker system dial-stdio`` on the machine, with the user's own ssh config, keys and agent.
docker-py's socket for that (``use_ssh_client``) needs two changes, made by :func:`install`:

- its ``close`` writes to ssh's stdin first. After an exec's stream (every agent call) the remote
  ``dial-stdio`` has ended, and ssh with it, so the write raises BrokenPipeError
  (docker/docker-py#3218, open). Closing a finished ssh needs only the process ended.
- ssh writes its own errors ("Host key verification failed.") to lab's stderr, beside lab's one
  line. Here ssh runs with ``BatchMode`` (no prompt can wait for an answer nobody gives) and its
  stderr goes nowhere; when an engine does not answer, :func:`why_ssh_fails` asks ssh again and
  lab's one line gives ssh's reason.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Any
from urllib.parse import urlsplit

CONNECT_TIMEOUT = 10  # seconds ssh has to log in
RETRY_TIMEOUT = 3  # the second try, for ssh's reason only: a machine that did not answer the first has had its time


def ssh_argv(user: str | None, host: str, port: int | str | None, command: str,
             timeout: int = CONNECT_TIMEOUT) -> list[str]:
    """The ssh command line that runs ``command`` on ``host``, without a prompt."""
    argv = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={timeout}"]
    if user:
        argv += ["-l", user]
    if port:
        argv += ["-p", str(port)]
    return [*argv, "--", host, command]


def install() -> None:
    """Have docker-py make its ssh-command sockets with :class:`MendedSSHSocket` (once)."""
    from docker.transport import sshconn

    if getattr(sshconn.SSHSocket, "lab_mended", False):
        return
    base = sshconn.SSHSocket

    class MendedSSHSocket(base):  # type: ignore[misc, valid-type]
        lab_mended = True

        def connect(self, **kwargs: Any) -> None:
            env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "SSL_CERT_FILE")}
            self.proc = subprocess.Popen(
                ssh_argv(self.user, self.host, self.port, "docker system dial-stdio"), env=env,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # Ctrl-C is lab's to handle

        def close(self) -> None:
            try:
                super().close()
            except BrokenPipeError:  # ssh has ended already
                with contextlib.suppress(OSError, AttributeError):
                    self.proc.stdin.close()  # type: ignore[union-attr]  # the pipe, though its last flush fails
                self.proc.terminate()  # a no-op when it has exited

    sshconn.SSHSocket = MendedSSHSocket


def _login(engine: str) -> tuple[str | None, str, int | None]:
    """An ``ssh://[user@]host[:port]`` endpoint's user, host and port."""
    url = urlsplit(engine)
    return url.username, url.hostname or "", url.port


def check_command(engine: str) -> str:
    """The command a user runs to see whether lab can reach an ``ssh://`` engine."""
    user, host, port = _login(engine)
    return f"ssh -o BatchMode=yes{f' -p {port}' if port else ''} {f'{user}@' if user else ''}{host} docker version"


def why_ssh_fails(engine: str) -> str | None:
    """ssh's own last word when it cannot run docker on the engine's machine (None if it can)."""
    try:
        done = subprocess.run(ssh_argv(*_login(engine), "docker version --format ok", timeout=RETRY_TIMEOUT),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=RETRY_TIMEOUT + 10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"ssh: {exc}"
    if done.returncode == 0:
        return None
    lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    if not lines:
        return f"ssh exited {done.returncode}"
    return lines[-1] if lines[-1].startswith("ssh: ") else f"ssh: {lines[-1]}"
