"""Where each value of a topology came from: the record every check uses to say file:line.

A leaf module, so the loader and the checks it runs (addressing, validate, problems) all
take it from here instead of from each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SourceMap:
    """Where each value of the topology came from: a path of keys → a line in the user's file."""

    file: str
    lines: dict[tuple[Any, ...], int] = field(default_factory=dict)
    rendered_to_source: list[int] | None = None
    text: str = ""  # the YAML as parsed (after templating): what a lab saves as its topology

    def source_line(self, rendered_line: int) -> int:
        if self.rendered_to_source:
            index = min(max(rendered_line, 1), len(self.rendered_to_source)) - 1
            return self.rendered_to_source[index]
        return rendered_line

    def line_of(self, path: tuple[Any, ...]) -> int:
        """The line of the longest known prefix of ``path`` (a missing key points at its parent)."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return 1

    def where(self, path: tuple[Any, ...]) -> str:
        return f"{self.file}:{self.line_of(path)}"
