"""What an experiment is, how its parameters are typed, and how experiments are found.

An experiment module calls :func:`experiment` as a decorator on its steps
function. Parameters are declared with defaults; ``-p name=value`` overrides
are converted to the default's type, so expectations computed from
``run.p.backlog`` follow whatever the user asked for.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from lab.errors import InputError

if TYPE_CHECKING:
    from lab.experiments.context import Run

ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
TOPOLOGIES = Path(__file__).resolve().parent.parent.parent / "topologies"
REGISTRY: dict[str, Experiment] = {}


@dataclass
class Experiment:
    id: str
    title: str
    section: str
    topology: str
    steps: Callable[[Run], None]
    params: dict[str, Any] = field(default_factory=dict)
    book: str = ""
    modern: str = ""
    needs: frozenset[str] = frozenset()
    module: str = ""

    @property
    def summary(self) -> str:
        return self.title

    def parameters(self, overrides: dict[str, str] | None = None) -> SimpleNamespace:
        """Defaults with overrides applied, each converted to its default's type."""
        values = dict(self.params)
        for key, raw in (overrides or {}).items():
            if key not in self.params:
                known = ", ".join(sorted(self.params)) or "none"
                raise InputError(f"{self.id} has no parameter {key!r}", f"parameters: {known}")
            values[key] = convert(raw, self.params[key], key)
        return SimpleNamespace(**values)

    def topology_path(self) -> Path:
        path = Path(self.topology)
        return path if path.is_absolute() else TOPOLOGIES / path


def convert(raw: str, default: Any, key: str) -> Any:
    try:
        if isinstance(default, bool):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError:
        raise InputError(f"-p {key}={raw}: expected {type(default).__name__}") from None
    return raw


def experiment(
    id: str, title: str, section: str, topology: str, params: dict[str, Any] | None = None,
    book: str = "", modern: str = "", needs: set[str] | None = None,
) -> Callable[[Callable[[Run], None]], Callable[[Run], None]]:
    """Register the decorated function as the steps of an experiment."""
    if not ID.match(id):
        raise ValueError(f"experiment id {id!r} must be kebab-case")

    def register(fn: Callable[[Run], None]) -> Callable[[Run], None]:
        REGISTRY[id] = Experiment(id, title, section, topology, fn, dict(params or {}), book.strip("\n"),
                                  " ".join(modern.split()), frozenset(needs or ()), fn.__module__)
        return fn

    return register


def discover(paths: list[Path] | None = None) -> dict[str, Experiment]:
    """Import the package's experiments and any ``*.py`` under the given user directories."""
    book = importlib.import_module("lab.experiments.book")
    for info in pkgutil.iter_modules(book.__path__):
        importlib.import_module(f"{book.__name__}.{info.name}")
    for directory in paths or []:
        if not directory.is_dir():
            raise InputError(f"--path {directory}: not a directory")
        for file in sorted(directory.glob("*.py")):
            name = f"lab_user_experiments.{file.stem}"
            spec = importlib.util.spec_from_file_location(name, file)
            if spec is None or spec.loader is None:
                continue
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except Exception as exc:
                raise InputError(f"{file}: could not load experiments: {type(exc).__name__}: {exc}") from None
    return dict(sorted(REGISTRY.items()))


def find(exp_id: str, paths: list[Path] | None = None) -> Experiment:
    catalogue = discover(paths)
    key = exp_id.replace("_", "-")
    if key not in catalogue:
        close = [e for e in catalogue if key in e or e.startswith(key.split("-")[0])][:5]
        hint = f"did you mean: {', '.join(close)}" if close else "see: lab experiments"
        raise InputError(f"no experiment {exp_id!r}", hint)
    return catalogue[key]
