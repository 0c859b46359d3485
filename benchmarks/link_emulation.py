"""Link emulation figures, in one run (docs/PERFORMANCE.md, issue 12): how exact and how fast impairments are.

    .venv/bin/python benchmarks/link_emulation.py                  # the emulator lab doctor names (auto)
    .venv/bin/python benchmarks/link_emulation.py --emulator lab   # lab's own, even where netem exists
    .venv/bin/python benchmarks/link_emulation.py --nodes 50       # a smaller chain for the up figure

It builds a two-node lab (a ↔ b, one veth) and prints:

- delay accuracy: the median ping RTT with ``delay`` on a's egress, less the unimpaired median,
  against what was asked (5–200 ms; the target is ±10 %);
- jitter: the spread of RTTs (5th to 95th percentile) against a uniform ±jitter's (target ±25 %);
- loss, duplicate and reorder rates over 1,000 numbered UDP datagrams, 1 ms apart, against the
  parameters (target ±5 points; a datagram counts as reordered when it arrived sooner than the delay);
- TCP throughput (iperf, 5 s) with 10 ms of delay against the unimpaired path in the same run;
- ``lab up`` of a chain of N routers whose every link is impaired, against the same chain unimpaired.

Everything stays inside the lab's namespaces; every run is bounded in count and time.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from topogen import chain  # noqa: E402

from lab import deploy  # noqa: E402
from lab.net import faults, impair  # noqa: E402
from lab.state import Journal, read_lab_info  # noqa: E402
from lab.topology import load_topology_text  # noqa: E402

PAIR = """name: bench-em
nodes:
  a: {interfaces: {eth0: {address: 10.231.0.1/30}}}
  b: {interfaces: {eth0: {address: 10.231.0.2/30}}}
links:
  - [a:eth0, b:eth0]
"""
UDP = r"""
import socket, sys, time, json
if sys.argv[1] == "recv":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 5099)); s.settimeout(2.0)
    got = []
    try:
        while True:
            data = s.recv(64); got.append((int(data[:8]), float(data[8:]), time.monotonic()))
    except socket.timeout:
        pass
    print(json.dumps(got))
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); start = time.monotonic()
    for i in range(1000):
        while time.monotonic() < start + i * 0.001:
            pass
        s.sendto(b"%08d%.6f" % (i, time.monotonic()), (sys.argv[2], 5099))
"""


def ns(node: str) -> list[str]:
    return ["ip", "netns", "exec", f"lab-bench-em.{node}"]


def rtts(count: int, interval: float = 0.05) -> list[float]:
    out = subprocess.run([*ns("a"), "ping", "-n", "-c", str(count), "-i", str(interval), "10.231.0.2"],
                         capture_output=True, text=True, timeout=120).stdout
    return [float(line.split("time=")[1].split()[0]) for line in out.splitlines() if "time=" in line]


def with_impairment(emulator: str, **keys: str) -> faults.Fault:
    ep = faults.endpoint(read_lab_info("bench-em"), "a:eth0")
    return faults.apply(Journal("bench-em"), impair.impair(ep, impair.spec_from(keys), "out", emulator))


def clear() -> None:
    faults.clear(Journal("bench-em"))


def udp_rates(emulator: str) -> dict[str, float]:
    with_impairment(emulator, delay="10ms", loss="10%", duplicate="5%", reorder="10%")
    receiver = subprocess.Popen([*ns("b"), sys.executable, "-c", UDP, "recv"], stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    subprocess.run([*ns("a"), sys.executable, "-c", UDP, "send", "10.231.0.2"], check=True, timeout=30)
    import json

    got = json.loads(receiver.communicate(timeout=30)[0])
    clear()
    seqs = [seq for seq, _, _ in got]
    unique = set(seqs)
    early = sum(1 for _, sent, arrived in got if arrived - sent < 0.005)
    return {"loss": 100 * (1000 - len(unique)) / 1000, "duplicate": 100 * (len(seqs) - len(unique)) / len(unique),
            "reorder": 100 * early / len(seqs)}


def iperf() -> float:
    server = subprocess.Popen([*ns("b"), "iperf", "-s", "-p", "5201"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        out = subprocess.run([*ns("a"), "iperf", "-c", "10.231.0.2", "-p", "5201", "-t", "5", "-f", "m"],
                             capture_output=True, text=True, timeout=60).stdout
        return float(out.strip().splitlines()[-1].split()[-2])
    finally:
        server.terminate()
        server.wait(timeout=10)


def up_seconds(text: str, emulator: str) -> float:
    topo, smap = load_topology_text(text, "bench.yaml")
    started = time.perf_counter()
    deploy.up(topo, smap.text, None, emulator=emulator)
    took = time.perf_counter() - started
    deploy.down(topo.name)
    return took


def impaired_chain(n: int) -> str:
    """The chain with every link impaired (1 ms each way)."""
    lines = []
    for line in chain("bench-emc", n).splitlines():
        if line.startswith("  - [") and ":" in line:
            ends = line.strip()[2:]
            line = f"  - {{ends: {ends}, impair: {{delay: 1ms}}}}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emulator", default="auto", choices=["auto", "netem", "lab"])
    parser.add_argument("--nodes", type=int, default=200, help="routers in the chain of the up figure")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each lab up, interleaved")
    args = parser.parse_args()
    emulator = impair.choose(args.emulator)
    print(f"emulator: {emulator}")
    topo, smap = load_topology_text(PAIR, "pair.yaml")
    deploy.up(topo, smap.text, None)
    try:
        base = statistics.median(rtts(30))
        print(f"unimpaired RTT median {base:.3f} ms")
        print("delay asked | RTT median − unimpaired | error")
        for delay in (5, 20, 50, 200):
            with_impairment(emulator, delay=f"{delay}ms")
            got = statistics.median(rtts(30 if delay < 200 else 15)) - base
            clear()
            print(f"{delay:>8} ms | {got:>10.2f} ms | {100 * (got - delay) / delay:+.1f} %")
        with_impairment(emulator, delay="20ms", jitter="5ms")
        sample = sorted(rtts(300, 0.01))
        clear()
        spread = sample[int(0.95 * len(sample))] - sample[int(0.05 * len(sample))]
        print(f"jitter ±5 ms: 5–95 % spread {spread:.2f} ms against 9.00 ms ({100 * (spread - 9) / 9:+.1f} %)")
        rates = udp_rates(emulator)
        print("over 1,000 datagrams: " + ", ".join(
            f"{k} {v:.1f} % (asked {asked} %)" for (k, v), asked in zip(rates.items(), (10, 5, 10), strict=True)))
        plain = iperf()
        with_impairment(emulator, delay="10ms")
        delayed = iperf()
        clear()
        print(f"TCP: unimpaired {plain:.0f} Mbit/s, with 10 ms delay {delayed:.0f} Mbit/s")
    finally:
        deploy.down("bench-em")
    plain, impaired = [], []
    for _ in range(args.repeat):  # interleaved, so a busy moment of the machine hits both
        plain.append(up_seconds(chain("bench-emc", args.nodes), emulator))
        impaired.append(up_seconds(impaired_chain(args.nodes), emulator))
    plain_up, impaired_up = statistics.median(plain), statistics.median(impaired)
    print(f"lab up of a {args.nodes}-router chain ({2 * (args.nodes - 1)} impaired directions), median of "
          f"{args.repeat}: unimpaired {plain_up:.2f} s, every link impaired {impaired_up:.2f} s, "
          f"ratio {impaired_up / plain_up:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
