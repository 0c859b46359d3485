#!/usr/bin/env python3
"""Crash trials: kill ``lab`` with SIGKILL at random moments, then check that ``lab down`` leaves nothing.

A lab's journal is written before each object is created, so whatever moment
``lab up`` dies at, ``lab down`` must find and remove everything it made. This
script tries that for real, N times, on topologies/trust-mix.yaml (namespace
hosts on a bridge, two routers on a point-to-point link, a Docker container
node, per-node sysctls):

1. measure how long a whole ``lab up`` builds (and take that lab down again);
2. for each trial, start ``lab up`` as a child process, SIGKILL it after a
   random delay within that time (counted from its journal's first line:
   Python starting up creates nothing), note what it left, run ``lab down``;
3. check that nothing of the lab remains: namespaces (/run/netns), /etc/netns
   entries, mounts, the state directory and its lock file, containers with
   the lab's label, processes the journal recorded or that still sit in one
   of the lab's namespaces, iptables rules in the machine's namespace, and
   interfaces in the machine's namespace with the lab's names.

The fault variant does the same to ``lab fault add`` on a running lab (loss,
rate limit on the container, SYN drop), to ``lab run EXPERIMENT --keep``
(servers, captures and faults in flight) and to ``lab down`` itself (with a
process left in one of the lab's namespaces). Prints one line per trial and exits
1 if any trial left debris or ``lab down`` failed.

    sudo .venv/bin/python scripts/crash_trials.py                 # 50 up trials + 10 of each fault variant
    sudo .venv/bin/python scripts/crash_trials.py -n 10 --fault-trials 2 --seed 7

The lab is named ``crash-<random>`` so it clashes with no one's; the tests in
tests/integration/test_trust.py import these functions for a shorter run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab import names, state  # noqa: E402
from lab.net.netns import NETNS_DIR  # noqa: E402

TOPOLOGY = ROOT / "topologies" / "trust-mix.yaml"
ETC_NETNS = Path("/etc/netns")
RUN_EXPERIMENT = "congestion-cwnd"  # book-lan, about 2 s: a server, a client, a capture, a loss fault, a rate limit
FAULTS = [
    ["r1:eth1", "--loss", "30%"],
    ["srv:eth0", "--rate", "1mbit"],
    ["a:eth0", "--drop", "tcp syn dport 80"],
]


# --- looking at the machine ------------------------------------------------------------------


def lab_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``lab ARGS`` as a child process (the installed package, this interpreter)."""
    return subprocess.run([sys.executable, "-m", "lab", *args], capture_output=True, text=True, timeout=timeout)


def lab_popen(*args: str, stderr: int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "lab", *args], stdout=subprocess.DEVNULL, stderr=stderr)


def prefixed(directory: Path | str, prefix: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(directory) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def lab_namespaces(lab: str) -> list[str]:
    return prefixed(NETNS_DIR, f"{names.PREFIX}{lab}.")


def lab_etc_entries(lab: str) -> list[str]:
    return prefixed(ETC_NETNS, f"{names.PREFIX}{lab}.")


def lab_mounts(lab: str) -> list[str]:
    """Mount points of the lab in this process's mount namespace: its namespace directory (a tmpfs)
    and the namespaces mounted in it, and any namespace mounted under its name in /run/netns."""
    nsdir = state.netns_dir(lab)
    marks = (f"{NETNS_DIR}/{names.PREFIX}{lab}.", f"{nsdir}/")
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == nsdir or p.startswith(marks)]


_docker: list[object] = []  # one client for the checks, opened once (each new client holds a socket)


def docker_up() -> bool:
    if _docker:
        return True
    try:
        from lab.dockerclient import docker_client

        _docker.append(docker_client())
        return True
    except Exception:  # noqa: BLE001 - any failure means "no engine"
        return False


def lab_containers(lab: str) -> list[str]:
    """Containers labelled as this lab's (any state directory), and containers named like its nodes."""
    if not docker_up():
        return []
    from lab.nodes.container import LABEL_LAB

    api: Any = _docker[0].api  # type: ignore[attr-defined]
    # The low-level list (no inspect per container): a container may vanish while we look.
    labelled = api.containers(all=True, filters={"label": f"{LABEL_LAB}={lab}"})
    named = api.containers(all=True, filters={"name": f"{names.PREFIX}{lab}."})
    found = {n.lstrip("/") for row in labelled for n in row.get("Names") or []}
    found |= {n.lstrip("/") for row in named for n in row.get("Names") or []
              if n.lstrip("/").startswith(f"{names.PREFIX}{lab}.")}
    return sorted(found)


def root_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def root_lab_rules() -> set[str]:
    """iptables rules in the machine's namespace that mention a lab (lab faults carry 'lab-fault-' comments)."""
    try:
        out = subprocess.run(["iptables-save"], capture_output=True, text=True, timeout=30).stdout
    except FileNotFoundError:
        return set()
    return {line for line in out.splitlines() if "lab-" in line}


def journal_entries(lab: str) -> list[dict[str, object]]:
    return state.Journal(lab).entries()


def namespace_inodes(lab: str) -> set[int]:
    """The kernel identities (nsfs inodes) of the lab's named namespaces, to find processes still inside."""
    inodes = set()
    nsfs = os.stat("/proc/self/ns/net").st_dev
    for name in lab_namespaces(lab):
        try:
            st = os.stat(os.path.join(NETNS_DIR, name))  # follows the symlink into the lab's nsdir
        except FileNotFoundError:
            continue
        if st.st_dev == nsfs:  # a mounted namespace, not an empty claim
            inodes.add(st.st_ino)
    return inodes


def running(pid: int, start_time: int | None) -> bool:
    """The recorded process still runs (a zombie waiting for its new parent to reap it has ended)."""
    from lab import procs

    try:
        with open(f"/proc/{pid}/stat") as f:
            zombie = f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return False
    return not zombie and procs.is_same_process(pid, start_time)


def processes_in(inodes: set[int]) -> list[int]:
    """PIDs of processes whose network namespace is one of ``inodes``."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            link = os.readlink(f"/proc/{pid}/ns/net")
        except OSError:
            continue
        match = re.fullmatch(r"net:\[(\d+)\]", link)
        if match and int(match.group(1)) in inodes:
            found.append(int(pid))
    return found


@dataclass
class Machine:
    """What a lab must not change in the machine's own namespace."""

    links: set[str]
    rules: set[str]

    @classmethod
    def now(cls) -> Machine:
        return cls(root_links(), root_lab_rules())


@dataclass
class Left:
    """What a killed command left behind, before ``lab down``: the evidence ``down`` must clear."""

    namespaces: int = 0
    containers: int = 0
    journal: int = 0
    inodes: set[int] = field(default_factory=set)
    processes: list[dict[str, object]] = field(default_factory=list)

    @classmethod
    def of(cls, lab: str) -> Left:
        entries = journal_entries(lab)
        return cls(len(lab_namespaces(lab)), len(lab_containers(lab)), len(entries), namespace_inodes(lab),
                   [e for e in entries if e.get("kind") == "process"])

    def __str__(self) -> str:
        return f"ns={self.namespaces} ctr={self.containers} journal={self.journal} procs={len(self.processes)}"


def debris(lab: str, before: Machine, left: Left, lab_names: set[str]) -> list[str]:
    """Everything of ``lab`` still on the machine; empty when ``down`` did its job."""
    found = [f"namespace {n}" for n in lab_namespaces(lab)]
    found += [f"/etc/netns/{n}" for n in lab_etc_entries(lab)]
    found += [f"mount {m}" for m in lab_mounts(lab)]
    if state.lab_dir(lab).exists():
        found.append(f"state dir {state.lab_dir(lab)}")
    lock = state.state_root() / f".{lab}.lock"
    if lock.exists():
        found.append(f"lock file {lock}")
    found += [f"container {c}" for c in lab_containers(lab)]
    time.sleep(0.3)  # a create the killed process asked for could still land: look once more
    found += [f"container {c} (appeared after down)" for c in lab_containers(lab) if f"container {c}" not in found]
    for entry in left.processes:
        pid, started = int(str(entry["pid"])), entry.get("start_time")
        if running(pid, started if isinstance(started, int) else None):
            found.append(f"process {entry['name']} (pid {pid})")
    found += [f"process {pid} still in a lab namespace" for pid in processes_in(left.inodes)]
    after = Machine.now()
    found += [f"iptables rule {r!r}" for r in sorted(after.rules - before.rules)]
    found += [f"interface {i} in the machine's namespace" for i in sorted((after.links - before.links) & lab_names)]
    return found


def interface_names(topology_text: str) -> set[str]:
    """Every interface name the lab could create (bridges, switch ports, node ends)."""
    from lab.plan import make_plan
    from lab.topology import load_topology_text

    topo, _ = load_topology_text(topology_text, "trial.yaml")
    plan = make_plan(topo)
    found = {b.name for b in plan.bridges}
    for node, spec in plan.nodes.items():
        for ifname in spec.interfaces:
            found.add(ifname)
            found.add(names.port_name(node, ifname))
    return found


# --- the trials ------------------------------------------------------------------------------


@dataclass
class Trial:
    number: int
    what: str
    delay: float
    outcome: str  # killed, finished (before the kill), or failed rc=N
    left: Left
    down_rc: int
    down_seconds: float
    debris: list[str]

    @property
    def ok(self) -> bool:
        return self.down_rc == 0 and not self.debris

    def line(self) -> str:
        verdict = "ok" if self.ok else "DEBRIS: " + "; ".join(self.debris[:6]) + (
            f" (+{len(self.debris) - 6})" if len(self.debris) > 6 else "")
        if self.down_rc != 0:
            verdict = f"lab down exit {self.down_rc}; " + verdict
        return (f"{self.number:>5}  {self.what:<10} {self.delay:7.2f}  {self.outcome:<10} {str(self.left):<38} "
                f"{self.down_seconds:5.1f}  {verdict}")


HEADER = f"{'trial':>5}  {'what':<10} {'kill@s':>7}  {'outcome':<10} {'left before down':<38} {'down':>5}  debris"


def topology_for(lab: str, source: Path = TOPOLOGY) -> str:
    return re.sub(r"^name:.*$", f"name: {lab}", source.read_text(), count=1, flags=re.MULTILINE)


@dataclass
class Workspace:
    """A private directory for the renamed topology and run reports (mode 0700)."""

    lab: str
    dir: Path
    topology: Path
    lab_names: set[str]

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    @classmethod
    def make(cls, lab: str | None = None) -> Workspace:
        lab = lab or f"crash-{secrets.token_hex(3)}"
        d = Path(tempfile.mkdtemp(prefix="lab-trials-"))
        text = topology_for(lab)
        topo = d / f"{lab}.yaml"
        topo.write_text(text)
        return cls(lab, d, topo, interface_names(text))


def kill_after(proc: subprocess.Popen[bytes], delay: float) -> str:
    """SIGKILL ``proc`` after ``delay`` seconds unless it finished first; say which."""
    try:
        rc = proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return "killed"
    return "finished" if rc == 0 else f"failed rc={rc}"


def down_and_check(ws: Workspace, lab: str, before: Machine, number: int, what: str, delay: float,
                   outcome: str) -> Trial:
    left = Left.of(lab)
    start = time.monotonic()
    down = lab_cli("down", lab)
    seconds = time.monotonic() - start
    found = debris(lab, before, left, ws.lab_names)
    if down.returncode != 0:
        found.append(f"lab down said: {(down.stderr or down.stdout).strip()[-200:]}")
    return Trial(number, what, delay, outcome, left, down.returncode, seconds, found)


def started_by(lab: str, pid: int) -> bool:
    """The lab's journal exists and its first line names process ``pid`` as the builder."""
    entries = journal_entries(lab)
    return bool(entries) and entries[0].get("pid") == pid


def wait_for_journal(proc: subprocess.Popen[bytes], lab: str, timeout: float = 60) -> float:
    """Seconds until ``proc`` wrote the lab's first journal line (or ended); Python's start-up creates nothing."""
    start = time.monotonic()
    while proc.poll() is None and not started_by(lab, proc.pid) and time.monotonic() - start < timeout:
        time.sleep(0.002)
    return time.monotonic() - start


def measure_up(ws: Workspace, runs: int = 3) -> float:
    """Seconds a whole ``lab up`` spends building, from its journal's first line to its end.

    The shortest of ``runs`` (images built first): a slow outlier would put
    most kills after the end. Each run is taken down and checked like a trial.
    """
    lab_cli("images", "build", "-q", "host", timeout=1800)
    times = []
    for _ in range(runs):
        before = Machine.now()
        proc = lab_popen("up", "-q", str(ws.topology), stderr=subprocess.PIPE)
        started = wait_for_journal(proc, ws.lab)
        start = time.monotonic()
        _, err = proc.communicate(timeout=300)
        times.append(time.monotonic() - start)
        if proc.returncode != 0:
            raise SystemExit(f"crash_trials: lab up {ws.topology} failed (exit {proc.returncode}): "
                             f"{err.decode(errors='replace').strip()[-300:]}")
        trial = down_and_check(ws, ws.lab, before, 0, "calibrate", started + times[-1], "finished")
        if not trial.ok:
            raise SystemExit(f"crash_trials: a clean up/down left debris: {trial.debris}")
    return min(times)


def up_trials(ws: Workspace, n: int, rng: random.Random, build_seconds: float,
              report: Callable[[Trial], None] = lambda t: None) -> list[Trial]:
    """``lab up`` killed at a random moment of its build, then ``lab down``, ``n`` times.

    The delay is drawn from [0, 0.9 x the measured build time] and counted from
    the moment the journal's first line appears (so no kill is wasted on
    Python starting up); a fast build may still finish first, and is checked all the same.
    """
    results = []
    for i in range(1, n + 1):
        before = Machine.now()
        delay = rng.uniform(0.0, 0.9 * build_seconds)
        proc = lab_popen("up", "-q", str(ws.topology))
        wait_for_journal(proc, ws.lab)
        outcome = kill_after(proc, delay)
        results.append(down_and_check(ws, ws.lab, before, i, "up", delay, outcome))
        report(results[-1])
    return results


def journal_length(lab: str) -> int:
    try:
        with open(state.Journal(lab).path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


class LabOf:
    """The lab a ``lab`` child process is building (found from the pid its journal names), once it exists."""

    def __init__(self, proc: subprocess.Popen[bytes], lab: str | None = None) -> None:
        self.proc = proc
        self.lab = lab

    def journal_length(self) -> int:
        if self.lab is None:
            found = labs_started_by(self.proc.pid)
            if not found:
                return 0
            self.lab = found[0]
        return journal_length(self.lab)


def kill_when(proc: subprocess.Popen[bytes], happened: Callable[[], bool], extra: float,
              timeout: float = 60) -> tuple[str, float]:
    """SIGKILL ``proc`` ``extra`` seconds after ``happened()`` became true (or when it ended by itself)."""
    start = time.monotonic()
    while proc.poll() is None and time.monotonic() - start < timeout:
        if happened():
            time.sleep(extra)
            break
        time.sleep(0.001)
    return kill_after(proc, 0.0), time.monotonic() - start


def kill_at_entry(proc: subprocess.Popen[bytes], lab: LabOf, entry: int, extra: float,
                  timeout: float = 300) -> tuple[str, float]:
    """SIGKILL ``proc`` ``extra`` seconds after its lab's journal reached ``entry`` lines (mid-step, by design)."""
    return kill_when(proc, lambda: lab.journal_length() >= entry, extra, timeout)


def fault_trials(ws: Workspace, n: int, rng: random.Random,
                 report: Callable[[Trial], None] = lambda t: None) -> list[Trial]:
    """On a running lab, ``lab fault add`` killed while it works, then ``lab down``.

    The kill comes 0-60 ms after the fault reached the journal: while its
    iptables/tc commands run (a whole ``fault add`` is mostly Python starting).
    """
    results = []
    for i in range(1, n + 1):
        before = Machine.now()
        up = lab_cli("up", "-q", str(ws.topology))
        if up.returncode != 0:
            raise SystemExit(f"crash_trials: lab up failed: {up.stderr.strip()}")
        spec = FAULTS[(i - 1) % len(FAULTS)]
        proc = lab_popen("fault", "add", "--lab", ws.lab, *spec)
        outcome, delay = kill_at_entry(proc, LabOf(proc, ws.lab), journal_length(ws.lab) + 1, rng.uniform(0, 0.06))
        results.append(down_and_check(ws, ws.lab, before, i, "fault add", delay, outcome))
        report(results[-1])
    return results


def down_trials(ws: Workspace, n: int, rng: random.Random,
                report: Callable[[Trial], None] = lambda t: None) -> list[Trial]:
    """``lab down`` itself killed mid-way, with a process left in one of the lab's namespaces
    (one its journal does not name), then ``lab down`` again.

    ``down`` removes the container, stops the process, unmounts the namespaces and
    removes their names, the /etc/netns entries and the state: odd trials kill it
    0-20 ms after the container is gone, even ones 0-3 ms after the process ended
    (trial 0 runs it whole). Beside the usual debris, the process must be gone and
    nothing left in the lab's namespaces, noted before the first ``down`` (after it
    they may have no name).
    """
    results = []
    for i in range(0, n + 1):
        before = Machine.now()
        up = lab_cli("up", "-q", str(ws.topology))
        if up.returncode != 0:
            raise SystemExit(f"crash_trials: lab up failed: {up.stderr.strip()}")
        inodes = namespace_inodes(ws.lab)
        stray = subprocess.Popen(["ip", "netns", "exec", f"{names.PREFIX}{ws.lab}.a", "sleep", "300"])
        proc = lab_popen("down", ws.lab)
        if i == 0:
            start = time.monotonic()
            outcome, delay = kill_after(proc, 300), time.monotonic() - start
        elif i % 2:
            outcome, delay = kill_when(proc, lambda: not lab_containers(ws.lab), rng.uniform(0, 0.02))
        else:
            outcome, delay = kill_when(proc, lambda p=stray: p.poll() is not None, rng.uniform(0, 0.003))
        trial = down_and_check(ws, ws.lab, before, i, "down", delay, outcome)
        trial.debris += [f"process {pid} still in a namespace of the lab" for pid in processes_in(inodes)]
        try:
            stray.wait(timeout=5)
        except subprocess.TimeoutExpired:
            stray.kill()  # our own child, by its PID
            stray.wait()
            trial.debris.append(f"the process left in {names.PREFIX}{ws.lab}.a was not stopped")
        results.append(trial)
        report(trial)
    return results


def labs_started_by(pid: int) -> list[str]:
    """Labs whose journal says process ``pid`` started building them."""
    found = []
    for lab in state.labs_with_state():
        entries = journal_entries(lab)
        if entries and entries[0].get("kind") == "lab" and entries[0].get("pid") == pid:
            found.append(lab)
    return found


def run_trials(ws: Workspace, n: int, rng: random.Random,
               report: Callable[[Trial], None] = lambda t: None) -> list[Trial]:
    """``lab run EXPERIMENT --keep`` killed during its steps (servers, captures, faults in flight), then ``lab down``.

    Trial 0 runs it whole and counts its journal's lines when the lab is up
    and at the end; each later trial is killed a moment (0-100 ms) after a
    random one of the lines in between was written: a server, a capture, a
    fault just recorded. What ``--keep`` leaves up must go down as well.
    """
    from lab.experiments.engine import find
    from lab.experiments.runner import lab_name_for

    prefix = lab_name_for(find(RUN_EXPERIMENT)).rsplit("-", 1)[0] + "-"
    run = ["run", RUN_EXPERIMENT, "--keep", "-q", "--out", str(ws.dir / "runs")]
    results = []
    lines_up = lines_end = 0
    for i in range(0, n + 1):
        before = Machine.now()
        start = time.monotonic()
        proc = lab_popen(*run)
        of = LabOf(proc)
        if i == 0:
            while proc.poll() is None:
                if not lines_up and of.lab and (state.lab_dir(of.lab) / "lab.json").exists():
                    lines_up = of.journal_length()
                of.journal_length()
                time.sleep(0.005)
            lines_end = of.journal_length()
            outcome = "finished" if proc.returncode in (0, 1) else f"failed rc={proc.returncode}"
            delay = time.monotonic() - start
        else:
            entry = rng.randint(lines_up + 1, max(lines_up + 1, lines_end))
            outcome, delay = kill_at_entry(proc, of, entry, rng.uniform(0, 0.1))
        labs = labs_started_by(proc.pid)
        if not labs:  # killed before its journal existed: then it must have created nothing
            stray = [ns for ns in prefixed(NETNS_DIR, names.PREFIX + prefix)
                     if not state.lab_dir(ns.removeprefix(names.PREFIX).split(".")[0]).exists()]
            results.append(Trial(i, "run --keep", delay, outcome, Left(), 0, 0.0,
                                 [f"namespace {ns} of no journal" for ns in stray]))
        for lab in labs:
            results.append(down_and_check(ws, lab, before, i, "run --keep", delay, outcome))
        report(results[-1])
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--trials", type=int, default=50, help="lab up trials (default 50)")
    parser.add_argument("--fault-trials", type=int, default=10,
                        help="trials of each other variant: fault add, run --keep, down (default 10)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (printed; default: random)")
    parser.add_argument("--lab", default=None, help="lab name (default crash-<random>)")
    parser.add_argument("--json", type=Path, default=None, help="also write the trials to this JSON file")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("crash_trials: run as root (sudo)", file=sys.stderr)
        return 3
    if not docker_up():
        print("crash_trials: the topology has a container node; start a Docker engine first", file=sys.stderr)
        return 3
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    ws = Workspace.make(args.lab)
    build_seconds = measure_up(ws)
    print(f"lab {ws.lab} from {TOPOLOGY.relative_to(ROOT)}; lab up builds for {build_seconds:.2f} s "
          f"after its journal's first line; seed {seed}")
    print(HEADER)

    def show(trial: Trial) -> None:
        print(trial.line(), flush=True)

    started = time.monotonic()
    try:
        trials = up_trials(ws, args.trials, rng, build_seconds, show)
        if args.fault_trials:
            trials += fault_trials(ws, args.fault_trials, rng, show)
            trials += run_trials(ws, args.fault_trials, rng, show)
            trials += down_trials(ws, args.fault_trials, rng, show)
    finally:
        lab_cli("down", ws.lab)
        ws.remove()
    bad = [t for t in trials if not t.ok]
    killed = sum(t.outcome == "killed" for t in trials)
    print(f"{len(trials)} trials ({killed} killed mid-way) in {time.monotonic() - started:.0f} s: "
          + ("no debris" if not bad else f"{len(bad)} left debris or failed to go down"))
    if args.json:
        args.json.write_text(json.dumps([{**vars(t), "left": str(t.left)} for t in trials], indent=2))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
