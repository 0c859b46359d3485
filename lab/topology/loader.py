"""Read a topology file: jinja2 (sandboxed) → YAML with line numbers → model → checks.

Every problem comes back as ``file:line: field: what is wrong``. The line is the
user's own line even inside a jinja2 loop (see :mod:`lab.topology.render`).

The YAML reader is hardened, since a topology may come from anyone: libyaml
makes the events (fast; C), our composer builds the tree and refuses nesting
deeper than :data:`MAX_DEPTH`, aliases that refer to themselves, and aliases
that together expand to more than :data:`MAX_ALIAS_VALUES` values (the
"billion laughs"); only plain values are allowed (no ``!!python/...`` tags).
"""

from __future__ import annotations

import copy
import os
import stat
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from lab.errors import InputError, TopologyError
from lab.topology.model import Topology
from lab.topology.problems import explain, one_line, short
from lab.topology.render import RenderError, render_with_lines
from lab.topology.shipped import topology_file
from lab.topology.sourcemap import SourceMap

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 32
MAX_ALIAS_VALUES = 100_000
TEMPLATE_SIGNS = ("{{", "{%", "{#")
# One message whichever limit trips first: ours (the composer's depth), libyaml's (its scanner's
# flow level, since libyaml 0.2.6 as bundled in PyYAML 6.0.4), or Python's recursion limit.
NESTED_TOO_DEEPLY = f"the YAML is nested too deeply (more than {MAX_DEPTH} levels)"

try:  # libyaml's parser when PyYAML was built with it; the pure-Python one otherwise
    from yaml._yaml import CParser as _Parser

    _C_PARSER = True
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml.parser import Parser as _Parser  # type: ignore[assignment]

    _C_PARSER = False

_TAG = "tag:yaml.org,2002:"
ALLOWED_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp", "seq", "map")}


def load_topology(path: str | Path, variables: dict[str, str] | None = None) -> tuple[Topology, SourceMap]:
    """Load, render, parse, validate and check a topology file; raise TopologyError with file:line.

    A bare name or a missing ``topologies/NAME.yaml`` is one that ships with lab (:func:`topology_file`).
    """
    p = topology_file(path)
    raw = _read_file(p)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problem = f"{p}:{line}: the file is not UTF-8 text ({exc.reason} at byte {exc.start})"
        raise TopologyError([problem]) from None
    return load_topology_text(text, str(p), variables)


def _read_file(p: Path, what: str = "topology file") -> bytes:
    """The file's bytes; refuses what is not a regular file (a FIFO or /dev/zero would never end)."""
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InputError(f"{p}: no such {what}",
                         "give the path of a .yaml file, e.g. topologies/book-lan.yaml"
                         if what == "topology file" else "give the path of a .yaml file") from None
    except IsADirectoryError:
        raise InputError(f"{p}: is a directory, not a {what}") from None
    except PermissionError:
        raise InputError(f"{p}: permission denied") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot open: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise InputError(f"{p}: is a directory, not a {what}")
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{p}: not a regular file", "give the path of a .yaml file")
        if info.st_size > MAX_FILE_BYTES:
            raise InputError(f"{p}: the file is larger than {MAX_FILE_BYTES // 2**20} MiB")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise InputError(f"{p}: the file is larger than {MAX_FILE_BYTES // 2**20} MiB")
        return data
    except OSError as exc:
        raise InputError(f"{p}: cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)


def load_topology_text(
    text: str, filename: str = "<topology>", variables: dict[str, str] | None = None
) -> tuple[Topology, SourceMap]:
    """The same as :func:`load_topology` for text already in memory (tests, generated labs)."""
    from lab.topology.addressing import assign_addresses
    from lab.topology.validate import check_topology

    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise TopologyError([f"{filename}:{line}: the file contains a NUL byte"])
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate: only text made in Python can hold one
        line = text[: exc.start].count("\n") + 1
        raise TopologyError([f"{filename}:{line}: the text is not valid Unicode ({exc.reason})"]) from None
    smap = SourceMap(filename)
    if any(sign in text for sign in TEMPLATE_SIGNS):
        try:
            text, smap.rendered_to_source = render_with_lines(text, variables or {})
        except RenderError as exc:
            problem = f"{filename}:{exc.line or 1}: template error: {one_line(exc.message)}"
            raise TopologyError([problem]) from None
    smap.text = text
    data, root_line = _parse_yaml(text, smap)
    if not isinstance(data, dict):
        raise TopologyError([f"{filename}:{root_line}: a topology is a mapping with keys name, networks, "
                             f"nodes, links (this file holds a {_kind(data)})"])
    try:
        topo = Topology.model_validate(data)
    except ValidationError as exc:
        raise TopologyError(explain(exc, smap, data, Topology)) from None
    check_topology(topo, smap)
    assign_addresses(topo, smap)
    return topo, smap


M = typing.TypeVar("M", bound=BaseModel)


def load_model_file(path: str | Path, root: type[M], what: str) -> tuple[M, SourceMap]:
    """Any other YAML file of lab's (a cluster file, say), read as hardened and explained as a topology is.

    No templating; every problem is ``file:line: field: what is wrong`` in a TopologyError (exit 2).
    """
    p = Path(path)
    raw = _read_file(p, what)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise TopologyError([f"{p}:{line}: the file is not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    smap = SourceMap(str(p), text=text)
    data, root_line = _parse_yaml(text, smap)
    if not isinstance(data, dict):
        raise TopologyError([f"{p}:{root_line}: a {what} is a mapping (this file holds a {_kind(data)})"])
    try:
        return root.model_validate(data), smap
    except ValidationError as exc:
        raise TopologyError(explain(exc, smap, data, root)) from None


def _kind(value: Any) -> str:
    return "list" if isinstance(value, list) else "single value"


class _YamlLimit(Exception):
    """A hardening limit, raised at a YAML mark."""

    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message


class _Loader(_Parser, Composer, Resolver):
    """libyaml's events, PyYAML's composer with limits: depth, self-reference, alias expansion."""

    def __init__(self, text: str) -> None:
        _Parser.__init__(self, text)
        Composer.__init__(self)
        Resolver.__init__(self)
        self.depth = 0
        self.open_anchors: set[str] = set()
        self.alias_values = 0
        self.sizes: dict[int, int] = {}  # id(node) → how many values it expands to

    # libyaml's parser also composes, in C and without our limits: use PyYAML's composer instead.
    get_single_node = Composer.get_single_node
    compose_document = Composer.compose_document
    check_node = Composer.check_node
    get_node = Composer.get_node

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event: Any = self.peek_event()  # an AliasEvent: it has an anchor and a start mark
            if event.anchor in self.open_anchors:
                raise _YamlLimit(event.start_mark, f"alias *{event.anchor} refers to itself (a value cannot "
                                                   "contain itself)")
            target: Any = Composer.compose_node(self, parent, index)
            self.alias_values += self.sizes[id(target)]
            if self.alias_values > MAX_ALIAS_VALUES:
                raise _YamlLimit(event.start_mark, f"aliases expand to too many values (more than "
                                                   f"{MAX_ALIAS_VALUES:,}; a 'billion laughs'?)")
            ref = copy.copy(target)  # the same value, but remembering where it was used
            ref.start_mark = event.start_mark
            self.sizes[id(ref)] = self.sizes[id(target)]
            return ref
        event = self.peek_event()  # a scalar, sequence or mapping start: never None here
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _YamlLimit(event.start_mark, NESTED_TOO_DEEPLY)
        anchor = getattr(event, "anchor", None)
        if anchor:
            self.open_anchors.add(anchor)
        try:
            node = Composer.compose_node(self, parent, index)
        finally:
            self.depth -= 1
            if anchor:
                self.open_anchors.discard(anchor)
        sizes = self.sizes
        if isinstance(node, yaml.MappingNode):
            sizes[id(node)] = 1 + sum(sizes[id(k)] + sizes[id(v)] for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            sizes[id(node)] = 1 + sum(sizes[id(item)] for item in node.value)
        else:
            sizes[id(node)] = 1
        return node


def _is_nesting_limit(exc: yaml.MarkedYAMLError) -> bool:
    """True when the YAML library refused the text for its own nesting limit, not for its syntax."""
    return "nesting depth" in str(exc.problem or "")


def _parse_yaml(text: str, smap: SourceMap) -> tuple[Any, int]:
    """Parse and construct; return the plain data and the line where it starts."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except _YamlLimit as exc:
        raise TopologyError([f"{smap.file}:{smap.source_line(exc.mark.line + 1)}: {exc.message}"]) from None
    except yaml.MarkedYAMLError as exc:
        if _is_nesting_limit(exc):  # libyaml's own limit (0.2.6+), met by its scanner before our composer
            mark = exc.problem_mark or exc.context_mark
            line = smap.source_line(mark.line + 1) if mark else 1
            raise TopologyError([f"{smap.file}:{line}: {NESTED_TOO_DEEPLY}"]) from None
        mark = exc.problem_mark or exc.context_mark
        if exc.context_mark is not None and "end of stream" in str(exc.problem):
            mark = exc.context_mark  # an unclosed quote or bracket: point where it opened
        line = smap.source_line(mark.line + 1) if mark else 1
        problem = str(exc.problem or exc)
        if exc.context and mark is exc.context_mark:
            problem = f"{problem} ({exc.context})"
        raise TopologyError([f"{smap.file}:{line}: YAML syntax error: {one_line(problem)}"]) from None
    except yaml.reader.ReaderError as exc:
        line = smap.source_line(text[: exc.position].count("\n") + 1)
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise TopologyError([f"{smap.file}:{line}: the file contains the control character {char!r}; "
                             "a topology is plain text"]) from None
    except yaml.YAMLError as exc:
        raise TopologyError([f"{smap.file}:1: YAML error: {one_line(str(exc))}"]) from None
    except RecursionError:
        raise TopologyError([f"{smap.file}:1: {NESTED_TOO_DEEPLY}"]) from None
    finally:
        loader.dispose()
    if node is None:
        raise TopologyError([f"{smap.file}:1: the file is empty"])
    try:
        return _Builder(smap).build(node, (), 0), smap.source_line(node.start_mark.line + 1)
    except RecursionError:
        raise TopologyError([f"{smap.file}:1: {NESTED_TOO_DEEPLY}"]) from None


class _Builder:
    """Build plain Python values from the YAML tree, remembering each value's line."""

    def __init__(self, smap: SourceMap) -> None:
        self.smap = smap
        self.scalars = SafeConstructor()

    def fail(self, node: yaml.Node, message: str) -> TopologyError:
        return TopologyError([f"{self.smap.file}:{self.line(node)}: {message}"])

    def line(self, node: yaml.Node) -> int:
        return self.smap.source_line(node.start_mark.line + 1)

    def build(self, node: yaml.Node, path: tuple[Any, ...], depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise self.fail(node, NESTED_TOO_DEEPLY)
        self.smap.lines.setdefault(path, self.line(node))
        if isinstance(node, yaml.MappingNode):
            self.check_tag(node)
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self.fail(key_node, "a mapping key must be a plain word")
                if key_node.tag == _TAG + "merge":
                    raise self.fail(key_node, "YAML merge keys ('<<') are not supported; write the keys out")
                key = self.scalar(key_node)
                if key in result:
                    raise self.fail(key_node, f"duplicate key {short(key)}")
                self.smap.lines[path + (key,)] = self.line(key_node)
                result[key] = self.build(value_node, path + (key,), depth + 1)
            return result
        if isinstance(node, yaml.SequenceNode):
            self.check_tag(node)
            return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        return self.scalar(node)

    def check_tag(self, node: yaml.Node) -> None:
        if node.tag not in ALLOWED_TAGS:
            raise self.fail(node, f"YAML tag {node.tag.replace(_TAG, '!!')!r} is not allowed "
                                  "(a topology holds plain values only)")

    def scalar(self, node: yaml.Node) -> Any:
        self.check_tag(node)
        try:
            return SafeConstructor.yaml_constructors[node.tag](self.scalars, node)
        except (ValueError, OverflowError, TypeError) as exc:  # 2024-13-45, an int of 5000 digits
            reason = one_line(str(exc)).split(";")[0]  # not Python's advice on sys.set_int_max_str_digits
            kind = node.tag.replace(_TAG, "")
            raise self.fail(node, f"{short(node.value)} is not a valid {kind}: {reason}") from None
        except yaml.constructor.ConstructorError as exc:
            raise self.fail(node, one_line(str(exc.problem))) from None
