"""Run experiments: a lab for each (or a running one), the steps, the undo, the verdict, the reports.

``run_one`` is the whole life of one experiment in this process. ``run_many``
runs a catalogue: with ``jobs > 1`` each experiment runs in its own ``lab run``
child process (its own lab, its own namespaces), N at a time, and the results
are read back from the JSON each child writes.
"""

from __future__ import annotations

import json
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

from lab import deploy, state
from lab.cluster.model import Cluster
from lab.errors import InputError, LabError
from lab.experiments.context import Run
from lab.experiments.engine import Experiment
from lab.experiments.yours import sandbox_lines
from lab.net import faults
from lab.report.graph import hosts_of, topology_svg
from lab.report.model import RunResult, overall_verdict
from lab.sandbox.program import UserProgram, prepare
from lab.topology import Topology, load_topology


def lab_name_for(exp: Experiment) -> str:
    """A short unique lab name: the id's initials and a random suffix (≤ 20 characters)."""
    initials = "".join(word[0] for word in exp.id.split("-"))[:8]
    return f"{initials}-{secrets.token_hex(3)}"


def _note_active_faults(ctx: Run, lab: str, progress: Callable[[str], None]) -> None:
    """A reused lab may carry faults (set on purpose, or left by a run that was killed): say so in the report."""
    active = faults.active(state.Journal(lab))
    if active:
        listed = ", ".join(f"{e['what']} on {e['where']}" for e in active)
        text = (f"lab {lab} had {len(active)} fault(s) active before this run, left in place: {listed} "
                f"(lab fault clear --lab {lab} removes them)")
        ctx.note(text)
        progress(text)


def run_one(exp: Experiment, overrides: dict[str, str], out_dir: Path, keep: bool = False,
            lab: str | None = None, progress: Callable[[str], None] = lambda _: None,
            cluster: Cluster | None = None, spread: bool = False, uses: dict[str, Path] | None = None) -> RunResult:
    """Run one experiment; never raises for the experiment's own failures (they become its verdict).

    With ``cluster``, its lab is built over the cluster's machines (``spread``: on different ones).
    ``uses`` maps a program the experiment runs to the reader's own (``--use``), which runs instead, sandboxed.
    """
    params = exp.parameters(overrides)
    if exp.needs:
        from lab.doctor import preflight

        preflight(set(exp.needs))  # a tool the experiment reads (strace): refused in the doctor's words
    if cluster is not None and exp.one_machine:
        raise InputError(f"{exp.id} traces system calls with this machine's strace: one machine only, not over a "
                         "cluster (yet)", "run it without --cluster")
    if uses and cluster is not None:
        raise InputError("--use runs a reader's program in a namespace node of one machine; not on a cluster yet")
    with user_programs(exp, uses or {}) as programs:
        return _run_one(exp, params, overrides, out_dir, keep, lab, progress, cluster, spread, programs)


@contextmanager
def user_programs(exp: Experiment, uses: dict[str, Path]) -> Iterator[dict[str, UserProgram]]:
    """The reader's programs, checked against what the experiment runs and made ready (compiled) before any
    lab exists: a program that does not compile is bad input, and nothing is built. Removed afterwards."""
    unknown = sorted(set(uses) - set(exp.programs))
    if unknown:
        runs = ", ".join(exp.programs) or "none a reader can replace"
        raise InputError(f"--use {unknown[0]}: {exp.id} does not run {unknown[0]}", f"the programs it runs: {runs}")
    if not uses:
        yield {}
        return
    workdir = Path(tempfile.mkdtemp(prefix="lab-use-"))
    try:
        yield {name: prepare(name, path, workdir) for name, path in uses.items()}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run_one(exp: Experiment, params: SimpleNamespace, overrides: dict[str, str], out_dir: Path, keep: bool,
             lab: str | None, progress: Callable[[str], None], cluster: Cluster | None, spread: bool,
             programs: dict[str, UserProgram]) -> RunResult:
    run_dir = out_dir / f"{exp.id}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    topo, smap = load_topology(exp.topology_path(params))
    reused = lab is not None
    error: str | None = None
    ctx: Run | None = None
    machines: dict[str, str] = {}
    try:
        if lab is None:
            topo.name = lab_name_for(exp)
            progress(f"building lab {topo.name} from {exp.topology_for(params)}"
                     + (" over the cluster" if cluster else ""))
            if cluster is None:
                deploy.up(topo, smap.text, str(exp.topology_path(params)))
            else:
                from lab.cluster.deploy import ClusterMachines

                deploy.up(topo, smap.text, str(exp.topology_path(params)), where=ClusterMachines(cluster, smap, spread))
            lab = topo.name
        lab_info = state.read_lab_info(lab)
        machines = {n: str(s["machine"]) for n, s in lab_info["nodes"].items() if s.get("machine")}
        ctx = Run(lab_info, params, run_dir)
        ctx.uses = programs
        for name, use in programs.items():
            progress(f"{name}: yours ({use.describe()}), in the sandbox")
            ctx.note(f"{name}: yours, {use.describe()}, run in lab's sandbox (its own user, PID and mount "
                     "namespaces, the machine read-only, limits; see docs/YOUR_PROGRAM.md)")
        if reused:
            _note_active_faults(ctx, lab, progress)
        progress("running steps")
        try:
            error = execute(exp, ctx, run_dir / "traceback.txt")
        finally:
            problems = ctx.cleanup()
            if problems:
                ctx.note("cleanup: " + "; ".join(problems))
            for step in ctx.steps:  # what the sandbox refused or ended, said where a grader sees it
                said = sandbox_lines(ctx.sandbox_tag, step.stderr)
                if said:
                    ctx.note(f"{step.title.split('  [yours')[0]}: {'; '.join(said)}")
    finally:
        if lab is not None and not reused and not keep:
            progress(f"taking lab {lab} down")
            deploy.down(lab)
    verdicts = ctx.verdicts if ctx else []
    if error is None and not verdicts:
        error = "the experiment checked nothing (no expectation was recorded)"
    verdict = overall_verdict(verdicts, error)
    if ctx is not None:
        from lab.experiments.replay import save

        save(ctx, exp.id, overrides, verdict, error)  # what lab check RUN_DIR decides again from
    result = RunResult(
        id=exp.id, title=exp.title, section=exp.section, topology=lab or topo.name,
        parameters=vars(params), verdict=verdict, duration_s=round(time.time() - started, 3), started=started,
        expectations=verdicts, steps=ctx.steps if ctx else [], packets=ctx.packets if ctx else [],
        pcaps={k: str(v) for k, v in (ctx.pcaps if ctx else {}).items()}, book_listing=exp.book,
        modern_note=exp.modern + ("\n" + "\n".join(ctx.notes) if ctx and ctx.notes else ""),
        notes=list(ctx.notes) if ctx else [],
        error=error, topology_svg=_svg(topo, machines), run_dir=run_dir, html_path=None, hosts=hosts_of(topo),
        machines=machines, processes=ctx.processes if ctx else [],
    )
    write_reports(result)
    return result


def execute(exp: Experiment, ctx: Run, traceback_file: Path | None) -> str | None:
    """Call the steps; the error that stopped them (None: they ran through), as a run's verdict reports it.

    Bad input (an ``InputError``: a parameter the experiment cannot work with) is raised: no verdict.
    """
    try:
        exp.run_steps(ctx)
    except InputError:
        raise
    except LabError as exc:
        return str(exc)
    except Exception as exc:
        if traceback_file is not None:
            traceback_file.write_text(traceback.format_exc())
        return f"{type(exc).__name__}: {exc}"
    return None


def _svg(topo: Topology, machines: dict[str, str]) -> str | None:
    """The topology drawing for the report (where each node ran, on a cluster); a drawing that fails must not
    cost the run its verdict."""
    try:
        return topology_svg(topo, machines=machines or None)
    except Exception:
        return None


def write_reports(result: RunResult) -> None:
    from lab.report.html import write_run
    from lab.report.jsonreport import experiment_json

    result.html_path = result.run_dir / "report.html"
    write_run(result, result.html_path)
    (result.run_dir / "result.json").write_text(json.dumps(experiment_json(result), indent=2))


CHILD_TIMEOUT = 600.0  # one experiment of the catalogue takes seconds to a minute; a hung one must not block CI


def _interrupt(proc: subprocess.Popen[str]) -> str:
    """Stop a child run that overran: Ctrl-C first (it undoes its changes and takes its lab down), then SIGKILL
    and ``down`` of any lab it was building."""
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=60)
        return out
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    for lab in state.labs_with_state():
        first = next(iter(state.Journal(lab).entries()), {})
        if first.get("kind") == "lab" and first.get("pid") == proc.pid:
            deploy.down(lab)
    return out


def run_child(exp: Experiment, args: list[str], out_dir: Path, child_timeout: float = CHILD_TIMEOUT,
              name: str | None = None) -> dict[str, object]:
    """``lab run EXP ARGS`` in a child process (its own lab); its JSON item, or an error item saying why
    there is none (the child's last line). ``name`` keeps its result file apart from other children's."""
    result_file = out_dir / f".{name or exp.id}.json"
    argv = [sys.executable, "-P", "-m", "lab", "run", exp.id, "--out", str(out_dir), "--json-file", str(result_file),
            "--quiet", "--fresh", *args]
    started = time.time()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=child_timeout)
    except subprocess.TimeoutExpired:
        stdout, stderr = _interrupt(proc), f"timed out after {child_timeout:g} s (stopped)"
    try:
        item: dict[str, object] = json.loads(result_file.read_text())["experiments"][0]
        result_file.unlink()
    except (FileNotFoundError, json.JSONDecodeError, KeyError, IndexError):
        tail = (stderr or stdout).strip().splitlines()
        item = {"id": exp.id, "title": exp.title, "section": exp.section, "verdict": "error",
                "duration_s": round(time.time() - started, 3), "parameters": {}, "expectations": [],
                "error": tail[-1] if tail else f"lab run exited {proc.returncode}", "pcaps": {}, "report": None,
                "exit_code": proc.returncode}
    return item


def run_many(exps: list[Experiment], overrides: dict[str, str], out_dir: Path, jobs: int,
             paths: list[Path], on_done: Callable[[dict[str, object]], None],
             child_timeout: float = CHILD_TIMEOUT, cluster_args: list[str] | None = None,
             uses: dict[str, Path] | None = None) -> list[dict[str, object]]:
    """Each experiment in its own child ``lab run`` (its own lab), ``jobs`` at a time; returns JSON items.

    ``cluster_args`` (``--cluster FILE [--spread]``) go to every child: its lab is built over the cluster.
    ``uses`` (``--use``) go to the children whose experiment runs that program.
    """

    def child(exp: Experiment) -> dict[str, object]:
        args = list(cluster_args or [])
        for key, value in overrides.items():
            if key in exp.params:
                args += ["-p", f"{key}={value}"]
        for p in paths:
            args += ["--path", str(p)]
        for name, program in (uses or {}).items():
            if name in exp.programs:
                args += ["--use", f"{name}={program}"]
        item = run_child(exp, args, out_dir, child_timeout)
        on_done(item)
        return item

    longest_first = sorted(range(len(exps)), key=lambda i: -exps[i].lasts)  # stable: the rest in the given order
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        done = dict(zip(longest_first, pool.map(child, [exps[i] for i in longest_first]), strict=True))
    return [done[i] for i in range(len(exps))]
