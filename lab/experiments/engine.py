"""What an experiment is, how its parameters are typed, and how experiments are found.

An experiment module calls :func:`experiment` as a decorator on its steps
function. Parameters are the steps function's own keyword parameters, typed and
defaulted in its signature (``def steps(run, port: int = 54321, rtt: Duration =
Duration("40ms"))``: int, float, str, bool and lab.experiments.params' Duration,
Percent, Rate); the function is called with them, and ``run.p`` holds them too.
The older ``@experiment(params={...})`` still works: a parameter's type is then
its default's. ``-p name=value`` is converted to the declared type, with a
one-line error if it does not fit, so expectations computed from the parameters
follow whatever the user asked for.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from lab.errors import InputError
from lab.experiments.params import TYPE_NAMES, Duration, Percent, Rate
from lab.topology.shipped import SHIPPED

if TYPE_CHECKING:
    from lab.experiments.context import Run

ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
TOPOLOGIES = SHIPPED
REGISTRY: dict[str, Experiment] = {}
ONE_MACHINE_NEEDS = frozenset({"strace"})


@dataclass
class Experiment:
    id: str
    title: str
    section: str
    topology: str
    steps: Callable[..., None]
    params: dict[str, Any] = field(default_factory=dict)
    book: str = ""
    modern: str = ""
    needs: frozenset[str] = frozenset()
    module: str = ""
    types: dict[str, type] = field(default_factory=dict)  # each parameter's type
    keyword: bool = False  # the steps take the parameters as keyword arguments (declared in the signature)
    topology6: str | None = None  # with a ``family`` parameter: the topology for -p family=6
    programs: tuple[str, ...] = ()  # the project's programs a reader's own may replace (--use; lab.servers.contracts)
    lasts: float = 0.0  # about how long its steps take at the defaults, in seconds, where that is long

    @property
    def summary(self) -> str:
        return self.title

    @property
    def one_machine(self) -> bool:
        """It needs what only a namespace node of this machine has (strace of a program in the node's
        namespace, written to the run's directory): not over a cluster, where every node is a container."""
        return bool(self.needs & ONE_MACHINE_NEEDS)

    def parameters(self, overrides: dict[str, str] | None = None) -> SimpleNamespace:
        """Defaults with overrides applied, each converted to its default's type."""
        values = dict(self.params)
        for key, raw in (overrides or {}).items():
            if key not in self.params:
                known = ", ".join(sorted(self.params)) or "none"
                raise InputError(f"{self.id} has no parameter {key!r}", f"parameters: {known}")
            values[key] = convert(raw, self.types.get(key, type(self.params[key])), key)
        if "family" in values and values["family"] not in (4, 6):
            raise InputError(f"-p family={values['family']}: expected 4 or 6 (IPv4 or IPv6)")
        return SimpleNamespace(**values)

    def run_steps(self, run: Run) -> None:
        """Call the steps: with the parameters as keyword arguments when the signature declares them."""
        if self.keyword:
            self.steps(run, **vars(run.p))
        else:
            self.steps(run)

    def parameter_types(self) -> dict[str, str]:
        """Each parameter's type, as ``lab experiments --json`` shows it."""
        return {k: TYPE_NAMES.get(self.types.get(k, type(v)), type(v).__name__) for k, v in self.params.items()}

    def topology_for(self, params: SimpleNamespace | None = None) -> str:
        """The topology file the run uses: ``topology6`` for -p family=6, else ``topology``."""
        if params is not None and getattr(params, "family", 4) == 6 and self.topology6:
            return self.topology6
        return self.topology

    def topology_path(self, params: SimpleNamespace | None = None) -> Path:
        path = Path(self.topology_for(params))
        return path if path.is_absolute() else TOPOLOGIES / path


def convert(raw: str, kind: type, key: str) -> Any:
    """``-p key=raw`` as a value of ``kind``; a one-line InputError if it is not one."""
    try:
        if kind is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"{raw!r} is not true or false")
        if kind in (int, float, Duration, Percent, Rate):
            return kind(raw)
    except ValueError as exc:
        # int() and float() say "invalid literal ..."; the units' own messages say what to write
        detail = f"{raw!r} is not {'an' if kind is int else 'a'} {kind.__name__}" if kind in (int, float) else str(exc)
        raise InputError(f"-p {key}={raw}: expected {TYPE_NAMES.get(kind, kind.__name__)}: {detail}") from None
    return raw


def _annotation(fn: Callable[..., None], parameter: inspect.Parameter) -> type | None:
    """A parameter's declared type (annotations are text under ``from __future__ import annotations``)."""
    note = parameter.annotation
    if note is inspect.Parameter.empty:
        return None
    if isinstance(note, str):
        names = {t.__name__: t for t in TYPE_NAMES}
        try:
            note = names.get(note) or eval(note, fn.__globals__, names)  # noqa: S307 (the module's own text)
        except Exception:
            return None
    return note if isinstance(note, type) else None


def signature_params(fn: Callable[..., None]) -> tuple[dict[str, Any], dict[str, type]]:
    """The keyword parameters after ``run`` in the steps' signature: defaults and types."""
    defaults: dict[str, Any] = {}
    types: dict[str, type] = {}
    for name, parameter in list(inspect.signature(fn).parameters.items())[1:]:
        if parameter.default is inspect.Parameter.empty:
            raise ValueError(f"{fn.__qualname__}: parameter {name!r} needs a default")
        kind = _annotation(fn, parameter) or type(parameter.default)
        if kind not in TYPE_NAMES:
            raise ValueError(f"{fn.__qualname__}: parameter {name!r} is a {kind}; use one of "
                             f"{', '.join(TYPE_NAMES.values())}")
        defaults[name] = parameter.default if isinstance(parameter.default, kind) else kind(parameter.default)
        types[name] = kind
    return defaults, types


def experiment(
    id: str, title: str, section: str, topology: str, params: dict[str, Any] | None = None,
    book: str = "", modern: str = "", needs: set[str] | None = None, topology6: str | None = None,
    programs: tuple[str, ...] = (), lasts: float = 0.0,
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register the decorated function as the steps of an experiment.

    ``lasts`` (seconds, at the defaults) marks a long one: ``lab run --all`` starts the longest first, so a
    wait the kernel fixes (TIME_WAIT's 60 s) runs beside the rest instead of after it.

    An experiment that also holds over IPv6 takes a ``family`` parameter (4 by default) and names the
    topology ``-p family=6`` runs on (``topology6``, the same nodes with IPv6 addresses).
    """
    if not ID.match(id):
        raise ValueError(f"experiment id {id!r} must be kebab-case")
    from lab.servers.contracts import CONTRACTS

    if set(programs) - set(CONTRACTS):
        raise ValueError(f"experiment {id!r}: programs= names one without a contract: {set(programs) - set(CONTRACTS)}")

    def register(fn: Callable[..., None]) -> Callable[..., None]:
        declared, types = signature_params(fn)
        if declared and params:
            raise ValueError(f"experiment {id!r}: declare parameters in the signature or in params=, not both")
        values = declared or dict(params or {})
        if ("family" in values) != (topology6 is not None):
            raise ValueError(f"experiment {id!r}: a family parameter and topology6= go together")
        REGISTRY[id] = Experiment(id, title, section, topology, fn, values, book.strip("\n"),
                                  " ".join(modern.split()), frozenset(needs or ()), fn.__module__,
                                  types or {k: type(v) for k, v in (params or {}).items()}, bool(declared), topology6,
                                  tuple(programs), lasts)
        return fn

    return register


def discover(paths: list[Path] | None = None) -> dict[str, Experiment]:
    """Import the package's experiments and the experiment modules in the given user directories.

    In a ``--path`` directory every ``*.py`` whose name does not start with ``_`` is an experiment
    module and is imported; ``_helpers.py`` and the like are not, but the directory is on
    ``sys.path``, so the modules can ``import _helpers``.
    """
    book = importlib.import_module("lab.experiments.book")
    for info in pkgutil.iter_modules(book.__path__):
        importlib.import_module(f"{book.__name__}.{info.name}")
    for directory in paths or []:
        if not directory.is_dir():
            raise InputError(f"--path {directory}: not a directory")
        if str(directory.resolve()) not in sys.path:
            sys.path.insert(0, str(directory.resolve()))
        for file in sorted(f for f in directory.glob("*.py") if not f.name.startswith("_")):
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
