"""Ten thousand nodes on one machine: ``lab up``/``lab down`` against ``ip netns add``, and how they grow.

    .venv/bin/python benchmarks/scale.py                          # 10,000 hosts, 2,000 → 8,000, routed 10,000
    .venv/bin/python benchmarks/scale.py --lan 3000 --growth 750,3000 --routed 0
    .venv/bin/python benchmarks/scale.py --raise-neigh                # room in the ARP table for the routed pings

Run as root, on an idle machine. In one run, side by side:

- **one LAN of N hosts** (``--lan``): ``ip -batch`` of N ``netns add`` (the kernel's own
  cost of N namespaces, no links), then ``lab up -q`` of the LAN and ``lab down``, whole
  CLI (interpreter start, imports, loading), with the peak RSS of each from wait4(2);
- **growth** (``--growth A,B``): ``lab up`` of a LAN of A and of B hosts; the ratio of the
  times and the exponent k of time ∝ N^k between them;
- **a routed lab** (``--routed N``): a chain of routers, each with a LAN of 499 hosts
  (benchmarks/topogen.py ``routed``), up; then every host pings a host on the farthest LAN,
  by the name its own /etc/hosts view gives; then down. Its ~20,000 ARP entries are counted
  over all namespaces together, past the usual gc_thresh3 of 1,024: ``--raise-neigh`` raises
  the machine's limits for that part and puts them back.

Between measurements the namespaces are waited for until the kernel has destroyed them
(benchmarks/run.py's witnesses), so no measurement shares the machine with a teardown.
It prints; it never asserts a time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import selectors
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import run as bench  # noqa: E402
import topogen  # noqa: E402

from lab import state  # noqa: E402
from lab.net import netns  # noqa: E402

PING_BATCH = 256  # namespaces pinging at once (one raw socket each)
NEIGH = "/proc/sys/net/ipv4/neigh/default/gc_thresh"


def neighbour_limits() -> list[int]:
    return [int(Path(f"{NEIGH}{i}").read_text()) for i in (1, 2, 3)]


def set_neighbour_limits(values: list[int]) -> None:
    for i, value in zip((1, 2, 3), values, strict=True):
        Path(f"{NEIGH}{i}").write_text(str(value))


def ip_netns_add(n: int) -> float:
    """Seconds for ``ip -batch`` to add ``n`` namespaces; they are deleted (and waited for) after."""
    names = [f"ipb-scale-{i}" for i in range(n)]
    t = time.perf_counter()
    subprocess.run(["ip", "-batch", "-"], input="".join(f"netns add {x}\n" for x in names), text=True, check=True)
    took = time.perf_counter() - t
    ends = bench.add_witnesses(names)
    subprocess.run(["ip", "-batch", "-"], input="".join(f"netns delete {x}\n" for x in names), text=True, check=True)
    bench.wait_gone(ends, time.perf_counter())
    return took


def lab_up(text: str, lab: str) -> tuple[float, float]:
    """(seconds, peak RSS MB) of ``lab up -q`` of ``text``."""
    with tempfile.TemporaryDirectory(prefix="lab-scale-") as tmp:
        path = Path(tmp) / f"{lab}.yaml"
        path.write_text(text)
        return bench.run_measured([bench.LAB, "up", "-q", str(path)])


def lab_down(lab: str) -> tuple[float, float]:
    """(seconds, peak RSS MB) of ``lab down``; then waits until the kernel destroyed the namespaces."""
    spaces = sorted(n["netns"] for n in state.read_lab_info(lab)["nodes"].values())
    ends = bench.add_witnesses(spaces)
    t = time.perf_counter()
    result = bench.run_measured([bench.LAB, "down", lab])
    bench.wait_gone(ends, t)
    return result


def _echo(ident: int) -> bytes:
    header = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
    total = sum(struct.unpack("!4H", header))
    total = (total >> 16) + (total & 0xFFFF)
    return struct.pack("!BBHHH", 8, 0, ~(total + (total >> 16)) & 0xFFFF, ident, 1)


def _hosts_view(ns: str, cache: dict[str, dict[str, str]]) -> dict[str, str]:
    """Name → address as the node's programs resolve it (``ip netns exec`` mounts /etc/netns/NS/hosts)."""
    real = os.path.realpath(f"/etc/netns/{ns}/hosts")
    if real not in cache:
        table: dict[str, str] = {}
        for line in Path(real).read_text().splitlines():
            parts = line.split()
            for name in parts[1:]:
                table.setdefault(name, parts[0])
        cache[real] = table
    return cache[real]


def reach_far_hosts(lab: str) -> tuple[int, int, float]:
    """Every host of a routed lab pings, by name, the first host of the LAN farthest from its own.

    Returns (answered, asked, seconds). In-process: a raw ICMP socket opened inside each
    namespace, PING_BATCH of them at a time, each waiting up to 3 s for its echo reply.
    """
    info = state.read_lab_info(lab)
    lans = sorted({int(n[1:].split("h")[0]) for n in info["nodes"] if n.startswith("l")})
    last = lans[-1]
    views: dict[str, dict[str, str]] = {}
    asks = []
    for name, node in info["nodes"].items():
        if name.startswith("l"):
            lan = int(name[1:].split("h")[0])
            far = f"l{last if lan < (last + 1) / 2 else 0}h1"
            asks.append((node["netns"], _hosts_view(node["netns"], views)[far]))
    answered = 0
    t = time.perf_counter()
    for start in range(0, len(asks), PING_BATCH):
        batch = asks[start:start + PING_BATCH]
        sel = selectors.DefaultSelector()
        for k, (ns, address) in enumerate(batch):
            with netns.entered(netns.netns_path(ns)):
                sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
            sock.setblocking(False)
            sock.sendto(_echo(k), (address, 0))
            sel.register(sock, selectors.EVENT_READ, (k, address))
        deadline = time.monotonic() + 3
        while sel.get_map() and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=max(0.0, deadline - time.monotonic())):
                k, address = key.data
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                data, (source, _) = sock.recvfrom(2048)
                ihl = (data[0] & 0x0F) * 4
                kind, _, _, ident, _ = struct.unpack("!BBHHH", data[ihl:ihl + 8])
                if kind == 0 and ident == k and source == address:
                    answered += 1
                    sel.unregister(sock)
                    sock.close()
        for key in list(sel.get_map().values()):
            sel.unregister(key.fileobj)
            key.fileobj.close()  # type: ignore[union-attr]
        sel.close()
    return answered, len(asks), time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lan", type=int, default=10_000, help="hosts on one LAN (0: skip)")
    ap.add_argument("--growth", default="2000,8000", help="two LAN sizes A,B (empty: skip)")
    ap.add_argument("--routed", type=int, default=10_000, help="nodes of the routed lab (0: skip)")
    ap.add_argument("--raise-neigh", action="store_true",
                    help="raise the machine's ARP table limits (gc_thresh1/2/3) for the routed lab, restored after")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("benchmarks need root (namespaces): .venv/bin/python benchmarks/scale.py", file=sys.stderr)
        return 2
    netns.ensure_netns_dir()
    figures: dict[str, object] = {"machine": bench.machine()}
    print("machine: " + ", ".join(f"{k} {v}" for k, v in bench.machine().items()))
    bench.observer_up()
    try:
        if args.lan:
            n = args.lan
            print(f"... ip netns add ×{n}", file=sys.stderr, flush=True)
            base = ip_netns_add(n)
            print(f"... lab up/down, {n} hosts on one LAN", file=sys.stderr, flush=True)
            up, up_rss = lab_up(topogen.lan("scale-lan", n), "scale-lan")
            down, down_rss = lab_down("scale-lan")
            figures["lan"] = {"n": n, "ip_netns_add": base, "up": up, "down": down, "up_rss_mb": up_rss,
                              "down_rss_mb": down_rss, "up_ratio": up / base, "down_ratio": down / base}
            print(f"{n} hosts, one LAN: ip netns add {base:.2f} s | lab up {up:.2f} s ({up / base:.2f}x), "
                  f"peak RSS {up_rss:.0f} MB | lab down {down:.2f} s ({down / base:.2f}x), "
                  f"peak RSS {down_rss:.0f} MB")
        if args.growth:
            a, b = (int(x) for x in args.growth.split(","))
            times = {}
            for n in (a, b):
                print(f"... lab up/down, {n} hosts on one LAN", file=sys.stderr, flush=True)
                times[n], _ = lab_up(topogen.lan(f"scale-g{n}", n), f"scale-g{n}")
                lab_down(f"scale-g{n}")
            ratio = times[b] / times[a]
            exponent = math.log(ratio) / math.log(b / a)
            figures["growth"] = {"sizes": [a, b], "up": [times[a], times[b]], "ratio": ratio, "exponent": exponent}
            print(f"growth: lab up {a} hosts {times[a]:.2f} s, {b} hosts {times[b]:.2f} s: "
                  f"{ratio:.2f}x for {b / a:g}x the hosts (exponent {exponent:.2f})")
        if args.routed:
            print(f"... routed lab of about {args.routed} nodes", file=sys.stderr, flush=True)
            text = topogen.routed("scale-routed", args.routed)
            # ARP entries, counted over all namespaces together: each host's gateway, and each router's hosts
            limits, entries = neighbour_limits(), 2 * args.routed + 1024
            if limits[2] < entries and not args.raise_neigh:
                print(f"note: gc_thresh3={limits[2]} holds fewer ARP entries than the routed lab's pings need "
                      f"(about {entries}): replies are dropped past it. --raise-neigh raises it for the run "
                      f"(see lab doctor --nodes {args.routed})", file=sys.stderr)
            if args.raise_neigh:
                set_neighbour_limits([max(limits[0], entries // 4), max(limits[1], entries // 2),
                                      max(limits[2], entries)])
            try:
                up, up_rss = lab_up(text, "scale-routed")
                nodes = len(state.read_lab_info("scale-routed")["nodes"])
                try:
                    answered, asked, ping_s = reach_far_hosts("scale-routed")
                finally:
                    down, _ = lab_down("scale-routed")
            finally:
                set_neighbour_limits(limits)
            figures["routed"] = {"nodes": nodes, "up": up, "up_rss_mb": up_rss, "down": down,
                                 "answered": answered, "asked": asked, "ping_seconds": ping_s}
            print(f"routed, {nodes} nodes: lab up {up:.2f} s (peak RSS {up_rss:.0f} MB) | every host pings the "
                  f"farthest LAN by name: {answered}/{asked} answered in {ping_s:.1f} s | lab down {down:.2f} s")
    finally:
        bench.observer_down()
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
