"""Router advertisements: a router interface with ``ra: true`` advertises its IPv6 prefix (radvd).

The hosts on that network then take SLAAC addresses (RFC 4862) and a default route via the
router's link-local address; ``up`` waits until each has its address, so a lab is usable when
``up`` returns. On one machine radvd (Debian's package) runs in the router's namespace, one
process for all of that router's advertising interfaces, journaled by PID like every process
lab starts, and stopped by ``down``; its configuration is in the lab's state directory. On a
cluster the router is a ``lab-host`` container, whose image has radvd: it runs inside it, and
goes with the container.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any

from lab import procs
from lab.errors import EnvironmentProblem
from lab.net.netns import netns_path
from lab.plan import Plan
from lab.state import Journal, lab_dir

WAIT_FOR_SLAAC = 10.0  # seconds for every host of an advertised network to take its address
CONTAINER_CONF = "/etc/lab/radvd.conf"
GLOBAL_ADDRESSES = ["ip", "-j", "-6", "addr", "show", "scope", "global"]  # what shows a SLAAC address taken
MIN_INTERVAL, MAX_INTERVAL = 3, 10  # seconds between unsolicited advertisements (radvd's lowest allowed: 3)

Progress = Callable[[str, int, int], None]


def radvd_conf(interfaces: dict[str, list[str]]) -> str:
    """radvd.conf for one router: each interface and the prefixes it advertises (on-link, autonomous)."""
    lines = ["# lab: router advertisements, written from the topology's ra: true"]
    for ifname, prefixes in interfaces.items():
        lines += [f"interface {ifname} {{", "    AdvSendAdvert on;", f"    MinRtrAdvInterval {MIN_INTERVAL};",
                  f"    MaxRtrAdvInterval {MAX_INTERVAL};"]
        lines += [f"    prefix {p} {{ AdvOnLink on; AdvAutonomous on; }};" for p in prefixes]
        lines.append("};")
    return "\n".join(lines) + "\n"


def start(plan: Plan, journal: Journal, progress: Progress) -> None:
    """radvd on every router with an advertising interface, then wait for the hosts' SLAAC addresses."""
    if not plan.adverts:
        return
    radvd = shutil.which("radvd")
    if radvd is None:
        raise EnvironmentProblem("ra: true needs radvd, which is not installed",
                                 "apt-get install radvd (or: bash scripts/setup.sh)")
    progress("router advertisements", 0, len(plan.adverts))
    home = lab_dir(plan.lab) / "radvd"
    home.mkdir(mode=0o700, exist_ok=True)
    for done, (netns, interfaces) in enumerate(sorted(plan.adverts.items()), start=1):
        config, pidfile = home / f"{netns}.conf", home / f"{netns}.pid"
        config.write_text(radvd_conf(interfaces))
        log = home / f"{netns}.log"
        argv = ["nsenter", f"--net={netns_path(netns)}", radvd, "--nodaemon", "-C", str(config), "-p", str(pidfile),
                "-m", "stderr"]
        with open(log, "ab") as out:  # the daemon's, kept open by it
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
        journal.record([procs.process_record(proc.pid, f"radvd {netns}", netns)])
        time.sleep(0.05)
        if proc.poll() is not None:
            why = (log.read_text(errors="replace").strip().splitlines() or ["no output"])[-1]
            raise EnvironmentProblem(f"radvd in {netns} exited at once ({why})", f"see {log}")
        progress("router advertisements", done, len(plan.adverts))
    wait_for_slaac(plan, progress)


def start_in_nodes(plan: Plan, lab_info: dict[str, Any], progress: Progress) -> None:
    """On a cluster: radvd inside each advertising router's container, then wait for the hosts' addresses."""
    if not plan.adverts:
        return
    from lab.nodes import node_from_info

    node_of = {spec.netns: name for name, spec in plan.nodes.items()}
    progress("router advertisements", 0, len(plan.adverts))
    for done, (netns, interfaces) in enumerate(sorted(plan.adverts.items()), start=1):
        router = node_from_info(lab_info, node_of[netns])
        router.exec(["sh", "-c", 'cat > "$1"', "sh", CONTAINER_CONF], input=radvd_conf(interfaces), check=True)
        started = router.exec(["radvd", "-C", CONTAINER_CONF, "-p", "/run/radvd.pid", "-m", "logfile",
                               "-l", "/var/log/lab/radvd.log"])  # it detaches itself; the container holds it
        if started.returncode != 0:
            raise EnvironmentProblem(f"node {node_of[netns]}: radvd did not start ({started.stderr.strip()[:200]})",
                                     f"lab exec {node_of[netns]} -- cat /var/log/lab/radvd.log")
        progress("router advertisements", done, len(plan.adverts))

    def addresses(netns: str) -> str:
        return node_from_info(lab_info, node_of[netns]).exec(GLOBAL_ADDRESSES, timeout=10).stdout

    wait_for_slaac(plan, progress, addresses)


def _in_namespace(netns: str) -> str:
    return subprocess.run(["nsenter", f"--net={netns_path(netns)}", *GLOBAL_ADDRESSES], capture_output=True, text=True,
                          timeout=10).stdout


def wait_for_slaac(plan: Plan, progress: Progress, addresses: Callable[[str], str] = _in_namespace) -> None:
    """Until every host interface on an advertised network holds a global address it took by SLAAC.

    ``addresses(netns)`` is the host's :data:`GLOBAL_ADDRESSES`.
    """
    waiting = dict(plan.slaac)  # netns -> interfaces
    total = sum(len(v) for v in waiting.values())
    deadline = time.monotonic() + WAIT_FOR_SLAAC
    while waiting:
        for netns, ifnames in list(waiting.items()):
            out = addresses(netns)
            taken = {link["ifname"] for link in json.loads(out or "[]")
                     if any(a.get("dynamic") for a in link.get("addr_info", []))}
            left = [i for i in ifnames if i not in taken]
            if left:
                waiting[netns] = left
            else:
                del waiting[netns]
        progress("hosts taking SLAAC addresses", total - sum(len(v) for v in waiting.values()), total)
        if waiting and time.monotonic() > deadline:
            first = next(iter(waiting))
            raise EnvironmentProblem(f"{first}: {', '.join(waiting[first])} took no SLAAC address within "
                                     f"{WAIT_FOR_SLAAC:.0f} s of the router's advertisements",
                                     "check the router's radvd log in the lab's state directory")
        if waiting:
            time.sleep(0.1)
