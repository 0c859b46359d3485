"""A reader's own program in a run (``--use``): how it is started in its sandbox, and how lab sees it ready.

:class:`lab.experiments.context.Run` calls these where a step runs a program the reader replaced; the
sandbox itself is :mod:`lab.sandbox.jail`, the contract of each program :mod:`lab.servers.contracts`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from lab.errors import LabError
from lab.nodes.base import NodeHandle
from lab.sandbox.program import UserProgram, jail_argv
from lab.servers.contracts import CONTRACTS

USER_WALL = 600.0  # a reader's server in the background: the step stops it; this bounds it if nothing does
READY_TIMEOUT = 10.0


class UserProgramError(LabError):
    """The reader's program did not do what its contract asks (it did not listen, it crashed first)."""


def book_argv(use: UserProgram, args: tuple[str, ...]) -> list[str]:
    """The argv the book's listing takes, of those the project's program gets: the options after it are the
    project's own, and a book-faithful ``if (argc != 4)`` must not fail on them."""
    return list(args[:len(CONTRACTS[use.name].argv.split())])


def jailed(use: UserProgram, args: tuple[str, ...], wall: float, tag: str) -> list[str]:
    """The argv that runs the reader's program ``use`` in its sandbox, with the book's argv; stdout
    line-buffered (``stdbuf``), so no line is lost when the step kills it."""
    line_buffered = ["/usr/bin/stdbuf", "-oL", "-eL"] if Path("/usr/bin/stdbuf").exists() else []
    return jail_argv(use.directory, [*line_buffered, use.inside, *book_argv(use, args)], wall, tag=tag)


def sandbox_lines(tag: str, stderr: str) -> list[str]:
    """The jail's own lines in a step's stderr (``lab-sandbox[TAG]:``, a tag the program never saw), as
    ``lab-sandbox: …``; lines a program printed to look like them are not among them."""
    mark = f"lab-sandbox[{tag}]: "
    return ["lab-sandbox: " + line[len(mark):] for line in stderr.splitlines() if line.startswith(mark)]


def listen_port(use: UserProgram, args: tuple[str, ...]) -> int | None:
    """The port the program's contract says it listens on, from its argv (None: a client)."""
    index = CONTRACTS[use.name].listen_port_arg
    return None if index is None else int(args[index])


def listening(handle: NodeHandle, port: int, running: Callable[[], bool], pause: Callable[[float], None]) -> bool:
    """Whether the kernel shows a LISTEN socket on ``port`` in the node before the program ends or
    ``READY_TIMEOUT`` passes (``pause`` reads the program's output meanwhile)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline and running():
        if handle.exec(["ss", "-Hltn", f"sport = :{port}"], timeout=10).stdout.strip():
            return True
        pause(0.05)
    return False


def not_listening(use: UserProgram, args: tuple[str, ...], port: int, exited: int | None, after: float,
                  said: str) -> UserProgramError:
    """Why the program was not ready: it ended first (with its code), or it did not listen in time."""
    argv = " ".join([use.name, *book_argv(use, args)])
    how = (f"exited with code {exited} after {after:.1f} s without listening on port {port}" if exited is not None
           else f"did not listen on port {port} within {READY_TIMEOUT:g} s")
    hint = (" (a missing interpreter? check the script's #! line)" if exited == 127 or "failed to run command" in said
            else "")
    return UserProgramError(f"your {use.name} ({use.source}) {how}{hint}; argv: {argv}"
                            + (f"; it said: {said.strip()[-300:]}" if said.strip() else ""))
