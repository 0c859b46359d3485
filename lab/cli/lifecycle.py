"""Lifecycle verbs: validate, up, down, ls, inspect, exec, clean."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lab import state
from lab.cli.common import console, out, parse_assignments
from lab.errors import EnvironmentProblem, ExitCode, InputError
from lab.topology.shipped import topology_file
from lab.topology.trust import check_trusted_path

if TYPE_CHECKING:
    from lab.topology import Topology

VarOption = typer.Option([], "--var", "-v", help="Template variable NAME=VALUE for a jinja2 topology (repeatable).")
ForceOption = typer.Option(False, "--force", help="Accept a topology file in a world-writable place.")
ClusterOption = typer.Option(None, "--cluster", help="Spread the lab over this cluster file's machines "
                                                     "(default: $LAB_CLUSTER; without either, this machine).")


def cluster_from_env() -> Path | None:
    value = os.environ.get("LAB_CLUSTER")
    return Path(value) if value else None


def parse_vars(values: list[str]) -> dict[str, str]:
    return parse_assignments(values, "--var")


def check_services(topo: Topology, topology_file: Path) -> None:
    """Render the daemons' configuration (no side effects): a bad reference in ``dns:``/``proxy:``/``web:``
    is refused by ``validate`` and ``up --dry-run`` too, not only when ``up`` gets to the containers."""
    if any(n.dns or n.proxy or n.web for n in topo.nodes.values()):
        from lab.plan import make_plan
        from lab.services import plan_daemons

        plan_daemons(make_plan(topo), topo, topology_file.resolve().parent)


def lab_name_from(arg: str) -> str:
    """A lab name, or a topology file whose ``name:`` is the lab."""
    if arg.endswith((".yaml", ".yml")) or os.sep in arg:
        from lab.topology import load_topology

        topo, _ = load_topology(arg)
        return topo.name
    return arg


def validate(
    topology: Path = typer.Argument(..., help="Topology YAML file."),
    var: list[str] = VarOption,
    force: bool = ForceOption,
) -> None:
    """Check a topology file; exit 0 if it is valid, 2 with file:line: field: problem if not."""
    topology = topology_file(topology)  # a bare name: the shipped file, wherever lab runs
    if not force:
        check_trusted_path(topology)
    from lab.topology import load_topology

    topo, _ = load_topology(topology, parse_vars(var))
    check_services(topo, topology)
    n_if = sum(len(n.interfaces) for n in topo.nodes.values())
    impaired = len(topo.impairments())
    counts = [_count(len(topo.nodes), "node"), _count(len(topo.networks), "network"),
              _count(len(topo.links), "link"), _count(n_if, "interface")]
    if impaired:
        counts.append(f"{_count(impaired, 'impaired interface')}")
    out.print(f"{topology}: ok — lab {topo.name}: {', '.join(counts)}")

def up(
    topology: Path = typer.Argument(..., help="Topology YAML file."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; create nothing."),
    var: list[str] = VarOption,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress and no table."),
    force: bool = ForceOption,
    cluster: Path | None = ClusterOption,
    spread: bool = typer.Option(False, "--spread", help="On a cluster: spread the nodes over the machines."),
    emulator: str = typer.Option(None, "--emulator", help="What applies the impair: entries: netem, lab (lab's "
                                                          "own emulator) or auto (default: $LAB_EMULATOR, "
                                                          "else auto: netem where the kernel has it)."),
) -> None:
    """Build the lab the topology describes (rolled back on any failure)."""
    from lab.doctor import needs_for, preflight
    from lab.plan import make_plan

    topology = topology_file(topology)  # a bare name: the shipped file, which lab.json then names
    if not force:
        check_trusted_path(topology)
    from lab.topology import load_topology

    topo, smap = load_topology(topology, parse_vars(var))
    check_services(topo, topology)
    cluster_file = cluster or cluster_from_env()
    if dry_run:
        if cluster_file is not None:  # the pins, against the file alone: no engine is asked
            from lab.cluster.deploy import check_pins
            from lab.cluster.model import load_cluster

            check_pins(topo, smap, load_cluster(cluster_file))
            console.print(f"[dim]the pins fit {cluster_file}. Below is the one-machine plan; on the cluster "
                          "each node is a Swarm task, which the engine places at up unless it is pinned[/]")
        for line in make_plan(topo).describe():
            out.print(line, markup=False)
        return
    text = smap.text  # as rendered: `lab graph NAME` and experiments read back what was built
    if cluster_file is None:
        if spread:
            raise InputError("--spread goes with --cluster FILE (or LAB_CLUSTER)")
        pinned = [n for n, node in topo.nodes.items() if node.machine]
        if pinned and not quiet:
            console.print(f"[yellow]note:[/] machine: of {', '.join(pinned[:3])} applies on a cluster only "
                          "(lab up --cluster FILE); on this machine every node is here")
        preflight(needs_for(topo))

    def build(progress: Any = None) -> Any:
        from lab import deploy

        kwargs = {"progress": progress} if progress else {}
        if cluster_file is not None:  # where the lab runs, decided here once: the cluster's machines
            from lab.cluster.deploy import ClusterMachines
            from lab.cluster.model import load_cluster

            kwargs["where"] = ClusterMachines(load_cluster(cluster_file), smap, spread)
        return deploy.up(topo, text, str(topology.resolve()), emulator=emulator, **kwargs)

    if quiet:
        plan = build()
    else:
        with _progress() as bar:
            task = bar.add_task(f"lab {topo.name}", total=1)

            def report(step: str, done: int, total: int) -> None:
                bar.update(task, description=f"{topo.name}: {step}", completed=done, total=max(total, 1))

            plan = build(report)
    if not quiet:
        placed = state.read_lab_info(topo.name)["nodes"]  # on a cluster: where the engine put each node
        out.print(_nodes_table(topo.name, {n: {**vars(s), "machine": placed[n].get("machine")}
                                           for n, s in plan.nodes.items()}))
        out.print(f"lab [bold]{topo.name}[/] is up — try: lab exec {next(iter(topo.nodes))} -- ip -br addr")

def down(
    lab: str = typer.Argument(..., help="Lab name, or the topology file it was made from."),
) -> None:
    """Remove the lab: everything its journal names, nothing else. Safe to repeat."""
    name = lab_name_from(lab)
    from lab import deploy

    report = deploy.down(name)
    if not report.removed:
        out.print(f"lab {name}: nothing to remove")
    else:
        out.print(f"lab {name}: removed {len(report.removed)} objects")
    for item in report.skipped:
        console.print(f"skipped: {item}")
    if state.Journal(name).exists():  # a cluster lab with a machine that did not answer: not finished
        raise EnvironmentProblem(f"lab {name} is not removed everywhere yet (see skipped)",
                                 f"run lab down {name} again once every machine answers")

def clean(cluster: Path | None = typer.Option(None, "--cluster", help="Also sweep this cluster's machines "
                                                                    "(default: $LAB_CLUSTER).")) -> None:
    """Take down every lab that has a journal, and remove containers labelled as a vanished lab's."""
    from lab import deploy

    reports = deploy.clean()
    cluster_file = cluster or cluster_from_env()
    if cluster_file is not None:
        from lab.cluster.model import load_cluster
        from lab.cluster.teardown import clean_orphans

        orphans = clean_orphans(load_cluster(cluster_file))
        if orphans.removed or orphans.skipped:
            reports.append(orphans)
    if not reports:
        out.print("nothing to clean")
    for r in reports:
        out.print(f"lab {r.lab}: removed {len(r.removed)} objects")
        for item in r.skipped:
            console.print(f"skipped: {item}")

def list_labs(as_json: bool = typer.Option(False, "--json", help="JSON output.")) -> None:
    """The labs that are up."""
    rows: list[dict[str, Any]] = []
    for name in state.labs_with_state():
        try:
            info = state.read_lab_info(name)
            cluster = (info.get("cluster") or {}).get("file")
            machines = sorted({str(n.get("machine")) for n in info["nodes"].values()}) if cluster else None
            rows.append({"name": name, "nodes": len(info["nodes"]), "file": info.get("file"), "state": "up",
                         "cluster": cluster, "machines": machines})
        except InputError:
            rows.append({"name": name, "nodes": None, "file": None, "state": "interrupted (run lab down)",
                         "cluster": None, "machines": None})
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table("lab", "nodes", "state", "where", "topology")
    for row in rows:
        where = f"{', '.join(row['machines'])} of {row['cluster']}" if row["cluster"] else "this machine"
        table.add_row(str(row["name"]), str(row["nodes"] or "-"), str(row["state"]), where if row["nodes"] else "-",
                      str(row["file"] or "-"))
    out.print(table if rows else "no lab is up")

def inspect(
    lab: str = typer.Argument(None, help="Lab name (optional when exactly one is up)."),
    as_json: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """Nodes, interfaces, addresses, routes and faults of a running lab, read from the kernel."""
    from lab.inspection import inspect_lab

    data = inspect_lab(state.resolve_lab(lab))
    if as_json:
        out.print_json(json.dumps(data))
        if data["problems"]:
            raise typer.Exit(ExitCode.ENVIRONMENT)
        return
    on_cluster = "cluster" in data
    columns = ["node", "kind", *(["machine"] if on_cluster else []), "interface", "state", "address", "mac",
               "peer / network"]
    table = Table(*columns)
    for node, info in data["nodes"].items():
        where = [info.get("machine") or "?"] if on_cluster else []
        if not info["interfaces"] and info.get("state"):
            table.add_row(node, info["kind"], *where, "-", f"[bold red]{info['state']}[/]", "", "", "")
        for ifname, iface in info["interfaces"].items():
            addresses = ", ".join(iface.get("addresses", []))
            table.add_row(node, info["kind"], *where, ifname, iface.get("state", "?"), addresses,
                          iface.get("mac", ""), iface.get("peer") or iface.get("network") or "")
    out.print(table)
    routes = Table("node", "route")
    for node, info in data["nodes"].items():
        for r in info.get("routes", []):
            routes.add_row(node, r)
    out.print(routes)
    if data.get("faults"):
        faults = Table("fault", "where", "what")
        for f in data["faults"]:
            faults.add_row(f["id"], f["where"], f["what"])
        out.print(faults)
    for difference in data["differences"]:
        console.print(f"[yellow]differs from the topology:[/] {difference}")
    for problem in data["problems"]:
        console.print(f"[bold red]problem:[/] {problem}")
    if data["problems"]:
        raise typer.Exit(ExitCode.ENVIRONMENT)

def exec_in_node(
    node: str = typer.Argument(..., help="Node name."),
    command: list[str] = typer.Argument(..., help="The command, after --."),
    lab: str = typer.Option(None, "--lab", help="Lab name (optional when exactly one is up)."),
) -> None:
    """Run a command inside a node; lab's exit code is the command's."""
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise InputError("no command given", "write it after --, e.g. lab exec NODE -- ip addr")
    info = state.read_lab_info(state.resolve_lab(lab))
    from lab.nodes import node_from_info

    handle = node_from_info(info, node)
    argv = handle.command(command)
    try:
        rc = subprocess.run(argv).returncode
    except FileNotFoundError:
        raise EnvironmentProblem(f"{argv[0]} is not installed", "run scripts/setup.sh") from None
    raise typer.Exit(rc)


def register(app: typer.Typer) -> None:
    """The lifecycle verbs; each is a plain function above, which a test or another program can call."""
    app.command()(validate)
    app.command()(up)
    app.command()(down)
    app.command()(clean)
    app.command("ls")(list_labs)
    app.command()(inspect)
    app.command("exec", context_settings={"allow_interspersed_args": False})(exec_in_node)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeElapsedColumn(), console=console, transient=True)


def _nodes_table(lab: str, nodes: dict[str, dict[str, Any]]) -> Table:
    on_cluster = any(spec.get("machine") for spec in nodes.values())
    table = Table("node", "kind", *(["machine"] if on_cluster else []), "interface", "address", "network / peer",
                  title=f"lab {lab}")
    for name, spec in nodes.items():
        first = True
        where = [str(spec.get("machine") or "")] if on_cluster else []
        for ifname, iface in spec["interfaces"].items():
            shown = where if first else [""] * len(where)
            table.add_row(name if first else "", spec["kind"] if first else "", *shown,
                          ifname, iface.get("address") or "-", iface.get("network") or iface.get("peer") or "")
            first = False
        if first:
            table.add_row(name, spec["kind"], *where, "-", "-", "")
    return table


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")
