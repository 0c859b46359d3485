"""The JSON report: a stable schema for CI and other tools (documented in docs/REPORT_SCHEMA.md).

``{"version": 1, "experiments": [item, ...]}``, one item per experiment run.
Fields are only ever added within a version; renaming or removing one bumps
``version``. :func:`problems` checks a document against the schema, so tests
(and anyone consuming the report) can tell a broken report from a failed run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lab.report.model import RunResult

VERSION = 1
VERDICTS = ("pass", "fail", "error")
CLAIM_VERDICTS = (*VERDICTS, "unjudged")

# field → accepted JSON types (None means null is allowed)
ITEM_FIELDS: dict[str, tuple[type | None, ...]] = {
    "id": (str,),
    "title": (str,),
    "section": (str,),
    "verdict": (str,),
    "duration_s": (int, float),
    "parameters": (dict,),
    "expectations": (list,),
    "error": (str, None),
    "pcaps": (dict,),
    "report": (str, None),
}
EXPECTATION_FIELDS: dict[str, tuple[type | None, ...]] = {
    "description": (str,),
    "verdict": (str,),
    "expected": (str,),
    "observed": (str,),
    "packets": (list,),
}


def _plain(value: Any) -> Any:
    """A JSON-safe copy of a parameter value (paths and other objects become strings)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def experiment_json(result: RunResult) -> dict[str, Any]:
    """One experiment item of the schema, from a run."""
    return {
        "id": result.id,
        "title": result.title,
        "section": result.section,
        "topology": result.topology,
        "verdict": result.verdict,
        "started": result.started,
        "duration_s": round(float(result.duration_s), 3),
        "parameters": _plain(result.parameters),
        "expectations": [
            {
                "description": v.description,
                "verdict": v.verdict,
                "expected": v.expected,
                "observed": v.observed,
                "packets": list(v.packets),
            }
            for v in result.expectations
        ],
        "error": result.error,
        "pcaps": {str(point): str(path) for point, path in result.pcaps.items()},
        "report": str(result.html_path) if result.html_path else None,
        "packets": len(result.packets),
        "notes": list(result.notes),
        "machines": dict(result.machines),
        "processes": [{"node": p.node, "pid": p.pid, "parent": p.parent, "program": p.program, "did": list(p.did),
                       "calls": p.calls} for p in result.processes],
    }


# The Python packages whose versions decide a run's behaviour; the report names them (and the kernel),
# so two reports made a month apart show what changed between them (docs/REPRODUCIBILITY.md).
RECORDED_PACKAGES = ("lab", "pyroute2", "dpkt", "docker", "pydantic", "PyYAML", "Jinja2", "typer", "rich")


def environment() -> dict[str, Any]:
    """Where the run was made: kernel, Python, and the versions of lab and its libraries."""
    import platform
    from importlib import metadata

    packages: dict[str, str | None] = {}
    for name in RECORDED_PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    return {"kernel": platform.release(), "python": platform.python_version(), "packages": packages}


def document(items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The top-level document around experiment items (as made by :func:`experiment_json`)."""
    return {"version": VERSION, "environment": environment(), "experiments": list(items)}


def to_json(results: Iterable[RunResult]) -> dict[str, Any]:
    return document(experiment_json(r) for r in results)


def write_json(results: Iterable[RunResult], path: str | Path) -> Path:
    p = Path(path)
    p.write_text(json.dumps(to_json(results), indent=2, ensure_ascii=False) + "\n")
    return p


def problems(doc: Any) -> list[str]:
    """Where a document departs from the schema (empty if it conforms)."""
    found: list[str] = []
    if not isinstance(doc, dict):
        return ["the document is not a JSON object"]
    if doc.get("version") != VERSION:
        found.append(f"version is {doc.get('version')!r}, expected {VERSION}")
    items = doc.get("experiments")
    if not isinstance(items, list):
        return found + ["experiments is not a list"]
    for i, item in enumerate(items):
        where = f"experiments[{i}]"
        if not isinstance(item, dict):
            found.append(f"{where} is not an object")
            continue
        found += _check_fields(item, ITEM_FIELDS, where)
        if item.get("verdict") not in VERDICTS:
            found.append(f"{where}.verdict is {item.get('verdict')!r}, expected one of {', '.join(VERDICTS)}")
        for j, exp in enumerate(item.get("expectations") or []):
            at = f"{where}.expectations[{j}]"
            if not isinstance(exp, dict):
                found.append(f"{at} is not an object")
                continue
            found += _check_fields(exp, EXPECTATION_FIELDS, at)
            if exp.get("verdict") not in CLAIM_VERDICTS:
                found.append(f"{at}.verdict is {exp.get('verdict')!r}")
            if not all(isinstance(n, int) for n in exp.get("packets") or []):
                found.append(f"{at}.packets must be packet numbers")
    return found


def _check_fields(obj: dict[str, Any], fields: dict[str, tuple[type | None, ...]], where: str) -> list[str]:
    out = []
    for name, types in fields.items():
        if name not in obj:
            out.append(f"{where}.{name} is missing")
            continue
        value = obj[name]
        allowed = tuple(t for t in types if t is not None)
        if value is None and None in types:
            continue
        if isinstance(value, bool) and bool not in allowed or not isinstance(value, allowed):
            names = " or ".join("null" if t is None else t.__name__ for t in types)
            out.append(f"{where}.{name} is {type(value).__name__}, expected {names}")
    return out
