"""The pure parts of a reader's program and of grading: assignment files, per-student parameters, programs
made ready without a compiler, contracts in the catalogue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lab.cli import app
from lab.errors import InputError, TopologyError
from lab.grading.assignment import load_assignment
from lab.grading.grade import Cell, Student, find_program
from lab.grading.table import write_all
from lab.sandbox.program import prepare

GOOD = """\
name: listen-homework
programs: [testlisten]
experiments:
  - {id: listen-backlog, points: 10, params: {backlog: {range: [2, 8]}, extra_clients: 2}}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "assignment.yaml"
    path.write_text(text)
    return path


def test_each_student_gets_a_value_of_their_own_the_same_every_time(tmp_path: Path) -> None:
    a = load_assignment(write(tmp_path, GOOD))
    item = a.spec.experiments[0]
    values = {s: a.parameters(s, item) for s in (f"student{i}" for i in range(40))}
    assert all(2 <= int(v["backlog"]) <= 8 and v["extra_clients"] == "2" for v in values.values())
    assert len({v["backlog"] for v in values.values()}) >= 5  # they differ
    assert values == {s: load_assignment(write(tmp_path, GOOD)).parameters(s, item) for s in values}
    assert a.total == 10


@pytest.mark.parametrize("text, where", [
    (GOOD.replace("listen-backlog", "listen-backlogg"), "assignment.yaml:4: experiments[0].id: no experiment"),
    (GOOD.replace("backlog: {range", "backlogg: {range"), "assignment.yaml:4: experiments[0].params.backlogg: "
                                                          "listen-backlog has no parameter 'backlogg'"),
    (GOOD.replace("{range: [2, 8]}", "abc"), "assignment.yaml:4: experiments[0].params.backlog: expected int"),
    (GOOD.replace("[testlisten]", "[testlisten, testaccept]").replace("listen-backlog", "tcp-handshake-close"),
     "tcp-handshake-close runs no program a student can replace"),
    (GOOD.replace("[testlisten]", "[echo]"), "assignment.yaml:2: programs: 'echo' is not a program"),
    (GOOD.replace("[2, 8]", "[8, 2]"), "the range [8, 2] is empty"),
    (GOOD.replace("points: 10", "pointz: 10"), "assignment.yaml:4"),
    (GOOD.replace("name: listen-homework", "name: Listen Homework"), "assignment.yaml:1: name"),
])
def test_a_bad_assignment_is_refused_at_file_line(tmp_path: Path, text: str, where: str) -> None:
    with pytest.raises(TopologyError) as caught:
        load_assignment(write(tmp_path, text))
    assert where in str(caught.value)


def test_a_script_is_made_ready_and_a_stray_file_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "mine.sh"
    script.write_text("#!/bin/sh\nexec sleep 1\n")
    ready = prepare("testlisten", script, tmp_path)
    assert ready.kind == "script" and ready.inside == "/prog/testlisten"
    assert (ready.directory / "testlisten").stat().st_mode & 0o777 == 0o755
    notes = tmp_path / "notes.txt"
    notes.write_text("my homework\n")
    with pytest.raises(InputError, match="neither an executable"):
        prepare("testlisten", notes, tmp_path)
    with pytest.raises(InputError, match="no such file"):
        prepare("testlisten", tmp_path / "absent.c", tmp_path)


def test_a_students_program_is_found_by_name_or_source(tmp_path: Path) -> None:
    (tmp_path / "testlisten.cpp").write_text("int main() {}\n")
    assert find_program(tmp_path, "testlisten") == tmp_path / "testlisten.cpp"
    assert find_program(tmp_path, "testaccept") is None
    (tmp_path / "testlisten.c").write_text("int main() {}\n")
    with pytest.raises(InputError, match="several testlisten: testlisten.c, testlisten.cpp"):
        find_program(tmp_path, "testlisten")


def test_a_float_range_draws_floats() -> None:
    from lab.grading.assignment import Assignment, AssignmentFile

    spec = AssignmentFile.model_validate({"name": "x", "programs": ["testlisten"], "experiments": [
        {"id": "listen-backlog", "points": 1, "params": {"interval": {"range": [0.1, 0.5]}}}]})
    value = float(Assignment(spec, Path("x")).parameters("ana", spec.experiments[0])["interval"])
    assert 0.1 <= value <= 0.5


def test_the_class_table_links_every_run(tmp_path: Path) -> None:
    a = load_assignment(write(tmp_path, GOOD))
    good = Student("ana", [Cell("listen-backlog", 10, "pass", 10, {"backlog": "3"}, report="ana/r/report.html")])
    broken = Student("cho", [Cell("listen-backlog", 10, "compile", 0, {"backlog": "7"}, why="does not compile")],
                     ["testlisten.c does not compile"])
    csv_file, json_file, html_file = write_all(a, [good, broken], tmp_path)
    assert csv_file.read_text().splitlines()[1:] == [
        "ana,pass,10,backlog=3,,10,", "cho,compile,0,backlog=7,does not compile,0,testlisten.c does not compile"]
    assert json.loads(json_file.read_text())["students"][1]["cells"][0]["verdict"] == "compile"
    page = html_file.read_text()
    assert '<a href="ana/r/report.html">pass</a>' in page and "backlog=7" in page


def test_the_catalogue_shows_each_programs_contract() -> None:
    got = CliRunner().invoke(app, ["experiments", "--json"])
    listen = next(e for e in json.loads(got.stdout) if e["id"] == "listen-backlog")
    assert listen["programs"][0]["program"] == "testlisten"
    assert listen["programs"][0]["argv"] == "IP PORT BACKLOG" and "LISTEN" in listen["programs"][0]["ready"]


def test_a_claim_not_judged_counts_for_neither_pass_nor_fail() -> None:
    from lab.experiments import expect
    from lab.report.model import overall_verdict

    held = expect.check("held", True, 1, 1)
    unjudged = expect.unjudged("not judged", "the program accepted at once")
    assert overall_verdict([held, unjudged]) == "pass"
    assert overall_verdict([expect.check("failed", False, 1, 2), unjudged]) == "fail"
    assert overall_verdict([unjudged]) == "error"  # a run must judge something
