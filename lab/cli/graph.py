"""The ``graph`` verb: draw a topology (a running lab's, or a file's) as SVG or PNG."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from lab import state
from lab.cli.common import out
from lab.errors import InputError, LabNotFound
from lab.topology.shipped import shipped_topology

if TYPE_CHECKING:
    from lab.topology.model import Topology

OutputOption = typer.Option(None, "--output", "-o", help="Write here (.svg or .png); without it, SVG goes to stdout "
                                                          "when piped, else to NAME.svg here.")


def _is_file_argument(target: str) -> bool:
    return target.endswith((".yaml", ".yml")) or os.sep in target or Path(target).is_file()


def machines_of(target: str) -> dict[str, str] | None:
    """Where each node of a running cluster lab runs (None for a file, or a lab on one machine)."""
    if _is_file_argument(target):
        return None
    try:
        info = state.read_lab_info(target)
    except (LabNotFound, OSError, ValueError):
        return None
    found = {n: str(s["machine"]) for n, s in (info.get("nodes") or {}).items() if s.get("machine")}
    return found or None


def load_target(target: str, variables: dict[str, str]) -> Topology:
    """A topology file, or the topology a running lab was made from (kept in its state directory)."""
    from lab.topology import load_topology, load_topology_text

    if _is_file_argument(target):
        topo, _ = load_topology(target, variables)
        return topo
    saved = state.lab_dir(target) / "topology.yaml"
    try:
        text = saved.read_text()
    except FileNotFoundError:
        shipped = shipped_topology(target)
        if shipped is not None:  # no lab of that name is up, but lab ships a topology so named
            topo, _ = load_topology(shipped, variables)
            return topo
        raise LabNotFound(f"no lab named {target!r} is up", "see: lab ls; or give a topology file") from None
    except PermissionError:
        raise InputError(f"cannot read {saved}: permission denied",
                         "run as root, or give the topology file") from None
    topo, _ = load_topology_text(text, str(saved), variables)
    return topo


def register(app: typer.Typer) -> None:
    from lab.cli.lifecycle import VarOption, parse_vars

    @app.command()
    def graph(
        target: str = typer.Argument(..., metavar="NAME|FILE", help="A running lab, or a topology file."),
        output: Path = OutputOption,
        png: bool = typer.Option(False, "--png", help="PNG instead of SVG (needs graphviz)."),
        var: list[str] = VarOption,
    ) -> None:
        """Draw a topology: nodes, networks (bridges), links, interfaces and addresses (and machines, on a cluster)."""
        from lab.report.graph import write_png, write_svg

        topo = load_target(target, parse_vars(var))
        machines = machines_of(target)
        as_png = png or (output is not None and output.suffix.lower() == ".png")
        if as_png:
            path = write_png(topo, output or Path(f"{topo.name}.png"), machines)
            out.print(f"wrote {path}")
        elif output is not None or sys.stdout.isatty():  # SVG's text on a terminal is no picture: a file
            path = write_svg(topo, output or Path(f"{topo.name}.svg"), machines)
            out.print(f"wrote {path}" + ("" if output else " (open it in a browser; piped, lab graph writes the "
                                                           "SVG to stdout)"))
        else:
            from lab.report.graph import topology_svg

            sys.stdout.write(topology_svg(topo, machines=machines) + "\n")
