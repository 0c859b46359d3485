"""What every verb shares: the consoles, error printing, and lab/node resolution."""

from __future__ import annotations

import os
import sys

from rich.console import Console

DEBUG = False
# Piped output (CI logs, files) gets wide tables rather than rich's 80-column default.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 140)
console = Console(stderr=True, highlight=False, soft_wrap=True, log_path=False)  # progress: no source file:line


def parse_assignments(values: list[str], option: str) -> dict[str, str]:
    """``NAME=VALUE`` options (``--var``, ``-p``) into a dict; a malformed one is bad input."""
    from lab.errors import InputError

    result = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise InputError(f"{option} {item!r}: expected NAME=VALUE")
        result[key] = value
    return result


def err(message: str, hint: str | None = None) -> None:
    """One line on stderr: ``lab: error: what (what to do)``; multi-problem messages keep their lines."""
    text = f"lab: error: {message}"
    if hint:
        text += f" ({hint})"
    print(text, file=sys.stderr)
