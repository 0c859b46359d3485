"""Time ``lab up``/``lab down`` against iproute2 and Docker doing the same work, in one run.

    sudo .venv/bin/python benchmarks/run.py                 # sizes 10 50 200 500, both shapes
    sudo .venv/bin/python benchmarks/run.py --quick         # sizes 10 50, one repeat, no CLI pass
    sudo .venv/bin/python benchmarks/run.py --sizes 1000 --shapes lan
    sudo .venv/bin/python benchmarks/run.py --containers 5,10,20 --sizes ''
    sudo .venv/bin/python benchmarks/run.py --catalogue --sizes ''

For each shape (``lan``: N hosts on one bridge; ``chain``: N routers in a
line) and size N it measures, alternating within each repeat:

- ``lab`` in-process: ``lab.deploy.up`` / ``lab.deploy.down`` called from this
  process on a topology already loaded (loading is timed separately);
- the ``ip -batch`` baseline doing the same plumbing (see benchmarks/ipbatch.py
  for exactly what it does) and ``ip -batch`` of ``netns delete``;
- ``lab`` as a user runs it: ``lab up -q FILE`` and ``lab down NAME`` as
  subprocesses (interpreter start, imports and loading included), with the
  peak RSS of each process from wait4(2).

"gone" is when the kernel has really destroyed the namespaces, which it does
asynchronously after the last reference (the bind mount) goes: a witness veth
joins an observer namespace to a sample of the namespaces (the first and the
last removed, and some between); gone = the moment the last witness end
vanishes, counted from the start of ``down``.

Figures are medians over ``--repeat`` runs; ratios are lab / baseline from the
same run. This is a benchmark, not a test: it prints, it never asserts a time.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import ipbatch  # noqa: E402
import topogen  # noqa: E402

from lab import deploy  # noqa: E402
from lab.net import netns  # noqa: E402
from lab.plan import make_plan  # noqa: E402
from lab.topology import load_topology_text  # noqa: E402

LAB = str(ROOT / ".venv" / "bin" / "lab")
OBSERVER = f"ipb-observer-{os.getpid()}"
WITNESSES = 8
SETTLE = 0.5  # seconds after a teardown is gone, for the kernel's last deferred frees


@dataclass
class Row:
    shape: str
    n: int
    load: float = 0.0
    lab_up: list[float] = field(default_factory=list)
    lab_down: list[float] = field(default_factory=list)
    lab_gone: list[float] = field(default_factory=list)
    ip_up: list[float] = field(default_factory=list)
    ip_down: list[float] = field(default_factory=list)
    ip_gone: list[float] = field(default_factory=list)
    cli_up: list[float] = field(default_factory=list)
    cli_down: list[float] = field(default_factory=list)
    cli_up_rss_mb: float = 0.0
    cli_down_rss_mb: float = 0.0
    traced_peak_mb: float | None = None


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# -- the observer and its witnesses ------------------------------------------------


def observer_up() -> None:
    subprocess.run(["ip", "netns", "add", OBSERVER], check=True)


def observer_down() -> None:
    subprocess.run(["ip", "netns", "delete", OBSERVER], capture_output=True)


def add_witnesses(namespaces: list[str]) -> list[str]:
    """A veth from the observer into a sample of ``namespaces``; returns the observer-side names."""
    picks = sorted({round(i * (len(namespaces) - 1) / max(1, WITNESSES - 1)) for i in range(WITNESSES)})
    lines, ends = [], []
    for k, i in enumerate(picks):
        ends.append(f"w{k}")
        lines.append(f"link add w{k} type veth peer name labwitness netns {namespaces[i]}")
    subprocess.run(["ip", "-n", OBSERVER, "-batch", "-"], input="\n".join(lines) + "\n", text=True, check=True)
    return ends


def wait_gone(ends: list[str], since: float, timeout: float = 120.0) -> float:
    """Seconds from ``since`` until every witness end has vanished from the observer."""
    left = set(ends)
    deadline = time.monotonic() + timeout
    with netns.entered(netns.netns_path(OBSERVER)):
        while left:
            for name in list(left):
                try:
                    socket.if_nametoindex(name)
                except OSError:
                    left.discard(name)
            if not left:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"namespaces still not destroyed after {timeout:.0f} s")
            time.sleep(0.002)
    return time.perf_counter() - since


# -- one measurement each ----------------------------------------------------------


def lab_inprocess(row: Row, topo, text: str, namespaces: list[str]) -> None:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    deploy.up(topo, text, None)
    row.lab_up.append(time.perf_counter() - t)
    ends = add_witnesses(namespaces)
    t = time.perf_counter()
    deploy.down(topo.name)
    row.lab_down.append(time.perf_counter() - t)
    row.lab_gone.append(wait_gone(ends, t))


def ip_baseline(row: Row, plan) -> None:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    made = ipbatch.up(plan)
    row.ip_up.append(time.perf_counter() - t)
    ends = add_witnesses(made)
    t = time.perf_counter()
    ipbatch.down(made)
    row.ip_down.append(time.perf_counter() - t)
    row.ip_gone.append(wait_gone(ends, t))


def run_measured(argv: list[str]) -> tuple[float, float]:
    """Run a command to completion; (wall seconds, peak RSS in MB) from wait4(2)."""
    t = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {err[-500:]}")
    return wall, usage.ru_maxrss / 1024


def lab_cli(row: Row, path: Path, lab: str, namespaces: list[str]) -> None:
    wall, rss = run_measured([LAB, "up", "-q", str(path)])
    row.cli_up.append(wall)
    row.cli_up_rss_mb = max(row.cli_up_rss_mb, rss)
    ends = add_witnesses(namespaces)
    t = time.perf_counter()
    wall, rss = run_measured([LAB, "down", lab])
    row.cli_down.append(wall)
    row.cli_down_rss_mb = max(row.cli_down_rss_mb, rss)
    wait_gone(ends, t)  # so the next measurement does not share the machine with this teardown


def traced_peak(topo, text: str) -> float:  # type: ignore[no-untyped-def]
    """Peak Python heap (MB) during an in-process up, from tracemalloc (slow, so never timed)."""
    tracemalloc.start()
    try:
        deploy.up(topo, text, None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        deploy.down(topo.name)
    return peak / 1e6


def bench_namespaces(shape: str, n: int, repeat: int, cli: bool, memory: bool) -> Row:
    row = Row(shape, n)
    lab = f"bench-{shape[0]}{n}"
    text = topogen.SHAPES[shape](lab, n)
    t = time.perf_counter()
    topo, _ = load_topology_text(text, f"{lab}.yaml")
    row.load = time.perf_counter() - t
    plan = make_plan(topo)
    namespaces = [s.name for s in plan.namespaces]
    with tempfile.TemporaryDirectory(prefix="lab-bench-") as tmp:
        path = Path(tmp) / f"{lab}.yaml"
        path.write_text(text)
        try:
            for _ in range(repeat):
                lab_inprocess(row, topo, text, namespaces)
                time.sleep(SETTLE)
                ip_baseline(row, plan)
                time.sleep(SETTLE)
                if cli:
                    lab_cli(row, path, lab, namespaces)
                    time.sleep(SETTLE)
            if memory:
                row.traced_peak_mb = traced_peak(topo, text)
        finally:
            deploy.down(lab)
            left = ipbatch.leftovers([ipbatch.rename(s) for s in namespaces])
            if left:
                ipbatch.down(left)
    return row


# -- containers ----------------------------------------------------------------------


@dataclass
class ContainerRow:
    n: int
    image: str
    lab_up: list[float] = field(default_factory=list)
    lab_down: list[float] = field(default_factory=list)
    docker_up: list[float] = field(default_factory=list)
    docker_down: list[float] = field(default_factory=list)


def docker_plain(row: ContainerRow, ref: str, prefix: str) -> None:
    """N concurrent ``docker run -d --network none`` with lab's options, then concurrent ``docker rm -f``."""
    names = [f"{prefix}{i}" for i in range(1, row.n + 1)]

    def run(name: str) -> None:
        subprocess.run(["docker", "run", "-d", "--name", name, "--hostname", name, "--network", "none", "--init",
                        "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW", "--label", "lab.bench=1", ref],
                       check=True, capture_output=True)

    def rm(name: str) -> None:
        subprocess.run(["docker", "rm", "-f", name], check=True, capture_output=True)

    with ThreadPoolExecutor(max_workers=row.n) as pool:
        t = time.perf_counter()
        list(pool.map(run, names))
        row.docker_up.append(time.perf_counter() - t)
        t = time.perf_counter()
        list(pool.map(rm, names))
        row.docker_down.append(time.perf_counter() - t)


def bench_containers(n: int, image: str, repeat: int) -> ContainerRow:
    from lab.dockerclient import docker_client
    from lab.images import ensure_image

    row = ContainerRow(n, image)
    lab = f"bench-c{n}"
    text = topogen.lan(lab, n, kind="container", image=image)
    topo, _ = load_topology_text(text, f"{lab}.yaml")
    ref = ensure_image(docker_client(), image)
    try:
        for _ in range(repeat):
            t = time.perf_counter()
            deploy.up(topo, text, None)
            row.lab_up.append(time.perf_counter() - t)
            t = time.perf_counter()
            deploy.down(lab)
            row.lab_down.append(time.perf_counter() - t)
            docker_plain(row, ref, f"ipb-{lab}-")
    finally:
        deploy.down(lab)
        subprocess.run(["docker", "rm", "-f", *[f"ipb-{lab}-{i}" for i in range(1, n + 1)]], capture_output=True)
    return row


# -- the catalogue -----------------------------------------------------------------


def bench_catalogue(jobs: list[int]) -> dict[int, tuple[float, int]]:
    """Wall time and exit code of ``lab run --all -q --jobs J`` for each J."""
    out = {}
    for j in jobs:
        with tempfile.TemporaryDirectory(prefix="lab-bench-runs-") as tmp:
            t = time.perf_counter()
            proc = subprocess.run([LAB, "run", "--all", "-q", "--jobs", str(j), "--out", tmp],
                                  capture_output=True, text=True)
            out[j] = (time.perf_counter() - t, proc.returncode)
            print(proc.stdout[-2000:], file=sys.stderr)
    return out


# -- reporting ---------------------------------------------------------------------


def machine() -> dict[str, str]:
    mem_kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal:"))
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.machine())
    ip = subprocess.run(["ip", "-V"], capture_output=True, text=True).stdout.strip()
    docker = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True,
                            text=True).stdout.strip()
    return {
        "date": datetime.date.today().isoformat(),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "kernel": platform.release(),
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "python": platform.python_version(),
        "iproute2": ip,
        "docker": docker or "-",
        "load before": " ".join(open("/proc/loadavg").read().split()[:3]),
    }


def print_namespace_table(rows: list[Row]) -> None:
    print("\n| shape | N | lab up | ip up | up ratio | lab down | ip down | down ratio | lab gone | ip gone "
          "| per node (up) | CLI up | CLI down | CLI peak RSS | load |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        up, ipu, down, ipd = med(r.lab_up), med(r.ip_up), med(r.lab_down), med(r.ip_down)
        cli = f"{med(r.cli_up):.2f} s" if r.cli_up else "-"
        clid = f"{med(r.cli_down):.2f} s" if r.cli_down else "-"
        rss = f"{max(r.cli_up_rss_mb, r.cli_down_rss_mb):.0f} MB" if r.cli_up else "-"
        print(f"| {r.shape} | {r.n} | {up:.3f} s | {ipu:.3f} s | {up / ipu:.2f} | {down:.3f} s | {ipd:.3f} s "
              f"| {down / ipd:.2f} | {med(r.lab_gone):.2f} s | {med(r.ip_gone):.2f} s | {up / r.n * 1000:.2f} ms "
              f"| {cli} | {clid} | {rss} | {r.load:.2f} s |")
    traced = [r for r in rows if r.traced_peak_mb is not None]
    for r in traced:
        print(f"in-process up, {r.shape} N={r.n}: peak Python heap (tracemalloc) {r.traced_peak_mb:.1f} MB")
    print(f"this process's peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def print_container_table(rows: list[ContainerRow]) -> None:
    print("\n| containers | image | lab up | docker run | ratio | lab down | docker rm -f | ratio |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        up, dup, down, ddown = med(r.lab_up), med(r.docker_up), med(r.lab_down), med(r.docker_down)
        print(f"| {r.n} | {r.image} | {up:.2f} s | {dup:.2f} s | {up / dup:.2f} | {down:.2f} s | {ddown:.2f} s "
              f"| {down / ddown:.2f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10,50,200,500", help="comma-separated N (empty: no namespace labs)")
    ap.add_argument("--shapes", default="lan,chain", help="lan, chain")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="sizes 10,50; one repeat; no CLI pass")
    ap.add_argument("--no-cli", action="store_true", help="skip the lab-as-a-subprocess pass")
    ap.add_argument("--memory", action="store_true", help="also trace the Python heap of one in-process up")
    ap.add_argument("--containers", default="", help="comma-separated container counts, e.g. 5,10,20")
    ap.add_argument("--image", default="host", help="node image for the container labs")
    ap.add_argument("--catalogue", action="store_true", help="time lab run --all with --jobs 1 and 4")
    ap.add_argument("--json", type=Path, help="also write every measurement here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("benchmarks need root (namespaces): sudo .venv/bin/python benchmarks/run.py", file=sys.stderr)
        return 2
    if args.quick:
        args.sizes, args.repeat, args.no_cli = "10,50", 1, True
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    shapes = [s for s in args.shapes.split(",") if s.strip()]
    info = machine()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    netns.ensure_netns_dir()
    rows: list[Row] = []
    crows: list[ContainerRow] = []
    catalogue: dict[int, tuple[float, int]] = {}
    observer_up()
    try:
        for shape in shapes:
            for n in sizes:
                if shape == "chain" and n < 2:
                    continue
                print(f"... {shape} N={n}", file=sys.stderr, flush=True)
                rows.append(bench_namespaces(shape, n, args.repeat, not args.no_cli, args.memory))
    finally:
        observer_down()
    for n in [int(s) for s in args.containers.split(",") if s.strip()]:
        print(f"... {n} containers", file=sys.stderr, flush=True)
        crows.append(bench_containers(n, args.image, args.repeat))
    if args.catalogue:
        catalogue = bench_catalogue([1, 4])
    if rows:
        print_namespace_table(rows)
    if crows:
        print_container_table(crows)
    if catalogue:
        for j, (wall, rc) in catalogue.items():
            print(f"lab run --all --jobs {j}: {wall:.1f} s (exit {rc})")
        if 1 in catalogue and 4 in catalogue:
            print(f"speed-up with --jobs 4: {catalogue[1][0] / catalogue[4][0]:.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "namespaces": [asdict(r) for r in rows],
                                         "containers": [asdict(r) for r in crows],
                                         "catalogue": {str(k): v for k, v in catalogue.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
