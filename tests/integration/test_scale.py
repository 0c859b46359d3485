"""A lab of 1,000+ namespace nodes comes up, carries a ping end to end, and goes away without a trace.

The topology is generated: a LAN of 1,000 hosts plus its router (1,001 bridge
ports, so the bridge is sharded and the far hosts sit behind trunks), a
point-to-point link to a second router, and a small LAN behind that. The
ping crosses the trunk between bridge shards and both routers.

This is a correctness test at scale, not a benchmark: it checks what exists,
never how fast (benchmarks/run.py prints the times). An alarm bounds it so a
hang fails in well under two minutes instead of stalling the suite.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import deploy, state
from lab.net import netns
from lab.net.rtnl import Rtnl
from lab.nodes import node_from_info
from lab.plan import BRIDGE_PORTS_PER_SHARD, make_plan
from lab.topology import load_topology_text

pytestmark = pytest.mark.root
LAB = "scale1k"
WEST_HOSTS = 1000
EAST_HOSTS = 10
BOUND_SECONDS = 110


def topology() -> str:
    lines = [
        f"name: {LAB}",
        "networks:",
        "  west: {subnet: 10.210.0.0/16}",
        "  east: {subnet: 10.220.0.0/24}",
        "nodes:",
        "  r1:",
        "    kind: router",
        "    interfaces: {eth0: {network: west, address: 10.210.0.1/16}, eth1: {address: 10.230.0.1/30}}",
        "    routes: [{to: 10.220.0.0/24, via: 10.230.0.2}]",
        "  r2:",
        "    kind: router",
        "    interfaces: {eth0: {address: 10.230.0.2/30}, eth1: {network: east, address: 10.220.0.1/24}}",
        "    routes: [{to: 10.210.0.0/16, via: 10.230.0.1}]",
    ]
    for i in range(1, WEST_HOSTS + 1):
        lines.append(f"  w{i}: {{interfaces: {{eth0: {{network: west}}}}, routes: [{{to: default, via: 10.210.0.1}}]}}")
    for i in range(1, EAST_HOSTS + 1):
        lines.append(f"  e{i}: {{interfaces: {{eth0: {{network: east}}}}, routes: [{{to: default, via: 10.220.0.1}}]}}")
    lines += ["links:", "  - [r1:eth1, r2:eth0]"]
    return "\n".join(lines) + "\n"


def lab_namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"lab-{LAB}.")]


@pytest.fixture
def bounded() -> Iterator[None]:
    """Fail (not hang) if the test runs past BOUND_SECONDS."""
    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"the 1,000-node lab took more than {BOUND_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(BOUND_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def few_open_files() -> Iterator[None]:
    """The usual default soft limit of 1,024 open files: ``up`` must raise its own limit to fit the lab."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, soft), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_thousand_node_lab_comes_up_pings_end_to_end_and_goes_away(bounded, few_open_files):
    text = topology()
    topo, _ = load_topology_text(text, f"{LAB}.yaml")
    plan = make_plan(topo)
    west_bridges = [b for b in plan.bridges if b.network == "west"]
    assert len(west_bridges) == -(-(WEST_HOSTS + 1) // BRIDGE_PORTS_PER_SHARD) > 1  # the LAN is sharded
    try:
        deploy.up(topo, text, f"{LAB}.yaml")
        assert len(lab_namespaces()) == WEST_HOSTS + EAST_HOSTS + 2 + 1  # nodes and the switch

        info = state.read_lab_info(LAB)
        first, last, far = (node_from_info(info, n) for n in ("w1", f"w{WEST_HOSTS}", f"e{EAST_HOSTS}"))
        # w1 hangs off the first shard and w1000 off the last: they meet through the trunks.
        sw = subprocess.run(["ip", "-n", f"lab-{LAB}._sw", "-o", "link", "show", "master", west_bridges[-1].name],
                            capture_output=True, text=True, check=True).stdout
        assert "w1000-eth0" in sw and "w1-eth0" not in sw
        r = first.exec(["ping", "-c1", "-W3", str(last.address())])
        assert r.returncode == 0, r.stdout + r.stderr
        # From the far end of the second shard, across the trunk and both routers, to the other LAN.
        r = last.exec(["ping", "-c1", "-W3", str(far.address())])
        assert r.returncode == 0, r.stdout + r.stderr
        assert "ttl=62" in r.stdout  # two routed hops
        r = far.exec(["ping", "-c1", "-W3", f"w{WEST_HOSTS}"])  # by name: the shared /etc/netns hosts file
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        report = deploy.down(LAB)
    assert len([x for x in report.removed if x.startswith("namespace ")]) == WEST_HOSTS + EAST_HOSTS + 3
    assert lab_namespaces() == []
    assert not state.lab_dir(LAB).exists()
    etc = Path("/etc/netns")
    assert not etc.exists() or not [p for p in os.listdir(etc) if p.startswith(f"lab-{LAB}.")]
    assert deploy.down(LAB).removed == []


# --- growth --------------------------------------------------------------------------------

GROWTH = (750, 3000)  # hosts on one LAN: the per-host cost of up at the second within 1.3x of the first
GROWTH_LAB = "scale-growth"


def lan_text(n: int) -> str:
    lines = [f"name: {GROWTH_LAB}", "networks:", "  lan: {subnet: 10.240.0.0/16}", "nodes:"]
    lines += [f"  h{i}: {{interfaces: {{eth0: {{network: lan}}}}}}" for i in range(1, n + 1)]
    return "\n".join(lines) + "\n"


def cpu_seconds() -> float:
    """CPU time of this process, its threads and the kernel's work on their behalf: what a busy
    machine's other processes do not add to, unlike the wall clock."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def until_destroyed(witness: str, probe_fd: int) -> None:
    """Wait until the kernel has destroyed the namespace holding the witness's peer (``down`` only
    releases it; the kernel tears it down later, and a build meanwhile would pay for that)."""
    with netns.entered_fd(probe_fd):
        while True:
            try:
                socket.if_nametoindex(witness)
            except OSError:
                return
            time.sleep(0.01)  # the fixture's alarm bounds this


def timed_up(n: int, probe_fd: int) -> float:
    """CPU seconds of ``up`` of a LAN of ``n`` hosts; the lab is down and destroyed on return."""
    text = lan_text(n)
    topo, _ = load_topology_text(text, f"{GROWTH_LAB}.yaml")
    before = cpu_seconds()
    deploy.up(topo, text, f"{GROWTH_LAB}.yaml")
    took = cpu_seconds() - before
    with netns.entered_fd(probe_fd), Rtnl("probe") as rtnl:  # a veth into the lab's last host: a witness
        last = os.open(netns.netns_path(f"lab-{GROWTH_LAB}.h{n}"), os.O_RDONLY)
        try:
            rtnl.add_veth("witness", 0, "witness", 0, last)
            rtnl.flush()
        finally:
            os.close(last)
    deploy.down(GROWTH_LAB)
    until_destroyed("witness", probe_fd)
    return took


@pytest.fixture
def probe() -> Iterator[int]:
    """A namespace of the test's own, held by an fd alone (it goes when the fd is closed)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        assert netns._libc.unshare(netns.CLONE_NEWNET) == 0
        fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    finally:
        assert netns._libc.setns(home, netns.CLONE_NEWNET) == 0
        os.close(home)
    try:
        yield fd
    finally:
        os.close(fd)


def test_up_costs_the_same_per_host_at_3000_hosts_as_at_750(bounded, probe):
    """Growth, not a time: the CPU cost of ``up`` per host at 3,000 hosts is within 1.3x the cost at 750,
    best of three each, measured here in one run (benchmarks/scale.py measures 10,000 hosts)."""
    deploy.down(GROWTH_LAB)
    small, big = GROWTH
    per_host = {n: min(timed_up(n, probe) for _ in range(3)) / n for n in GROWTH}
    shown = {n: f"{per_host[n] * 1e3:.3f} ms" for n in GROWTH}
    print(f"CPU per host of up: {shown}")
    assert per_host[big] <= 1.3 * per_host[small], f"CPU per host: {shown}"
