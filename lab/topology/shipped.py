"""The topologies that ship inside the package (lab/topologies/), found by name from any directory.

A source tree has them under ``topologies/`` (a link to lab/topologies); a wheel installed
elsewhere has them only inside the package, so ``lab up book-web`` (or the README's
``topologies/book-web.yaml``, run from another directory) finds the shipped file.
"""

from __future__ import annotations

from pathlib import Path

SHIPPED = Path(__file__).resolve().parent.parent / "topologies"  # the book's topologies, inside the package


def shipped_topology(name: str) -> Path | None:
    """The topology of that name that ships with lab (``book-web`` or ``book-web.yaml``), if there is one."""
    if not name or "/" in name or name.startswith("."):
        return None
    found = SHIPPED / (name if name.endswith((".yaml", ".yml")) else f"{name}.yaml")
    return found if found.is_file() else None


def topology_file(path: str | Path) -> Path:
    """The file ``path`` names; else, for a bare name (``book-web``) or a ``topologies/NAME.yaml`` that
    is not here (lab installed as a package, run from another directory), the shipped one of that name."""
    p = Path(path)
    if p.exists():
        return p
    if len(p.parts) == 1 or (len(p.parts) == 2 and p.parts[0] == "topologies"):
        return shipped_topology(p.name) or p
    return p
