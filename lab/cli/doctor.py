"""The ``doctor`` verb: one row per check of the machine, with what to do; exit 3 when something fails."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from lab.cli.common import out
from lab.errors import ExitCode

if TYPE_CHECKING:
    from lab.doctor import Check

STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red"}


def doctor(
    as_json: bool = typer.Option(False, "--json", help="JSON output."),
    nodes: int = typer.Option(20, "--nodes", "-n", min=1, max=100_000,
                              help="Judge the kernel limits for a lab of this many nodes."),
) -> None:
    """Check what this machine lacks or has wrong for labs (root, Docker, iptables, qdiscs, tools, limits)."""
    from lab.doctor import run_checks

    print_checks(run_checks(nodes), as_json)


def register(app: typer.Typer) -> None:
    app.command()(doctor)


def print_checks(checks: list[Check], as_json: bool, title: str | None = None) -> None:
    """The doctor's rows as a table (or JSON) and a count; exit 3 when one failed.

    Both doctors print through it: ``lab doctor`` (this machine) and ``lab cluster doctor`` (its machines).
    """
    from lab.doctor import FAIL

    failed = any(c.status == FAIL for c in checks)
    if as_json:
        out.print_json(json.dumps({"ok": not failed, "checks": [c.to_dict() for c in checks]}))
    else:
        table = Table("check", "status", "what lab found, and what to do", show_lines=False, title=title)
        for c in checks:
            text = c.summary + (f" [bold]→ {c.fix}[/]" if c.fix else "")
            table.add_row(c.name, f"[{STYLE[c.status]}]{c.status}[/]", text)
        out.print(table)
        counts = {s: sum(c.status == s for c in checks) for s in STYLE}
        out.print(f"{counts['ok']} ok, {counts['warn']} warnings, {counts['fail']} failed")
    if failed:
        raise typer.Exit(ExitCode.ENVIRONMENT)
