"""An assignment: which experiments grade a class, the programs each student provides, points, parameters.

::

    name: listen-homework
    programs: [testlisten]
    experiments:
      - {id: listen-backlog, points: 10, params: {backlog: {range: [2, 8]}}}

A parameter is fixed (``port: 12345``) or drawn per student from a range (``{range: [2, 8]}``, both ends
included) or a list (``{choice: [4, 6]}``). The draw is seeded by the student's directory name, the
experiment and the parameter, so a re-run gives every student the same values and two students usually
differ. The file is read as strictly as a topology: every mistake at ``file:line``, exit 2.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from lab.errors import InputError, TopologyError

Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+([-_][a-z0-9]+)*$", max_length=40)]
Scalar = int | float | str | bool


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Range(Strict):
    range: tuple[int, int] | tuple[float, float]


class Choice(Strict):
    choice: list[Scalar] = Field(min_length=1)


class Item(Strict):
    id: Name
    points: float = Field(gt=0)
    params: dict[str, Scalar | Range | Choice] = Field(default_factory=dict)


class AssignmentFile(Strict):
    name: Name
    programs: list[Name] = Field(min_length=1)
    experiments: list[Item] = Field(min_length=1)


@dataclass(frozen=True)
class Assignment:
    spec: AssignmentFile
    path: Path

    @property
    def total(self) -> float:
        return sum(item.points for item in self.spec.experiments)

    def parameters(self, student: str, item: Item) -> dict[str, str]:
        """The values ``student`` gets for ``item``'s parameters, as ``-p`` takes them."""
        values: dict[str, str] = {}
        for key, spec in item.params.items():
            seed = hashlib.sha256(f"{student}\0{item.id}\0{key}".encode()).digest()
            draw = random.Random(seed)
            if isinstance(spec, Range):
                low, high = spec.range
                value: Scalar = (draw.randint(low, high) if isinstance(low, int) and isinstance(high, int)
                                 else round(draw.uniform(low, high), 3))
            elif isinstance(spec, Choice):
                value = draw.choice(spec.choice)
            else:
                value = spec
            values[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return values


def load_assignment(path: Path) -> Assignment:
    """Read and check an assignment: its experiments exist, run the programs it names, take its parameters."""
    from lab.experiments.engine import discover
    from lab.servers.contracts import CONTRACTS
    from lab.topology.loader import load_model_file

    spec, smap = load_model_file(path, AssignmentFile, "assignment file")
    catalogue = discover()
    problems = []
    for n, name in enumerate(spec.programs):
        if name not in CONTRACTS:
            problems.append(f"{smap.where(('programs', n))}: programs: {name!r} is not a program a student can "
                            f"provide (one of: {', '.join(CONTRACTS)})")
    seen: set[str] = set()
    for i, item in enumerate(spec.experiments):
        exp = catalogue.get(item.id)
        where = smap.where(("experiments", i, "id"))
        if item.id in seen:
            problems.append(f"{where}: experiments[{i}].id: {item.id} is listed twice (one entry, one set of points)")
        seen.add(item.id)
        if exp is None:
            problems.append(f"{where}: experiments[{i}].id: no experiment {item.id!r} (see: lab experiments)")
            continue
        if not set(exp.programs) & set(spec.programs):
            runs = (f"runs {', '.join(exp.programs)}, which programs: does not list" if exp.programs
                    else "runs no program a student can replace")
            problems.append(f"{where}: experiments[{i}]: {item.id} {runs}")
        for key, value in item.params.items():
            at = f"{smap.where(('experiments', i, 'params', key))}: experiments[{i}].params.{key}"
            if key not in exp.params:
                problems.append(f"{at}: {item.id} has no parameter {key!r} (its parameters: {', '.join(exp.params)})")
                continue
            if isinstance(value, Range) and value.range[0] > value.range[1]:
                problems.append(f"{at}: the range {list(value.range)} is empty")
            values = list(value.range) if isinstance(value, Range) else (
                value.choice if isinstance(value, Choice) else [value])
            for one in values:
                try:
                    exp.parameters({key: str(one).lower() if isinstance(one, bool) else str(one)})
                except InputError as exc:
                    problems.append(f"{at}: {exc.message.removeprefix(f'-p {key}={one}: ')}")
                    break
    if problems:
        raise TopologyError(problems)
    return Assignment(spec, path)
