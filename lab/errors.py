"""Every error a user can meet, with the exit code it maps to.

One place decides exit codes (the CLI's error handler reads ``exit_code``):
0 all held, 1 an expectation failed, 2 bad usage or input, 3 the environment
could not build the lab. Messages are one line and say what to do next.
"""

from __future__ import annotations


class LabError(Exception):
    """Base of all errors meant for the user: a message and an optional hint."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class InputError(LabError):
    """Bad usage or bad input: nothing was created."""

    exit_code = 2


class TopologyError(InputError):
    """One or more problems in a topology file, each located at file:line: field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(problems[0] if len(problems) == 1 else f"{len(problems)} problems:\n" + "\n".join(problems))


class EnvironmentProblem(LabError):
    """The machine cannot build the lab (not root, no Docker, a missing kernel feature)."""

    exit_code = 3


class LabNotFound(InputError):
    """A command named a lab, node or interface that is not up."""
