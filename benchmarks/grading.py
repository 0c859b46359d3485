"""A reader's program and a class: what the sandbox costs, and what ``lab grade --jobs`` saves.

    .venv/bin/python benchmarks/grading.py                       # both figures
    .venv/bin/python benchmarks/grading.py --students 20 --repeat 5

Run as root, on an idle machine. In one run, side by side:

- **the sandbox's cost**: ``lab run listen-backlog`` on one lab, ``--repeat`` times with the project's
  ``testlisten`` and ``--repeat`` times with the book's published 5-3 compiled (the executable handed to
  ``--use``, so the figure holds the sandbox, not the compiler), interleaved; the median of each and their
  ratio;
- **a class graded**: ``--students`` copies of the book's 5-3 (each its own directory, so each its own
  parameters) through an assignment of the three experiments that run ``testlisten``, once with
  ``--jobs 1`` and once with ``--jobs 4``; both wall times and their ratio.

It prints; it never asserts a time.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BOOK_5_3 = HERE.parent / "tests" / "fixtures" / "book_listings" / "5-3_testlisten.cpp"
LAB = [sys.executable, "-m", "lab"]
ASSIGNMENT = """\
name: bench
programs: [testlisten]
experiments:
  - {id: listen-backlog, points: 10, params: {backlog: {range: [2, 8]}, extra_clients: 2}}
  - {id: somaxconn-cap, points: 10}
  - {id: syn-queue-syncookies, points: 10}
"""


def timed(argv: list[str]) -> float:
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-400:]}")
    return time.monotonic() - started


def sandbox_cost(work: Path, repeat: int) -> dict[str, float]:
    exe = work / "testlisten"
    subprocess.run(["c++", "-pthread", "-o", str(exe), str(BOOK_5_3)], check=True)
    name = "book-lan"  # the topology's own name: refused if a book-lan lab is up already
    up = subprocess.run([*LAB, "up", "topologies/book-lan.yaml", "-q"], capture_output=True, text=True, cwd=HERE.parent)
    if up.returncode != 0:
        raise SystemExit(f"lab up book-lan: {up.stderr.strip()[-300:]}")
    ours, yours = [], []
    try:
        for _ in range(repeat):
            run = [*LAB, "run", "listen-backlog", "--lab", name, "-q", "--out", str(work / "runs")]
            ours.append(timed(run))
            yours.append(timed([*run, "--use", f"testlisten={exe}"]))
    finally:
        subprocess.run([*LAB, "down", name], capture_output=True)
    return {"ours_median_s": statistics.median(ours), "yours_median_s": statistics.median(yours),
            "ratio": statistics.median(yours) / statistics.median(ours)}


def class_graded(work: Path, students: int) -> dict[str, float]:
    submissions = work / "class"
    for i in range(students):
        (submissions / f"student{i:02d}").mkdir(parents=True)
        (submissions / f"student{i:02d}" / "testlisten.cpp").write_text(BOOK_5_3.read_text())
    assignment = work / "assignment.yaml"
    assignment.write_text(ASSIGNMENT)
    times = {}
    for jobs in (1, 4):
        times[jobs] = timed([*LAB, "grade", str(submissions), "--assignment", str(assignment), "--jobs", str(jobs),
                             "--out", str(work / f"grades-{jobs}")])
    return {"runs": students * 3, "jobs1_s": times[1], "jobs4_s": times[4], "ratio": times[4] / times[1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-class", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lab-bench-grading-") as tmp:
        work = Path(tmp)
        cost = sandbox_cost(work, args.repeat)
        print(f"sandbox: listen-backlog median {cost['ours_median_s']:.2f} s with the project's testlisten, "
              f"{cost['yours_median_s']:.2f} s with the book's 5-3 in the sandbox: {cost['ratio']:.2f}×")
        if not args.skip_class:
            graded = class_graded(work, args.students)
            print(f"class: {args.students} students × 3 experiments ({graded['runs']:.0f} runs): "
                  f"--jobs 1 {graded['jobs1_s']:.1f} s, --jobs 4 {graded['jobs4_s']:.1f} s: {graded['ratio']:.2f}×")


if __name__ == "__main__":
    main()
