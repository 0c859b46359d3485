"""Every error a user can meet, with the exit code it maps to.

One place names the exit codes (:class:`ExitCode`; the CLI's error handler reads an
error's ``exit_code``): 0 all held, 1 an expectation failed, 2 bad usage or input, 3 the
environment could not build the lab, 70 an internal error, 130 interrupted. Messages are
one line and say what to do next.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # done; every expectation held
    FAILED = 1  # an expectation did not hold (lab run, lab check)
    USAGE = 2  # bad usage or bad input: nothing was created
    ENVIRONMENT = 3  # the machine cannot do it (not root, no Docker, a missing kernel feature)
    INTERNAL = 70  # a bug (EX_SOFTWARE): run again with --debug and report it
    INTERRUPTED = 130  # Ctrl-C


class LabError(Exception):
    """Base of all errors meant for the user: a message and an optional hint.

    An error of this base class itself is one lab cannot place in a category: an internal one
    (never 1, which says an expectation failed).
    """

    exit_code: int = ExitCode.INTERNAL

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class InputError(LabError):
    """Bad usage or bad input: nothing was created."""

    exit_code = ExitCode.USAGE


class TopologyError(InputError):
    """One or more problems in a topology file, each located at file:line: field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(problems[0] if len(problems) == 1 else f"{len(problems)} problems:\n" + "\n".join(problems))


class EnvironmentProblem(LabError):
    """The machine cannot build the lab (not root, no Docker, a missing kernel feature)."""

    exit_code = ExitCode.ENVIRONMENT


class LabNotFound(InputError):
    """A command named a lab, node or interface that is not up."""
