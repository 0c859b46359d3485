"""``lab check RUN_DIR...``: decide saved runs again from their files (lab.experiments.replay)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from lab.cli.common import out
from lab.errors import ExitCode


def check(
    run_dirs: list[Path] = typer.Argument(..., help="Directories lab run made (runs/<id>-<time>-<tag>)."),
    path: list[Path] = typer.Option([], "--path", help="Also load experiments from *.py in this directory."),
    as_json: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Decide saved runs again from their files alone (no lab, no root). Exit 0 only if all hold."""
    from lab.experiments.recheck import check as check_run
    from lab.report.text import badge, expectations_table

    results = [check_run(d, path) for d in run_dirs]
    if as_json:
        out.print_json(json.dumps([{"id": r.experiment, "run_dir": str(r.run_dir), "verdict": r.verdict,
                                    "run_verdict": r.was, "error": r.error,
                                    "expectations": [v.to_dict() for v in r.expectations]} for r in results]))
    else:
        for r in results:
            same = "as the run said" if r.verdict == r.was else f"the run said {r.was}"
            out.print(f"{badge(r.verdict)} [bold]{escape(r.experiment)}[/] {escape(str(r.run_dir))} "
                      f"([dim]decided again from its files; {same}[/])")
            if r.error:
                out.print(f"  [yellow]error:[/] {escape(r.error)}")
            if r.expectations:
                out.print(expectations_table(r.expectations))
    raise typer.Exit(ExitCode.OK if all(r.verdict == "pass" for r in results) else ExitCode.FAILED)


def register(app: typer.Typer) -> None:
    app.command()(check)
