"""Every file in tests/corpus/bad/ is refused by `lab validate` and `lab up` with exit 2 and clear messages.

Each corpus file says what it expects in leading comments, one per problem:
``# expect: line 7: unknown network``. The test checks that stderr holds
exactly those problems (one line each, ``file:line: ...``), that no Python
traceback leaks out, and that `lab up` created nothing: no state directory,
no namespace of the lab.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from lab.cli import main

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "bad"
FILES = sorted(CORPUS.glob("*.yaml"))
EXPECT = re.compile(rb"^# expect: line (\d+): (.+?)\s*$", re.MULTILINE)
LAB_NAME = re.compile(rb"^name:\s*(\S+)", re.MULTILINE)


def expectations(path: Path) -> list[tuple[int, str]]:
    found = [(int(m.group(1)), m.group(2).decode()) for m in EXPECT.finditer(path.read_bytes())]
    assert found, f"{path.name} has no '# expect: line N: message' comment"
    return found


def check_stderr(path: Path, err: str) -> None:
    assert "Traceback" not in err and "internal error" not in err, err
    expected = expectations(path)
    lines = err.rstrip("\n").split("\n")
    if len(expected) == 1:
        assert len(lines) == 1, f"expected one message, got:\n{err}"
        problems = [lines[0].removeprefix("lab: error: ")]
        assert lines[0].startswith("lab: error: ")
    else:
        assert lines[0] == f"lab: error: {len(expected)} problems:", err
        problems = lines[1:]
        assert len(problems) == len(expected), err
    for problem in problems:
        assert problem.startswith(f"{path}:"), f"a problem line does not name the file: {problem!r}"
        assert re.match(rf"{re.escape(str(path))}:\d+: ", problem), f"no line number: {problem!r}"
    for line, fragment in expected:
        hits = [p for p in problems if p.startswith(f"{path}:{line}: ") and fragment in p]
        assert hits, f"expected '{path.name}:{line}: ...{fragment}...' in:\n{err}"


def test_corpus_is_big_enough() -> None:
    assert len(FILES) >= 45


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_validate_refuses(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", str(path)])
    out, err = capsys.readouterr()
    assert code == 2, f"exit {code}; stdout={out!r} stderr={err!r}"
    assert out == ""
    check_stderr(path, err)


def _netns_entries() -> set[str]:
    try:
        return set(os.listdir("/run/netns"))
    except FileNotFoundError:
        return set()


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_up_refuses_and_creates_nothing(path: Path, capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("LAB_STATE_DIR", str(state))
    before = _netns_entries()
    code = main(["up", "--quiet", str(path)])
    out, err = capsys.readouterr()
    try:
        assert code == 2, f"exit {code}; stdout={out!r} stderr={err!r}"
        check_stderr(path, err)
        assert not state.exists(), "lab up made a state directory for a bad topology"
        name = LAB_NAME.search(path.read_bytes())
        new = _netns_entries() - before
        ours = [n for n in new if n.startswith("lab-bad") or (name and name.group(1).decode(errors="replace") in n)]
        assert not ours, f"lab up created namespaces for a bad topology: {ours}"
    finally:
        if code == 0:  # a bad file got through: take down what it built before failing
            main(["down", str(path)])
