"""The house rules that can be checked without root: no import cycle inside lab/, short modules, lean start-up.

A cycle is counted from every import in a module (``import a.b``, ``from a.b import c`` naming a
module or a name in it), those inside functions and under ``if TYPE_CHECKING:`` included: they
cannot make an import fail half-way, but a cycle through them is still two modules that each
need the other, which no one can change or test apart.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

LAB = Path(__file__).resolve().parents[2] / "lab"


def module_graph() -> dict[str, set[str]]:
    files = {}
    for path in LAB.rglob("*.py"):
        name = ".".join(path.relative_to(LAB.parent).with_suffix("").parts).removesuffix(".__init__")
        files[name] = path
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            graph[name] |= {t for t in targets if t in files and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


# The one pair left, on purpose: ``Packet.summary()`` and ``line()`` are the experiment guide's API for
# printing a packet, and the notation (lab.capture.text, 260 lines) needs the records' types. Merging
# the two would pass 500 lines; dropping the methods would break experiments written from the guide.
KNOWN = [["lab.capture.records", "lab.capture.text"]]


def test_no_import_cycle_inside_lab() -> None:
    assert cycles(module_graph()) == KNOWN


def test_the_cycle_finder_finds_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_over_500_lines_outside_the_servers() -> None:
    """A module that long does several jobs; lab/servers/ holds the book's programs, one per file."""
    long = {str(p.relative_to(LAB.parent)): n for p in LAB.rglob("*.py")
            if "servers" not in p.parts and (n := len(p.read_text().splitlines())) > 500}
    assert long == {}


def test_no_function_over_80_lines_outside_the_servers() -> None:
    """A function that does one thing fits on a screen; the servers (standalone programs) aside."""
    long = [f"{path.relative_to(LAB.parent)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for path in LAB.rglob("*.py") if "servers" not in path.parts
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno is not None
            and node.end_lineno - node.lineno + 1 > 80]
    assert long == []


def test_the_experiment_guide_names_every_run_call_and_every_expect_function() -> None:
    """docs/EXPERIMENT_GUIDE.md is the reference: a public verb or claim it does not name is undocumented."""
    import inspect

    from lab.experiments import expect
    from lab.experiments.context import Run

    guide = (LAB.parent / "docs" / "EXPERIMENT_GUIDE.md").read_text()
    verbs = [n for n, f in inspect.getmembers(Run) if not n.startswith("_") and callable(f)]
    claims = [n for n, f in inspect.getmembers(expect, inspect.isfunction)
              if not n.startswith("_") and f.__module__ == expect.__name__]
    assert len(verbs) > 20 and len(claims) > 30
    assert [n for n in verbs if f"run.{n}(" not in guide and f"run.{n}`" not in guide] == []
    assert [n for n in claims if f"expect.{n}(" not in guide and f"expect.{n}`" not in guide] == []


HEAVY = ("docker", "pyroute2", "lab.experiments", "lab.deploy", "lab.net", "lab.nodes", "lab.capture", "lab.cluster")


def modules_after(argv: list[str]) -> set[str]:
    """The modules a fresh interpreter holds after ``lab ARGV`` (its output thrown away)."""
    code = ("import contextlib, io, sys\nfrom lab.cli import main\n"
            f"with contextlib.redirect_stdout(io.StringIO()):\n    main({argv!r})\n"
            "print('\\n'.join(sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return set(done.stdout.split())


def of(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in packages))


def test_help_and_validate_import_only_what_they_need() -> None:
    """Start-up costs what the verb needs: ``--help`` no topology machinery at all, ``validate`` no
    Docker, netlink, experiments or building code."""
    assert of(modules_after(["--help"]), (*HEAVY, "pydantic", "yaml", "jinja2")) == []
    book_lan = str(LAB.parent / "topologies" / "book-lan.yaml")
    assert of(modules_after(["validate", book_lan]), HEAVY) == []
