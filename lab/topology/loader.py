"""Read a topology file: jinja2 (sandboxed) → YAML with line numbers → model → checks.

Line numbers survive templating: before rendering, every template line gets an
invisible marker naming its line; after rendering, each output line is mapped
back to the template line that produced it, and the markers are removed. So an
error inside a ``{% for %}`` loop points at the loop's line in the user's file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import ValidationError

from lab.errors import InputError, TopologyError
from lab.topology.model import Topology

MAX_FILE_BYTES = 16 * 1024 * 1024
MARK = "\u27e6L{}\u27e7"
MARK_RE = re.compile("\u27e6L(\\d+)\u27e7")
TEMPLATE_SIGNS = ("{{", "{%", "{#")


@dataclass
class SourceMap:
    """Where each value of the topology came from: a path of keys → a line in the user's file."""

    file: str
    lines: dict[tuple[Any, ...], int] = field(default_factory=dict)
    rendered_to_source: list[int] | None = None

    def source_line(self, rendered_line: int) -> int:
        if self.rendered_to_source and 0 < rendered_line <= len(self.rendered_to_source):
            return self.rendered_to_source[rendered_line - 1]
        return rendered_line

    def line_of(self, path: tuple[Any, ...]) -> int:
        """The line of the longest known prefix of ``path`` (a missing key points at its parent)."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return 1

    def where(self, path: tuple[Any, ...]) -> str:
        return f"{self.file}:{self.line_of(path)}"


def load_topology(path: str | Path, variables: dict[str, str] | None = None) -> tuple[Topology, SourceMap]:
    """Load, render, parse, validate and check a topology file; raise TopologyError with file:line."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_FILE_BYTES:
            raise InputError(f"{p}: file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
        raw = p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{p}: no such topology file", "give the path of a .yaml file, e.g. topologies/book-lan.yaml") from None
    except IsADirectoryError:
        raise InputError(f"{p}: is a directory, not a topology file") from None
    except PermissionError:
        raise InputError(f"{p}: permission denied") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TopologyError([f"{p}:1: the file is not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    return load_topology_text(text, str(p), variables)


def load_topology_text(
    text: str, filename: str = "<topology>", variables: dict[str, str] | None = None
) -> tuple[Topology, SourceMap]:
    """The same as :func:`load_topology` for text already in memory (tests, generated labs)."""
    from lab.topology.addressing import assign_addresses
    from lab.topology.validate import check_topology

    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise TopologyError([f"{filename}:{line}: the file contains a NUL byte"])
    smap = SourceMap(filename)
    if any(sign in text for sign in TEMPLATE_SIGNS):
        text, smap.rendered_to_source = _render(text, filename, variables or {})
    data = _parse_yaml(text, smap)
    if not isinstance(data, dict):
        raise TopologyError([f"{filename}:1: a topology is a mapping with keys name, networks, nodes, links"])
    try:
        topo = Topology.model_validate(data)
    except ValidationError as exc:
        raise TopologyError(_explain(exc, smap)) from None
    check_topology(topo, smap)
    assign_addresses(topo, smap)
    return topo, smap


def _render(text: str, filename: str, variables: dict[str, str]) -> tuple[str, list[int]]:
    env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, trim_blocks=True)
    marked = _mark_lines(text)
    try:
        rendered = env.from_string(marked).render(**variables)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None) or _template_line_from_traceback(exc) or 1
        raise TopologyError([f"{filename}:{line}: template error: {exc.message or exc}"]) from None
    except RecursionError:
        raise TopologyError([f"{filename}:1: template error: recursion too deep"]) from None
    except (ArithmeticError, ValueError, TypeError, OverflowError, MemoryError) as exc:
        line = _template_line_from_traceback(exc) or 1
        raise TopologyError([f"{filename}:{line}: template error: {exc}"]) from None
    out_lines: list[str] = []
    sources: list[int] = []
    last = 1
    for raw_line in rendered.split("\n"):
        found = MARK_RE.search(raw_line)
        if found:
            last = int(found.group(1))
        sources.append(last)
        out_lines.append(MARK_RE.sub("", raw_line))
    return "\n".join(out_lines), sources


def _mark_lines(text: str) -> str:
    """Append a line marker to each template line that does not end inside a jinja tag."""
    out = []
    depth_closer: str | None = None
    for number, line in enumerate(text.split("\n"), start=1):
        i = 0
        while i < len(line):
            if depth_closer is None:
                for opener, closer in (("{{", "}}"), ("{%", "%}"), ("{#", "#}")):
                    if line.startswith(opener, i):
                        depth_closer = closer
                        i += 1
                        break
            elif line.startswith(depth_closer, i):
                depth_closer = None
                i += 1
            i += 1
        out.append(line if depth_closer else line + MARK.format(number))
    return "\n".join(out)


def _template_line_from_traceback(exc: BaseException) -> int | None:
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _parse_yaml(text: str, smap: SourceMap) -> Any:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = smap.source_line(mark.line + 1) if mark else 1
        raise TopologyError([f"{smap.file}:{line}: YAML syntax error: {exc.problem or exc}"]) from None
    except yaml.YAMLError as exc:
        raise TopologyError([f"{smap.file}:1: YAML error: {exc}"]) from None
    except RecursionError:
        raise TopologyError([f"{smap.file}:1: the YAML is nested too deeply"]) from None
    if node is None:
        raise TopologyError([f"{smap.file}:1: the file is empty"])
    try:
        return _construct(node, (), smap)
    except RecursionError:
        raise TopologyError([f"{smap.file}:1: the YAML is nested too deeply"]) from None


def _construct(node: yaml.Node, path: tuple[Any, ...], smap: SourceMap) -> Any:
    """Build plain Python values from a YAML node tree, remembering each value's line."""
    line = smap.source_line(node.start_mark.line + 1)
    smap.lines.setdefault(path, line)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise TopologyError([f"{smap.file}:{line}: a mapping key must be a plain word"])
            key = yaml.SafeLoader(" ").construct_scalar(key_node)
            key_line = smap.source_line(key_node.start_mark.line + 1)
            if key == "<<":
                raise TopologyError([f"{smap.file}:{key_line}: YAML merge keys ('<<') are not supported"])
            if key in result:
                raise TopologyError([f"{smap.file}:{key_line}: duplicate key {key!r}"])
            smap.lines[path + (key,)] = key_line
            result[key] = _construct(value_node, path + (key,), smap)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, path + (i,), smap) for i, item in enumerate(node.value)]
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as exc:
        raise TopologyError([f"{smap.file}:{line}: {exc.problem}"]) from None


def _explain(exc: ValidationError, smap: SourceMap) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        field_path = ".".join(str(p) for p in loc if not _is_internal(p))
        if err["type"] == "extra_forbidden":
            parent = loc[:-1]
            allowed = _allowed_keys(parent)
            hint = f"; expected one of: {', '.join(allowed)}" if allowed else ""
            problems.append(f"{smap.where(loc)}: {field_path}: unknown key {loc[-1]!r}{hint}")
            continue
        value = err.get("input")
        shown = "" if isinstance(value, dict | list) else f" (got {_short(value)})"
        problems.append(f"{smap.where(_source_path(loc))}: {field_path}: {_message(err)}{shown}")
    return problems


def _is_internal(part: Any) -> bool:
    return isinstance(part, str) and (part in {"a", "b"} or "[" in part or part.startswith("function-"))


def _source_path(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))


def _message(err: Any) -> str:
    msg = str(err["msg"])
    if err["type"] == "string_pattern_mismatch":
        pattern = err.get("ctx", {}).get("pattern", "")
        return f"not a valid name (allowed: {_pattern_words(pattern)})"
    if err["type"] == "missing":
        return "required key is missing"
    return msg[0].lower() + msg[1:] if msg else msg


def _pattern_words(pattern: str) -> str:
    if "A-Za-z0-9-]+:" in pattern:
        return "'node:interface'"
    if pattern.startswith("^[a-z0-9]("):
        return "lower-case letters, digits and inner hyphens"
    if pattern.startswith("^[A-Za-z]("):
        return "letters, digits and inner hyphens, starting with a letter"
    if pattern.startswith("^[a-z][a-z0-9_-]"):
        return "lower-case letters, digits, '_' and '-', starting with a letter"
    return f"must match {pattern}"


def _allowed_keys(parent: tuple[Any, ...]) -> list[str]:
    from lab.topology import model

    names = [p for p in parent if isinstance(p, str)]
    cls: type[Any] = model.Topology
    if names[:1] == ["networks"]:
        cls = model.Network
    elif names[:1] == ["nodes"]:
        cls = model.Node
        if "interfaces" in names:
            cls = model.Interface
        elif "routes" in names:
            cls = model.Route
    return sorted(cls.model_fields)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
