"""Experiment verbs: ``lab experiments`` (the catalogue) and ``lab run`` (one, several, or --all)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from lab import state
from lab.cli.common import console, out, parse_assignments
from lab.errors import ExitCode, InputError

if TYPE_CHECKING:
    from lab.experiments.engine import Experiment


def running_lab_of(exp: Experiment, overrides: dict[str, str] | None = None) -> str | None:
    """A lab that is up from the same topology file as the experiment's, to reuse instead of building one."""
    wanted = exp.topology_path(exp.parameters(overrides)).resolve()
    for name in state.labs_up():
        try:
            file = state.read_lab_info(name).get("file")
        except InputError:
            continue
        if file and Path(file).resolve() == wanted:
            return name
    return None


def print_catalogue(path: list[Path], as_json: bool) -> None:
    """``lab experiments`` (and ``lab run --list``): the catalogue as a table, or as JSON."""
    from lab.experiments.engine import discover
    from lab.servers.contracts import CONTRACTS

    catalogue = discover(path)
    if as_json:
        out.print_json(json.dumps([
            {"id": e.id, "title": e.title, "section": e.section, "topology": e.topology,
             **({"topology6": e.topology6} if e.topology6 else {}), "parameters": e.params,
             "parameter_types": e.parameter_types(), "one_machine": e.one_machine,
             "programs": [CONTRACTS[name].to_dict() for name in e.programs]}
            for e in catalogue.values()]))
        return
    table = Table("id", "section", "topology", "what it shows", "parameters")
    for e in catalogue.values():
        params = " ".join(f"{k}={v}" for k, v in e.params.items())
        table.add_row(e.id, e.section, e.topology.removesuffix(".yaml"), e.title, params)
    out.print(table)


def cluster_runnable(chosen: list[Experiment], all_: bool) -> list[Experiment]:
    """The experiments a cluster can run. Those that trace a program with this machine's strace run on one
    machine only for now: named and refused, or with --all left out with a line that says so."""
    local = [e for e in chosen if e.one_machine]
    if local and not all_:
        raise InputError(f"{local[0].id} traces system calls with this machine's strace in the node's namespace: "
                         "it runs on one machine only, not over a cluster (yet)", "run it without --cluster")
    if local:
        console.print(f"[yellow]left out over the cluster: {len(local)} experiments that trace system calls with "
                      f"this machine's strace (one machine only, for now): {', '.join(e.id for e in local)}[/]")
    return [e for e in chosen if not e.one_machine]


def experiments(
    path: list[Path] = typer.Option([], "--path", help="Also load experiments from *.py in this directory."),
    as_json: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """The catalogue: id, book section, topology, parameters, one line each."""
    print_catalogue(path, as_json)

def run(
    ids: list[str] = typer.Argument(None, help="Experiment ids (see: lab experiments)."),
    all_: bool = typer.Option(False, "--all", help="Run the whole catalogue."),
    list_: bool = typer.Option(False, "--list", help="List the catalogue and run nothing (as: lab experiments)."),
    param: list[str] = typer.Option([], "--param", "-p", help="Parameter NAME=VALUE (repeatable)."),
    keep: bool = typer.Option(False, "--keep", help="Leave the lab up afterwards to poke at."),
    lab: str = typer.Option(None, "--lab", help="Run on this running lab instead of building one."),
    fresh: bool = typer.Option(False, "--fresh", help="Always build a new lab, even if one of the "
                               "experiment's topology is up."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, max=16, help="With several experiments: N at once."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON report on stdout."),
    json_file: Path = typer.Option(None, "--json-file", help="Write the JSON report to this file."),
    out_dir: Path = typer.Option(Path("runs"), "--out", help="Directory for run reports and pcaps."),
    path: list[Path] = typer.Option([], "--path", help="Also load experiments from *.py in this directory."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the verdict lines."),
    cluster: Path = typer.Option(None, "--cluster", help="Build each experiment's lab over this cluster "
                                                        "file's machines (default: $LAB_CLUSTER)."),
    spread: bool = typer.Option(False, "--spread", help="On a cluster: each lab's nodes on different machines "
                                                       "wherever the engine can."),
    use: list[str] = typer.Option([], "--use", metavar="PROGRAM=PATH",
                                  help="Run your own program (an executable, a script, or NAME.c/NAME.cpp, compiled) "
                                       "wherever the experiment runs PROGRAM, sandboxed (repeatable; see "
                                       "docs/YOUR_PROGRAM.md)."),
) -> None:
    """Run experiments: build the lab, run the steps, capture, decide, report. Exit 0 only if all held."""
    from lab.experiments.engine import discover, find
    from lab.net.netns import require_root
    from lab.report import jsonreport

    if list_:
        if ids or all_:
            raise InputError("--list runs nothing: give it without experiment ids or --all")
        print_catalogue(path, as_json)
        return
    if all_ and ids:
        raise InputError("give experiment ids or --all, not both")
    if not all_ and not ids:
        raise InputError("which experiment?", "name one (see: lab experiments) or use --all")
    overrides = parse_assignments(param, "-p")
    uses = {name: Path(value).expanduser().resolve() for name, value in parse_assignments(use, "--use").items()}
    from lab.cli.lifecycle import cluster_from_env

    cluster_file = cluster or cluster_from_env()
    on_cluster = None
    if cluster_file is not None:
        from lab.cluster.model import load_cluster

        on_cluster = load_cluster(cluster_file)  # bad input is refused before anything runs
    elif spread:
        raise InputError("--spread goes with --cluster FILE (or LAB_CLUSTER)")
    require_root()
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    if all_:
        chosen = list(discover(path).values())
    else:
        chosen = [find(i, path) for i in ids]
    if on_cluster is not None:
        chosen = cluster_runnable(chosen, all_)
    if len(chosen) == 1 and not all_:
        items = [_run_single(chosen[0], overrides, out_dir, keep=keep, lab=lab, fresh=fresh, quiet=quiet,
                             as_json=as_json, on_cluster=on_cluster, spread=spread, uses=uses)]
    else:
        if lab or keep:
            raise InputError("--lab and --keep go with a single experiment")
        cluster_args = (["--cluster", str(cluster_file.resolve())] + (["--spread"] if spread else [])
                        if cluster_file is not None else [])
        items = _run_several(chosen, overrides, out_dir, jobs=jobs, path=path, as_json=as_json,
                             cluster_args=cluster_args, uses=uses)
    document = jsonreport.document(items)
    if json_file:
        json_file.write_text(json.dumps(document, indent=2))
    if as_json:
        out.print_json(json.dumps(document))
    failed = [i for i in items if i["verdict"] != "pass"]
    raise typer.Exit(ExitCode.FAILED if failed else ExitCode.OK)


def _run_single(exp: Experiment, overrides: dict[str, str], out_dir: Path, *, keep: bool, lab: str | None,
                fresh: bool, quiet: bool, as_json: bool, on_cluster: Any, spread: bool,
                uses: dict[str, Path]) -> dict[str, Any]:
    """One experiment in this process, on a running lab of its topology unless ``fresh``; its JSON item."""
    from lab.experiments.runner import run_one
    from lab.report import jsonreport, text

    progress = (lambda msg: None) if quiet else (lambda msg: console.print(f"[dim]{exp.id}: {msg}[/]"))
    if lab is None and not fresh and on_cluster is None:
        lab = running_lab_of(exp, overrides)
        if lab and not quiet:
            console.print(f"[dim]{exp.id}: reusing the running lab {lab} (--fresh builds a new one)[/]")
    result = run_one(exp, overrides, out_dir, keep=keep, lab=lab, progress=progress,
                     cluster=on_cluster, spread=spread, uses=uses)
    if quiet and not as_json:
        out.print(f"{result.verdict.upper():5} {result.id} {result.duration_s:.1f} s"
                  + (f"  {result.error}" if result.error else ""))
    elif not as_json:
        text.print_run(result, out)
    return jsonreport.experiment_json(result)


def _run_several(chosen: list[Experiment], overrides: dict[str, str], out_dir: Path, *, jobs: int, path: list[Path],
                 as_json: bool, cluster_args: list[str], uses: dict[str, Path]) -> list[dict[str, Any]]:
    """Several experiments, each a child ``lab run`` in a lab of its own, ``jobs`` at once; a line as each
    ends, then the summary and the index page."""
    from lab.experiments.runner import run_many
    from lab.report import text
    from lab.report.html import render_index

    unknown = set(overrides) - {k for e in chosen for k in e.params}
    if unknown:
        raise InputError(f"no experiment here has parameter {', '.join(sorted(unknown))}")
    unused = set(uses) - {name for e in chosen for name in e.programs}
    if unused:
        raise InputError(f"--use {sorted(unused)[0]}: none of these experiments runs it")
    console.print(f"running {len(chosen)} experiments, {jobs} at a time; reports under {out_dir}")

    def done(item: dict[str, object]) -> None:
        if not as_json:
            colour = {"pass": "green", "fail": "red"}.get(str(item["verdict"]), "yellow")
            out.print(f"[{colour}]{str(item['verdict']).upper():5}[/] {item['id']:28} "
                      f"{float(str(item['duration_s'])):7.1f} s  {item.get('error') or ''}")

    items = run_many(chosen, overrides, out_dir, jobs, path, done, uses=uses, cluster_args=cluster_args)
    index = out_dir / "index.html"
    render_index(items, index)
    if not as_json:
        text.print_summary(items, out)
        out.print(f"report: {index}")
    return items


def register(app: typer.Typer) -> None:
    """The experiment verbs; each is a plain function above, which a test or another program can call."""
    app.command()(experiments)
    app.command()(run)
