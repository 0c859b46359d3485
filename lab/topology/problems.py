"""Pydantic's validation errors as lines a user can act on: ``file:line: dotted.path: what is wrong``.

One line per problem: the errors pydantic gives for each member of a union are merged, an
unknown key names the keys allowed there (or the one it looks like a misspelling of), and a
required key reported missing beside its misspelling is not a second problem.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

import lab.topology.model as model
from lab import names

if TYPE_CHECKING:
    from lab.topology.sourcemap import SourceMap


_MISSING = "required key is missing"


def explain(exc: ValidationError, smap: SourceMap, data: Any, root: type[BaseModel]) -> list[str]:
    """One line per problem: errors for the same field (the members of a union) are merged into one."""
    by_path: dict[tuple[Any, ...], list[str]] = {}
    shown_input: dict[tuple[Any, ...], str] = {}
    misspelt: set[tuple[Any, ...]] = set()  # the keys an unknown key looks like
    for err in exc.errors():
        loc = tuple(err["loc"])
        path = _user_path(loc, data, err["type"])
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(path[:-1], root)
            close = difflib.get_close_matches(str(path[-1]), allowed, n=1, cutoff=0.75)
            hint = (f"; did you mean {short(close[0])}?" if close
                    else f"; expected one of: {', '.join(allowed)}" if allowed else "")
            misspelt.update(path[:-1] + (key,) for key in close)
            text = f"unknown key {short(path[-1])}{hint}"
        else:
            text = _message(err)
            value = err.get("input")
            if err["type"] != "missing" and not isinstance(value, dict | list):
                shown_input.setdefault(path, f" (got {short(value)})")
        messages = by_path.setdefault(path, [])
        if text not in messages:
            messages.append(text)
    for path in misspelt:  # 'engin' for 'engine' is one mistake: the unknown key's line says it
        if by_path.get(path) == [_MISSING]:
            del by_path[path]
    problems = []
    for path, messages in by_path.items():
        dotted = ".".join(_show_part(p) for p in path) or "(top)"
        problems.append(f"{smap.where(path)}: {dotted}: {', or '.join(messages)}{shown_input.get(path, '')}")
    return problems


def _user_path(loc: tuple[Any, ...], data: Any, err_type: str) -> tuple[Any, ...]:
    """The parts of pydantic's location that the user wrote (not union members or validator names)."""
    path: list[Any] = []
    current = data
    for i, part in enumerate(loc):
        if isinstance(current, dict) and part in current:
            path.append(part)
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            path.append(part)
            current = current[part]
        elif err_type == "missing" and i == len(loc) - 1:
            path.append(part)
    return tuple(path)


def _show_part(part: Any) -> str:
    """A key as the user wrote it, unless it would hide the message (a newline, a 300 kB key)."""
    if isinstance(part, str) and part.isprintable() and part.strip() == part and 0 < len(part) <= 40:
        return part
    return str(part) if isinstance(part, int) else short(part, 40)


def _message(err: Any) -> str:
    msg = str(err["msg"])
    if err["type"] == "string_pattern_mismatch":
        pattern = err.get("ctx", {}).get("pattern", "")
        noun, words = _pattern_words(pattern)
        return f"not a valid name (allowed: {words})" if noun == "name" else f"not valid (expected {words})"
    if err["type"] == "missing":
        return _MISSING
    if err["type"] == "value_error" and msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return one_line(msg[0].lower() + msg[1:] if msg else msg)


def _pattern_words(pattern: str) -> tuple[str, str]:
    """What a model's regular expression means, in words."""
    words = {
        names.LAB_NAME: ("name", "lower-case letters, digits and inner hyphens"),
        model.NODE_NAME: ("name", "letters, digits and inner hyphens, starting with a letter"),
        model.NETWORK_NAME: ("name", "lower-case letters, digits and '-', starting with a letter"),
        model.IFNAME: ("name", "lower-case letters, digits, '_' and '-', starting with a letter"),
        model.MACHINE_NAME: ("name", "lower-case letters, digits and '-', starting with a letter, at most 31"),
        model.SYSCTL_KEY: ("value", "a sysctl key such as net.ipv4.ip_forward"),
        r"^[A-Za-z0-9-]+:[a-z][a-z0-9_-]*$": ("value", "'node:interface', e.g. router:eth1"),
        r"^[A-Za-z_][A-Za-z0-9_]*$": ("name", "letters, digits and '_', not starting with a digit"),
        r"^[A-Za-z0-9.-]+$": ("name", "a host name: letters, digits, '.' and '-'"),
        r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$": ("value", "a MAC address in lower case, e.g. 02:00:00:00:00:01"),
        r"^[ -~\t]*$": ("value", "one line of printable ASCII text"),
        r"^[^\x00]*$": ("value", "text without NUL characters"),
    }
    if pattern in words:
        return words[pattern]
    if "sha256" in pattern:
        return "value", "a Docker image reference, e.g. lab/host:latest"
    return "value", f"text matching {pattern}"


def _allowed_keys(parent: tuple[Any, ...], root: type[BaseModel]) -> list[str]:
    """The keys the model accepts at ``parent`` (found by walking the model's type annotations)."""
    current: Any = root
    for part in parent:
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(part) if isinstance(part, str) else None
            if info is None:
                return []
            current = _unwrap(info.annotation)
        elif typing.get_origin(current) in (dict, list):
            current = _unwrap(typing.get_args(current)[-1])
        else:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """``X | None`` → X; ``Annotated[X, ...]`` → X; a union with one model → that model."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        members = [_unwrap(a) for a in typing.get_args(annotation) if a is not type(None)]
        models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
        if models:
            return models[0]
        return members[0] if len(members) == 1 else annotation
    return annotation


def short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(text: str) -> str:
    """Messages are one line: a newline inside one would pass for a second problem."""
    return " ".join(text.split("\n")) if "\n" in text else text
