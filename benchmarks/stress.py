"""The stress test's figures: connections held, requests per second, connect-latency percentiles.

    .venv/bin/python benchmarks/stress.py                     # 1,000 connections, as the catalogue, and flat out
    .venv/bin/python benchmarks/stress.py --connections 2000 --load 10

Run as root, on an idle machine. It runs ``lab run stress-test-webserver`` twice: with the catalogue's
think time (1 s between a response and the next request) and with none (a request always in flight),
and prints, for the book's ``listen(5)`` and for a backlog that holds the burst, what the load
generator measured (its own figures: connect latency, requests answered per second) and what ss
showed held on each end a second before the load ended. It prints; it never asserts a time.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOTE = re.compile(r"listen\((?P<backlog>\d+)\), (?P<n>\d+) clients: held (?P<client>\d+) \(client\) (?P<server>\d+) "
                  r"\(server\); connect ms p50 (?P<p50>\S+) p90 (?P<p90>\S+) p99 (?P<p99>\S+) max (?P<max>\S+); "
                  r"(?P<answered>\d+) of (?P<sent>\d+) requests answered, (?P<rate>\S+)/s")


def run_once(connections: int, load: int, think: float, out: Path) -> tuple[str, list[dict[str, str]]]:
    argv = [sys.executable, "-m", "lab", "run", "stress-test-webserver", "-q", "--out", str(out),
            "-p", f"connections={connections}", "-p", f"load={load}", "-p", f"think={think:g}"]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=HERE.parent)
    results = sorted(out.glob("stress-test-webserver-*/result.json"))
    if not results:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-400:]}")
    result = json.loads(results[-1].read_text())
    rows = [m.groupdict() for note in result["notes"] if (m := NOTE.search(note))]
    return result["verdict"], rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--load", type=int, default=10, help="seconds of load per backlog (10)")
    args = parser.parse_args()
    print("| think | listen() | held: client / server | connect ms p50 / p90 / p99 / max | requests answered | "
          "per second | verdict |\n|---|---:|---|---|---|---:|---|")
    with tempfile.TemporaryDirectory() as work:
        for think in (1.0, 0.0):
            verdict, rows = run_once(args.connections, args.load, think, Path(work) / f"think{think:g}")
            for r in rows:
                print(f"| {think:g} s | {r['backlog']} | {r['client']} / {r['server']} | {r['p50']} / {r['p90']} / "
                      f"{r['p99']} / {r['max']} | {r['answered']} of {r['sent']} | {r['rate']} | {verdict} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
