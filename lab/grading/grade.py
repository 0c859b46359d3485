"""Grade a class: every student's programs through every experiment of the assignment, in labs of their own.

``SUBMISSIONS/<student>/`` holds the programs the assignment names (``testlisten``: an executable or
a script, or ``testlisten.c`` / ``testlisten.cpp``). Each student's programs are made ready first (compiled
in the sandbox); then each (student, experiment) is one child ``lab run ID --use …`` with the student's
own parameters, in a fresh lab of its own, N at once. A missing program, source that does not compile, a
program that crashes or hangs: that student's cells say so, and grading goes on.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lab.errors import InputError
from lab.grading.assignment import Assignment, Item
from lab.sandbox.program import COMPILERS, CompileError, prepare

SOURCES = ("", *COMPILERS)  # testlisten (an executable or a script), testlisten.c, testlisten.cpp, ...


@dataclass
class Cell:
    """One student's result in one experiment."""

    experiment: str
    points: float  # what the experiment is worth
    verdict: str  # pass, fail, error; or missing, compile, invalid (no run: the program is not there or not one)
    earned: float
    parameters: dict[str, str]
    why: str = ""  # the failed claim, or the error, in one line
    report: str | None = None  # the run's report.html, relative to the grading's output directory
    run_dir: str | None = None


@dataclass
class Student:
    name: str
    cells: list[Cell] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # a program missing, not compiling: said once per student

    @property
    def total(self) -> float:
        return sum(c.earned for c in self.cells)

    def to_dict(self) -> dict[str, object]:
        return {"student": self.name, "total": self.total, "problems": self.problems,
                "cells": [asdict(c) for c in self.cells]}


def students_in(submissions: Path) -> list[Path]:
    if not submissions.is_dir():
        raise InputError(f"{submissions}: not a directory", "give the directory that holds one directory per student")
    found = sorted(d for d in submissions.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not found:
        raise InputError(f"{submissions}: no student directories in it", "one directory per student, each with "
                         "the programs the assignment names")
    return found


def find_program(student: Path, name: str) -> Path | None:
    """The student's ``name``: an executable or script of that name, or its C/C++ source. Several of them
    is a problem of the submission (which one would be graded?), raised as InputError."""
    found = [student / f"{name}{suffix}" for suffix in SOURCES
             if (student / f"{name}{suffix}").is_file() or (student / f"{name}{suffix}").is_symlink()]
    if len(found) > 1:
        raise InputError(f"several {name}: {', '.join(p.name for p in found)}; hand in one")
    if found and (found[0].is_symlink() or not found[0].is_file()):
        # a link could hand in another student's work, or make the grader (root) read a file of the machine
        raise InputError(f"{found[0].name} is a symbolic link, not a file: hand in the program itself")
    return found[0] if found else None


def grade(assignment: Assignment, submissions: Path, out: Path, jobs: int,
          on_cell: Callable[[Student, Cell], None] = lambda s, c: None) -> list[Student]:
    """Grade every student; results in submission order (directory names, sorted)."""
    from lab.experiments.engine import find
    from lab.experiments.runner import run_child

    dirs = students_in(submissions)
    out.mkdir(parents=True, exist_ok=True)
    workdir = out / ".programs"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir()
    students = [Student(d.name) for d in dirs]
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            ready = list(pool.map(lambda s, d: _ready(assignment, s, d, out, workdir), students, dirs))

            def one(job: tuple[Student, dict[str, Path], Item]) -> Cell:
                student, programs, item = job
                exp = find(item.id)
                params = assignment.parameters(student.name, item)
                cell = Cell(item.id, item.points, "error", 0.0, params)
                mine = {n: p for n, p in programs.items() if n in exp.programs}
                absent = [n for n in exp.programs if n in assignment.spec.programs and n not in programs]
                if absent:
                    cell.verdict, cell.why = _no_run(student, absent)
                else:
                    args = [a for k, v in params.items() for a in ("-p", f"{k}={v}")]
                    args += [a for n, p in mine.items() for a in ("--use", f"{n}={p}")]
                    target = out / student.name
                    target.mkdir(exist_ok=True)
                    _judge(cell, run_child(exp, args, target, name=f"{item.id}"), out)
                on_cell(student, cell)
                return cell

            jobs_list = [(s, programs, item) for s, programs in zip(students, ready, strict=True)
                         for item in assignment.spec.experiments]
            for (student, _, _), cell in zip(jobs_list, pool.map(one, jobs_list), strict=True):
                student.cells.append(cell)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return students


def _ready(assignment: Assignment, student: Student, directory: Path, out: Path, workdir: Path) -> dict[str, Path]:
    """The student's programs made ready (compiled): name → the executable; what is missing or broken goes
    in ``student.problems`` (and a compiler's messages in ``<out>/<student>/compile-<name>.txt``)."""
    ready: dict[str, Path] = {}
    mine = workdir / student.name
    mine.mkdir()
    for name in assignment.spec.programs:
        try:
            source = find_program(directory, name)
        except InputError as exc:
            student.problems.append(exc.message)
            continue
        if source is None:
            student.problems.append(f"missing {name}: no {name}, {name}.c or {name}.cpp")
            continue
        try:
            ready[name] = prepare(name, source, mine).directory / name
        except CompileError as exc:
            log = out / student.name / f"compile-{name}.txt"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text(exc.message + "\n")
            student.problems.append(f"{source.name} does not compile (see {log.relative_to(out)})")
        except InputError as exc:
            student.problems.append(exc.message.replace(f"--use {name}={source}", source.name))
    return ready


def _no_run(student: Student, absent: list[str]) -> tuple[str, str]:
    said = [p for p in student.problems if any(p.startswith(f"missing {n}") or p.split()[0].startswith(n)
                                               for n in absent)]
    kind = "missing" if any(p.startswith("missing") for p in said) else (
        "compile" if any("does not compile" in p for p in said) else "invalid")
    return kind, "; ".join(said) or f"no {', '.join(absent)}"


def _judge(cell: Cell, item: dict[str, object], out: Path) -> None:
    """A child run's JSON item into the cell: verdict, points, the claim that failed, the report's path."""
    cell.verdict = str(item.get("verdict", "error"))
    claims, notes = item.get("expectations"), item.get("notes")
    claims, notes = (claims if isinstance(claims, list) else []), (notes if isinstance(notes, list) else [])
    failed = [e for e in claims if isinstance(e, dict) and e.get("verdict") == "fail"]
    unjudged = [f"not judged: {e.get('description')} ({e.get('observed')})" for e in claims
                if isinstance(e, dict) and e.get("verdict") == "unjudged"]
    sandbox = [str(n) for n in notes if "lab-sandbox:" in str(n)]
    if cell.verdict == "pass" and unjudged:  # what the claims about the program could not decide earns nothing
        cell.verdict = "unjudged"
    cell.earned = cell.points if cell.verdict == "pass" else 0.0
    if cell.verdict == "fail":
        cell.why = "; ".join(f"{e.get('description')}: expected {e.get('expected')}, observed {e.get('observed')}"
                             for e in failed[:2])
    elif cell.verdict == "error":
        cell.why = str(item.get("error") or "")
    cell.why = "; ".join(part for part in (cell.why, *unjudged, *sandbox) if part)
    report = item.get("report")
    if isinstance(report, str) and report:
        path = Path(report)
        cell.report = str(path.relative_to(out)) if path.is_relative_to(out) else str(path)
        cell.run_dir = str(path.parent)
