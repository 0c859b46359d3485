"""The terminal report: one run in detail, or a summary table of many, with verdict colours.

Both functions print to a rich Console so the CLI decides where output goes
(stdout, a file, a recording console in tests). ``print_summary`` accepts the
JSON items of :mod:`lab.report.jsonreport` as well as RunResults, because
``lab run --all`` gets its results back from child processes as JSON.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lab.experiments.expect import Verdict
from lab.report.jsonreport import experiment_json
from lab.report.model import RunResult

STYLE = {"pass": "bold green", "fail": "bold red", "error": "bold yellow", "unjudged": "bold blue"}


def badge(verdict: str) -> str:
    """A verdict as rich markup: ``PASS`` in green, ``FAIL`` in red, ``ERROR`` in yellow."""
    return f"[{STYLE.get(verdict, 'bold')}]{verdict.upper()}[/]"


def print_run(result: RunResult, console: Console) -> None:
    """One run: the verdict line, parameters, each expectation with its evidence, where the report is."""
    console.print(f"{badge(result.verdict)} [bold]{escape(result.id)}[/] — {escape(result.title)} "
                  f"([dim]{escape(result.section)}[/]) in {result.duration_s:.1f} s")
    if result.parameters:
        params = "  ".join(f"{k}={v}" for k, v in result.parameters.items())
        console.print(f"  parameters: {escape(params)}")
    if result.error:
        console.print(f"  [yellow]error:[/] {escape(result.error)}")
    if result.expectations:
        console.print(expectations_table(result.expectations))
    counts = _counts(v.verdict for v in result.expectations)
    console.print(f"  {counts}; {len(result.packets)} packets captured")
    if result.html_path:
        console.print(f"  report: {escape(str(result.html_path))}")


def expectations_table(verdicts: Sequence[Verdict]) -> Table:
    """Each expectation: its verdict, what was expected, what was observed, the packets that decided it."""
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False, padding=(0, 1))
    for column in ("", "expectation", "expected", "observed", "packets"):
        table.add_column(column, overflow="fold")
    for v in verdicts:
        cited = ", ".join(f"#{n}" for n in v.packets[:8]) + (" …" if len(v.packets) > 8 else "")
        table.add_row(badge(v.verdict), escape(v.description), escape(v.expected), escape(v.observed), cited)
    return table


def print_summary(items: Sequence[dict[str, Any] | RunResult], console: Console) -> None:
    """A table of many runs (JSON items or RunResults) and a closing count line."""
    rows = [experiment_json(i) if isinstance(i, RunResult) else i for i in items]
    table = Table(show_header=True, header_style="bold")
    for column in ("verdict", "experiment", "section", "held", "time", "first problem"):
        table.add_column(column, overflow="fold")
    for row in rows:
        expectations = row.get("expectations") or []
        held = sum(1 for e in expectations if e.get("verdict") == "pass")
        table.add_row(badge(str(row.get("verdict"))), escape(str(row.get("id"))),
                      escape(str(row.get("section", ""))), f"{held}/{len(expectations)}",
                      f"{float(row.get('duration_s') or 0):.1f} s", escape(first_problem(row)))
    console.print(table)
    console.print(_counts(str(r.get("verdict")) for r in rows).replace("held", "passed"))


def first_problem(item: dict[str, Any]) -> str:
    """The error, or the first expectation that did not hold, in one line."""
    if item.get("error"):
        return str(item["error"])
    for e in item.get("expectations") or []:
        if e.get("verdict") != "pass":
            return f"{e.get('description')}: expected {e.get('expected')}, observed {e.get('observed')}"
    return ""


def _counts(verdicts: Iterable[str]) -> str:
    values = list(verdicts)
    held = values.count("pass")
    failed = values.count("fail")
    errors = values.count("error")
    unjudged = values.count("unjudged")
    return f"{held} held, {failed} failed, {errors} errors" + (f", {unjudged} not judged" if unjudged else "")


def render_run(result: RunResult, width: int = 120) -> str:
    """:func:`print_run` as plain text (for logs and tests)."""
    buffer = io.StringIO()
    print_run(result, Console(file=buffer, width=width, color_system=None, highlight=False))
    return buffer.getvalue()


def render_summary(items: Sequence[dict[str, Any] | RunResult], width: int = 120) -> str:
    buffer = io.StringIO()
    print_summary(items, Console(file=buffer, width=width, color_system=None, highlight=False))
    return buffer.getvalue()
