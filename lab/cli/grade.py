"""``lab grade SUBMISSIONS --assignment FILE``: a whole class through the assignment's experiments."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from lab.cli.common import console, out


def grade(
    submissions: Path = typer.Argument(..., help="A directory with one directory per student."),
    assignment: Path = typer.Option(..., "--assignment", "-a", help="The assignment (YAML): experiments, "
                                    "programs, points, parameters."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, max=16, help="Runs at once (each in a lab of its own)."),
    out_dir: Path = typer.Option(Path("grades"), "--out", help="Where grades.csv, grades.json, index.html and "
                                 "every run's report go."),
    as_json: bool = typer.Option(False, "--json", help="Print grades.json on stdout."),
) -> None:
    """Grade every submission: exit 0 once all are graded (whatever the grades), 2 bad input, 3 no labs here."""
    from rich.table import Table

    from lab.grading.assignment import load_assignment
    from lab.grading.grade import grade as grade_class
    from lab.grading.grade import students_in
    from lab.grading.table import document, write_all
    from lab.net.netns import require_root

    spec = load_assignment(assignment)
    count = len(students_in(submissions))
    require_root()
    out_dir = out_dir.resolve()
    runs = count * len(spec.spec.experiments)
    console.print(f"grading {count} submissions × {len(spec.spec.experiments)} experiments ({runs} runs, "
                  f"{jobs} at a time); reports under {out_dir}")

    def said(student: object, cell: object) -> None:
        from lab.grading.grade import Cell, Student

        assert isinstance(student, Student) and isinstance(cell, Cell)
        colour = {"pass": "green", "fail": "red"}.get(cell.verdict, "yellow")
        console.print(f"[{colour}]{cell.verdict.upper():8}[/] {student.name:20} {cell.experiment:26} "
                      f"{cell.earned:g}/{cell.points:g}  {cell.why[:80]}")

    students = grade_class(spec, submissions.resolve(), out_dir, jobs, said)
    paths = write_all(spec, students, out_dir)
    if as_json:
        out.print_json(json.dumps(document(spec, students)))
        return
    table = Table("student", *[i.id for i in spec.spec.experiments], "total")
    for s in students:
        table.add_row(s.name, *[f"{c.verdict} {c.earned:g}" for c in s.cells], f"{s.total:g}/{spec.total:g}")
    out.print(table)
    out.print(f"class table: {paths[2]}  ({paths[0].name}, {paths[1].name} beside it)")


def register(app: typer.Typer) -> None:
    app.command()(grade)
