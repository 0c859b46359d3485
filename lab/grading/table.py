"""A graded class, written out: ``grades.csv`` (a row per student), ``grades.json``, and ``index.html``, the
class table in which every cell links that student's run report and shows the parameters they got."""

from __future__ import annotations

import csv
import json
from html import escape
from pathlib import Path

from lab.grading.assignment import Assignment
from lab.grading.grade import Cell, Student

COLOURS = {"pass": "#d7f5dc", "fail": "#fbd5d5", "error": "#fde9c4"}


def write_all(assignment: Assignment, students: list[Student], out: Path) -> list[Path]:
    paths = [out / "grades.csv", out / "grades.json", out / "index.html"]
    write_csv(assignment, students, paths[0])
    paths[1].write_text(json.dumps(document(assignment, students), indent=2))
    paths[2].write_text(html(assignment, students))
    return paths


def document(assignment: Assignment, students: list[Student]) -> dict[str, object]:
    return {"assignment": assignment.spec.name, "file": str(assignment.path), "out_of": assignment.total,
            "experiments": [{"id": i.id, "points": i.points} for i in assignment.spec.experiments],
            "students": [s.to_dict() for s in students]}


def write_csv(assignment: Assignment, students: list[Student], path: Path) -> None:
    ids = [item.id for item in assignment.spec.experiments]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", *[f"{i} {what}" for i in ids for what in ("verdict", "points", "parameters",
                                                                                 "why")], "total", "problems"])
        for s in students:
            writer.writerow([s.name, *[v for c in s.cells for v in (
                c.verdict, _points(c.earned), " ".join(f"{k}={v}" for k, v in c.parameters.items()), c.why)],
                _points(s.total), "; ".join(s.problems)])


def _points(value: float) -> str:
    return f"{value:g}"


def _cell(cell: Cell) -> str:
    params = ", ".join(f"{k}={v}" for k, v in cell.parameters.items())
    verdict = escape(cell.verdict)
    label = f'<a href="{escape(cell.report)}">{verdict}</a>' if cell.report else verdict
    why = f'<div class="why">{escape(cell.why[:300])}</div>' if cell.why else ""
    return (f'<td style="background:{COLOURS.get(cell.verdict, "#eee")}">{label} '
            f'{_points(cell.earned)}/{_points(cell.points)}<div class="p">{escape(params)}</div>{why}</td>')


def html(assignment: Assignment, students: list[Student]) -> str:
    head = "".join(f"<th>{escape(i.id)}<br><small>{_points(i.points)} points</small></th>"
                   for i in assignment.spec.experiments)
    rows = "".join(
        f"<tr><th>{escape(s.name)}</th>{''.join(_cell(c) for c in s.cells)}"
        f"<td><b>{_points(s.total)}</b>/{_points(assignment.total)}</td>"
        f"<td class='why'>{escape('; '.join(s.problems))}</td></tr>" for s in students)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{escape(assignment.spec.name)}: grades</title>
<style>body{{font-family:sans-serif}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;
padding:4px 8px;vertical-align:top;text-align:left}} .p{{color:#555;font-size:80%}}
.why{{color:#933;font-size:80%;max-width:28em}}</style></head><body>
<h1>{escape(assignment.spec.name)}</h1>
<p>{len(students)} students, out of {_points(assignment.total)} points. Each cell links that student's run
report; <code>lab check RUN_DIR</code> decides any of them again.</p>
<table><tr><th>student</th>{head}<th>total</th><th>problems</th></tr>{rows}</table></body></html>
"""
