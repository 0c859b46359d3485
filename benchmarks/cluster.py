"""Cluster figures, side by side in one run (docs/PERFORMANCE.md): what spreading a lab over machines costs.

    .venv/bin/python benchmarks/cluster.py                 # 30 containers, 3 machines, 3 repeats
    .venv/bin/python benchmarks/cluster.py --nodes 10 --repeat 1

It makes its own simulated cluster (``lab cluster local up 3``), removes it at the end, and prints:

- ``lab up`` / ``lab down`` of an N-container LAN spread over the 3 machines, against the same lab
  on this machine's own engine (``lab up`` without ``--cluster``): the ratio is the figure;
- TCP throughput between two nodes whose link crosses machines (VXLAN), against the same pair
  on one machine of the cluster (a veth): iperf (the machine's, in the nodes' namespaces: the local
  cluster shares this kernel), both pairs up at once and measured in turns, with lab's
  capture-faithful settings and with offloads on;
- the idle memory (RSS) of the cluster's own processes (dockerd, containerd), per machine.

Every run is bounded: a fixed number of bytes, a fixed number of repeats, all inside the lab.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from topogen import lan  # noqa: E402

from lab import deploy, procs, state  # noqa: E402
from lab.cluster import local  # noqa: E402
from lab.cluster.deploy import ClusterMachines  # noqa: E402
from lab.cluster.model import load_cluster  # noqa: E402
from lab.topology import load_topology_text  # noqa: E402

CLUSTER = "bench"
IPERF_SECONDS = 5
PLACEMENTS: list[str] = []  # nodes per machine, for each spread up
PAIR = """name: {name}
nodes:
  a:
    machine: m1
    interfaces: {{eth0: {{address: 10.230.0.1/30}}}}
  b:
    machine: {where}
    interfaces: {{eth0: {{address: 10.230.0.2/30}}}}
links:
  - [a:eth0, b:eth0]
"""


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def up_down(text: str, cluster) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    topo, smap = load_topology_text(text, "bench.yaml")
    if cluster is None:
        up = timed(lambda: deploy.up(topo, smap.text, None))
    else:
        up = timed(lambda: deploy.up(topo, smap.text, None, where=ClusterMachines(cluster, smap, spread=True)))
    if cluster is not None:  # where the engine put them
        machines = [spec["machine"] for spec in state.read_lab_info(topo.name)["nodes"].values()]
        PLACEMENTS.append("/".join(str(machines.count(m)) for m in sorted(set(machines))))
    down = timed(lambda: deploy.down(topo.name))
    return up, down


def throughput(cluster, repeat: int) -> dict[str, dict[str, list[float]]]:  # type: ignore[no-untyped-def]
    """Mbit/s from a (on m1) to b, for the pair on one machine (b on m1, a veth) and the pair across
    machines (b on m2, VXLAN), both up at once and measured in turns (same, across, same, ...), so that
    a drift of the machine's load touches both alike: ``repeat`` bounded iperf runs of IPERF_SECONDS
    each, first with lab's capture-faithful settings (gso_max_segs 1, no TX checksum offload, no GRO:
    every frame as the wire carries it), then with the kernel's offloads back on."""
    pairs = {"same": "m1", "across": "m2"}
    for where in pairs.values():
        topo, smap = load_topology_text(PAIR.format(name=f"tp-{where}", where=where), "pair.yaml")
        deploy.up(topo, smap.text, None, where=ClusterMachines(cluster, smap))
    try:
        pids = {}
        for kind, where in pairs.items():
            info = state.read_lab_info(f"tp-{where}")
            pids[kind] = {n: str(info["nodes"][n]["pid"]) for n in ("a", "b")}  # the local cluster shares this kernel

        def in_turns() -> dict[str, list[float]]:
            runs: dict[str, list[float]] = {kind: [] for kind in pairs}
            for _ in range(repeat):
                for kind in pairs:
                    runs[kind].append(iperf(pids[kind]))
            return runs

        figures = {"faithful": in_turns()}
        for pair in pids.values():
            for pid in pair.values():
                subprocess.run(["nsenter", "-t", pid, "-n", "ip", "link", "set", "eth0", "gso_max_segs", "65535"],
                               check=True)
                subprocess.run(["nsenter", "-t", pid, "-n", "ethtool", "-K", "eth0", "tx", "on", "gro", "on"],
                               capture_output=True)
        figures["offloads on"] = in_turns()
        return figures
    finally:
        for where in pairs.values():
            deploy.down(f"tp-{where}")


def iperf(pids: dict[str, str]) -> float:
    """One iperf (2) run of IPERF_SECONDS from node a to node b, in their namespaces; Mbit/s."""
    server = subprocess.Popen(["nsenter", "-t", pids["b"], "-n", "iperf", "-s", "-p", "5201"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        out = subprocess.run(["nsenter", "-t", pids["a"], "-n", "iperf", "-c", "10.230.0.2", "-p", "5201",
                              "-t", str(IPERF_SECONDS), "-f", "m"], capture_output=True, text=True, timeout=60).stdout
    finally:
        server.kill()
        server.wait()
    found = re.findall(r"([\d.]+) Mbits/sec", out)
    if not found:
        raise RuntimeError(f"no iperf figure: {out!r}")
    return float(found[-1])


def idle_memory_mib() -> dict[str, float]:
    """RSS of every process in each machine's namespace (its dockerd, containerd and their helpers)."""
    out = {}
    import os

    for machine in local.machine_names(3):
        st = os.stat(f"/run/netns/{local.netns_name(CLUSTER, machine)}")
        total = 0
        for pid in procs.in_namespaces({(st.st_dev, st.st_ino)}):
            try:
                with open(f"/proc/{pid}/status") as f:
                    rss = next(line for line in f if line.startswith("VmRSS:"))
                total += int(rss.split()[1])
            except (OSError, StopIteration):
                continue
        out[machine] = total / 1024
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--iperf-repeat", type=int, default=5)
    args = ap.parse_args()
    local.down(CLUSTER)
    start = time.perf_counter()
    path = local.up(3, CLUSTER)
    made = time.perf_counter() - start
    try:
        cluster = load_cluster(path)
        time.sleep(5)
        memory = idle_memory_mib()
        text = lan("bclan", args.nodes, kind="container", image="host")
        up_down(text, cluster)  # once to copy the images to the machines: not measured
        single, spread = [], []
        for _ in range(args.repeat):
            single.append(up_down(text, None))
            spread.append(up_down(text, cluster))
        tcp = throughput(cluster, args.iperf_repeat)
    finally:
        local.down(CLUSTER)
    up1, down1 = statistics.median(u for u, _ in single), statistics.median(d for _, d in single)
    up3, down3 = statistics.median(u for u, _ in spread), statistics.median(d for _, d in spread)
    print(f"local cluster of 3 machines made in {made:.2f} s")
    print(f"\n| {args.nodes} containers, median of {args.repeat} | one engine | 3 machines | ratio |")
    print("|---|---|---|---|")
    print(f"| lab up | {up1:.2f} s | {up3:.2f} s | {up3 / up1:.2f}x |")
    print(f"| lab down | {down1:.2f} s | {down3:.2f} s | {down3 / down1:.2f}x |")
    print(f"\nnodes per machine, each spread up: {', '.join(PLACEMENTS)}")
    print(f"\n| TCP, iperf {IPERF_SECONDS} s, median of {args.iperf_repeat} in turns (range) | same machine (veth) "
          f"| across machines (VXLAN) | ratio |")
    print("|---|---|---|---|")
    for setting, runs in tcp.items():
        same, across = statistics.median(runs["same"]), statistics.median(runs["across"])
        print(f"| {setting} | {same:.0f} Mbit/s ({min(runs['same']):.0f}–{max(runs['same']):.0f}) | "
              f"{across:.0f} Mbit/s ({min(runs['across']):.0f}–{max(runs['across']):.0f}) | {across / same:.2f} |")
    print("\n| machine | idle RSS of its engine (dockerd, containerd, helpers) |")
    print("|---|---|")
    for machine, mib in memory.items():
        print(f"| {machine} | {mib:.0f} MiB |")
    print(f"| all 3 | {sum(memory.values()):.0f} MiB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
