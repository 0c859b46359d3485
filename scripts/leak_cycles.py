#!/usr/bin/env python3
"""Leak cycles: bring a lab up and down N times in one process; nothing may accumulate.

Counted before and after (after one warm-up cycle): this process's open file
descriptors (less the idle connections Docker's client keeps: docker-py opens a
connection pool per URL, up to 25, and URLs name each new container, so that
number grows over the first cycles and then stays) and threads, its mount table's lab mounts, the machine's
namespaces (/run/netns) and interfaces, and the Docker containers labelled as
the lab's. Prints one line per 10 cycles and exits 1 if anything grew.

    sudo .venv/bin/python scripts/leak_cycles.py                    # 100 cycles, namespace lab
    sudo .venv/bin/python scripts/leak_cycles.py --containers -n 100  # topologies/trust-mix.yaml

tests/integration/test_trust.py runs the same check (100 namespace cycles, 5 with a container).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab import deploy  # noqa: E402
from lab.topology import load_topology_text  # noqa: E402

NAMESPACE_LAB = """
name: leak-ns
networks: {lan: {subnet: 10.9.0.0/24}}
nodes:
  a: {interfaces: {eth0: {network: lan}, eth1: {address: 10.0.78.1/30}}, sysctls: {net.ipv4.tcp_syn_retries: 2}}
  b: {interfaces: {eth0: {network: lan}, eth1: {address: 10.0.78.2/30}}}
  c: {interfaces: {eth0: {network: lan}}}
links: [[a:eth1, b:eth1]]
"""


def docker_idle_connections() -> int:
    """Connections idle in the pools of the Docker clients this process holds (lab's and the counting's)."""
    from crash_trials import _docker

    from lab.nodes import container

    clients = {id(c): c for c in [container._client, *_docker] if c is not None}  # often one and the same
    idle = 0
    for client in clients.values():
        for adapter in client.api.adapters.values():  # type: ignore[attr-defined]
            for key in adapter.pools.keys():
                queue = getattr(adapter.pools.get(key), "pool", None)
                for conn in list(queue.queue) if queue is not None else []:
                    sock = getattr(conn, "sock", None)
                    idle += sock is not None and sock.fileno() >= 0
    return idle


def counts(lab: str) -> dict[str, int]:
    from crash_trials import lab_containers, lab_mounts, lab_namespaces, root_links

    mounts = len(lab_mounts(lab))
    return {
        "fds": len(os.listdir("/proc/self/fd")) - docker_idle_connections(),
        "threads": len(os.listdir("/proc/self/task")),
        "lab mounts": mounts,
        "lab namespaces": len(lab_namespaces(lab)),
        "machine interfaces": len(root_links()),
        "lab containers": len(lab_containers(lab)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--cycles", type=int, default=100)
    parser.add_argument("--containers", action="store_true", help="use topologies/trust-mix.yaml (a container node)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("leak_cycles: run as root (sudo)", file=sys.stderr)
        return 3
    sys.path.insert(0, str(ROOT / "scripts"))
    if args.containers:
        text = (ROOT / "topologies" / "trust-mix.yaml").read_text().replace("name: trust-mix", "name: leak-ctr", 1)
    else:
        text = NAMESPACE_LAB
    topo, _ = load_topology_text(text, "leak.yaml")
    deploy.up(topo, text)  # warm-up: imports, images, connection pools
    deploy.down(topo.name)
    counts(topo.name)  # the counting's own Docker connection opens here, not between before and after
    before = counts(topo.name)
    start = time.monotonic()
    for i in range(1, args.cycles + 1):
        deploy.up(topo, text)
        deploy.down(topo.name)
        if i % 10 == 0 or i == args.cycles:
            now = counts(topo.name)
            print(f"{i:4} cycles {time.monotonic() - start:6.1f} s  " + "  ".join(f"{k}={v}" for k, v in now.items()),
                  flush=True)
    after = counts(topo.name)
    grew = {k: (before[k], after[k]) for k in before if after[k] != before[k]}
    print(f"{args.cycles} up/down cycles of lab {topo.name}: " +
          ("nothing grew" if not grew else "CHANGED " + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in grew.items())))
    return 1 if grew else 0


if __name__ == "__main__":
    sys.exit(main())
