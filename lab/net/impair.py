"""Link impairments (delay, jitter, loss, duplicate, reorder, corrupt, rate, limit) as faults.

One :class:`~lab.topology.model.Impair` — from a topology's ``impair:`` or ``lab fault add`` —
becomes a fault applied by one of two emulators with the same keys and the same meaning:

- ``netem``: the kernel's ``sch_netem`` as the root qdisc of the egress (what Mininet's TCLink
  and netlab's ``tc`` use);
- ``lab``: lab's own emulator (:mod:`lab.net.emulator`), a small daemon reading an NFQUEUE
  that a rule of its own feeds (:mod:`lab.net.nfqueue_rules`), for kernels built without netem
  (this machine's, and stock GitHub runners' until linux-modules-extra is installed).

:func:`choose` picks netem where it works and lab's emulator where not; ``LAB_EMULATOR`` (or
``--emulator``) forces either, so the emulator is tested on machines with netem too.

Where each direction is emulated: ``out`` at the node's own egress. ``in`` at the egress of the
other end of a point-to-point link; on a LAN that end is a bridge port, which netem can shape
but iptables cannot see, so lab's emulator takes ``in`` at the node's PREROUTING instead (no
duplicate or corrupt there: a copy cannot be injected on arrival, and the header checksum was
already checked).
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import subprocess
import sys
import zlib
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from pydantic import ValidationError

from lab import state
from lab.errors import EnvironmentProblem, InputError
from lab.net.faults import (
    Direction,
    Endpoint,
    Fault,
    apply,
    clear,
    directions,
    endpoint,
    journal_daemons,
    new_id,
    qdisc_targets,
    record,
)
from lab.net.netns import netns_path
from lab.nodes.namespace import LocalNamespace, Namespace
from lab.topology import units
from lab.topology.model import Impair, Topology

Emulator = Literal["netem", "lab"]
EMULATORS: tuple[str, ...] = ("auto", "netem", "lab")
KEYS = ("delay", "jitter", "loss", "duplicate", "reorder", "corrupt", "rate", "limit")


@functools.cache
def netem_works() -> tuple[bool | None, str]:
    """Does ``tc qdisc add … netem`` work here? (None: cannot tell, e.g. not root.)"""
    from lab.net.probe import qdisc_works

    return qdisc_works("netem", ["netem", "delay", "1ms"])


def choose(forced: str | None = None) -> Emulator:
    """``netem`` or ``lab``: what was asked (``--emulator``, else $LAB_EMULATOR), or netem where it works."""
    wanted = (forced or os.environ.get("LAB_EMULATOR") or "auto").strip().lower()
    if wanted not in EMULATORS:
        raise InputError(f"emulator {wanted!r}: one of {', '.join(EMULATORS)}", "set LAB_EMULATOR or --emulator")
    if wanted != "auto":
        return wanted  # type: ignore[return-value]
    return "netem" if netem_works()[0] else "lab"


def spec_from(values: Mapping[str, object]) -> Impair:
    """An impairment from keyword values (``lab fault add``, ``run.impair``), checked as the topology's
    ``impair:`` is; bad input is one line: ``--delay: '10' is not a time: write e.g. 40ms …``."""
    try:
        return Impair.model_validate(dict(values))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ").replace("add e.g. delay: 20ms", "add e.g. --delay 20ms")
        raise InputError(f"--{where}: {message}" if where else message) from None


def describe(spec: Impair) -> str:
    """``delay 40ms±4ms loss 1% rate 10mbit``: the impairment in the words it was written with."""
    parts = []
    if spec.delay:
        parts.append(f"delay {spec.delay}" + (f"±{spec.jitter}" if spec.jitter else ""))
    for key in KEYS[2:]:
        value = getattr(spec, key)
        if value is not None:
            parts.append(f"{key} {value}")
    return " ".join(parts)


def apply_topology(topo: Topology, journal: state.Journal, emulator: str | None,
                   progress: Callable[[str, int, int], None]) -> None:
    """During ``up``: the topology's ``impair:`` entries, each a fault in the journal (``lab fault ls`` lists them).

    On this machine they are applied together: one ``tc -batch`` per namespace for netem, several
    at once; for lab's emulator, one daemon for the whole lab, which enters each namespace to open
    its queues and write their rules (a daemon per interface cost 170 ms each). On a cluster, one
    by one through the machines' agents.
    """
    wanted = topo.impairments()
    if not wanted:
        return
    info = state.read_lab_info(topo.name)
    chosen = choose(emulator)
    found = [(endpoint(info, where), spec) for where, spec in wanted]
    progress("impairing links", 0, len(found))
    if not all(isinstance(ep.inside, LocalNamespace) for ep, _ in found):
        for done, (ep, spec) in enumerate(found):
            fault = impair(ep, spec, "out", chosen)
            fault.what += " (from the topology)"
            apply(journal, fault)
            progress("impairing links", done + 1, len(found))
        return
    made: list[Fault] = []
    try:
        if chosen == "netem":
            _netem_together(journal, found, made)
        else:
            _emulate_together(journal, topo.name, found, made)
    except BaseException:
        for fault in made:
            clear(journal, fault_id=fault.id)
        raise
    progress("impairing links", len(found), len(found))


def _netem_together(journal: state.Journal, found: list[tuple[Endpoint, Impair]], made: list[Fault]) -> None:
    batches: dict[str, list[str]] = {}
    for ep, spec in found:
        fault = Fault(new_id(), ep.label, f"impair {describe(spec)} out (from the topology)",
                      undo=[ep.inside.command(["tc", "qdisc", "del", "dev", ep.ifname, "root"])],
                      holds=[_hold_key(ep.inside, ep.ifname)])
        made.append(fault)
        batches.setdefault(_netns(ep), []).append(shlex.join(["qdisc", "replace", "dev", ep.ifname, "root", "netem",
                                                              *netem_args(spec)]))
    record(journal, made)
    _run_per_namespace(["tc", "-batch", "-"], batches)


def _emulate_together(journal: state.Journal, lab: str, found: list[tuple[Endpoint, Impair]],
                      made: list[Fault]) -> None:
    """One daemon for the topology's impairments: it opens each queue in its namespace and adds its rule."""
    links: list[dict[str, object]] = []
    for ep, spec in found:
        fault = Fault(new_id(), ep.label, f"impair {describe(spec)} out (lab emulator, from the topology)",
                      holds=[_hold_key(ep.inside, ep.ifname)])
        chain = _chain(fault.id, "out")
        fault.undo = [ep.inside.command([*_python(), "-m", "lab.net.emulator", "unqueue", "--chain", chain])]
        made.append(fault)
        links.append({"netns": netns_path(_netns(ep)), "queue": zlib.crc32(f"{fault.id}/out".encode()) & 0xFFFF,
                      "iface": ep.ifname, "chain": chain, "hook": "postrouting", "params": emulator_values(spec)})
    record(journal, made)
    directory = state.lab_dir(lab) / "emulators"
    directory.mkdir(parents=True, exist_ok=True)
    spec_file = directory / "topology.json"
    spec_file.write_text(json.dumps({"links": links}))
    daemon = Fault("topology", "(the lab)", "", pidfiles=[str(directory / "topology.pid")])
    started = subprocess.run([*_python(), "-m", "lab.net.emulator", "start", "--spec", str(spec_file),
                              "--pidfile", daemon.pidfiles[0]], capture_output=True, text=True, timeout=120)
    journal_daemons(journal, daemon)  # lab down stops it; a fault clear leaves its queue idle (the rule gone)
    if started.returncode != 0:
        raise EnvironmentProblem(f"lab's link emulator did not start: {started.stderr.strip()[-300:]}")


def _run_per_namespace(argv: list[str], batches: dict[str, list[str]]) -> None:
    """``argv`` in each namespace, its lines on stdin; several namespaces at once; the first failure raised."""
    def one(item: tuple[str, list[str]]) -> None:
        netns, lines = item
        result = subprocess.run(LocalNamespace(netns).command(argv), input="\n".join(lines) + "\n",
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise EnvironmentProblem(f"{argv[0]} in {netns} failed: {detail[-1] if detail else result.returncode}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, batches.items()))


def _netns(ep: Endpoint) -> str:
    assert isinstance(ep.inside, LocalNamespace)
    return ep.inside.netns


def _python() -> list[str]:
    from lab.nodes.host import programs_path

    return ["env", f"PYTHONPATH={programs_path()}", sys.executable]


def netem_args(spec: Impair) -> list[str]:
    """``tc qdisc … netem`` arguments for the impairment."""
    args: list[str] = []
    if spec.delay:
        args += ["delay", spec.delay, *([spec.jitter] if spec.jitter else [])]
    for key in ("loss", "duplicate", "reorder", "corrupt", "rate"):
        value = getattr(spec, key)
        if value is not None:
            args += [key, value]
    if spec.limit is not None:
        args += ["limit", str(spec.limit)]
    return args


def emulator_values(spec: Impair) -> dict[str, float]:
    """The impairment in the emulator's units: milliseconds, percents, bits per second, packets."""
    values: dict[str, float] = {}
    for key in ("delay", "jitter"):
        if getattr(spec, key) is not None:
            values[key] = units.milliseconds(getattr(spec, key))
    for key in ("loss", "duplicate", "reorder", "corrupt"):
        if getattr(spec, key) is not None:
            values[key] = units.percent(getattr(spec, key))
    if spec.rate is not None:
        values["rate"] = units.bits_per_second(spec.rate)
    if spec.limit is not None:
        values["limit"] = spec.limit
    return values


def emulator_args(spec: Impair) -> list[str]:
    """``python3 -m lab.net.emulator start`` arguments for the impairment."""
    return [arg for key, value in emulator_values(spec).items() for arg in (f"--{key}", f"{value:g}")]


def impair(ep: Endpoint, spec: Impair, direction: Direction = "out", emulator: str | None = None) -> Fault:
    """The fault that impairs ``ep`` in ``direction`` (``out``: what leaves it, the tc convention)."""
    chosen = choose(emulator)
    fault = Fault(new_id(), ep.label, f"impair {describe(spec)} {direction}" + (" (lab emulator)"
                                                                               if chosen == "lab" else ""))
    fault.holds = [_hold_key(ns, dev) for ns, dev in qdisc_targets(ep, direction)]
    if chosen == "netem":
        for ns, dev in qdisc_targets(ep, direction):
            fault.apply.append(ns.command(["tc", "qdisc", "replace", "dev", dev, "root", "netem",
                                           *netem_args(spec)]))
            fault.undo.append(ns.command(["tc", "qdisc", "del", "dev", dev, "root"]))
        return fault
    if direction in ("in", "both") and ep.peer_is_switch:
        raise InputError(f"lab's emulator cannot impair what arrives at {ep.label}, a LAN port: it would hold "
                         "packets after the node has timestamped them, so ping would not see the delay",
                         "impair what leaves the senders (--direction out on their interfaces), or use netem")
    for i, d in enumerate(directions(direction)):
        _emulate(fault, ep, spec, d, queue=(zlib.crc32(f"{fault.id}/{d}".encode()) + i) & 0xFFFF)
    return fault


def _hold_key(ns: Namespace, dev: str) -> str:
    """Which egress an impairment holds packets at: two on one egress would not add up, so one is refused."""
    return " ".join([*ns.command([]), dev])


def _emulate(fault: Fault, ep: Endpoint, spec: Impair, d: str, queue: int) -> None:
    """Lab's emulator for one direction: a daemon that reads its queue and adds the rule feeding it."""
    if d == "out" or not ep.peer_is_switch:
        inside, dev = (ep.inside, ep.ifname) if d == "out" else (ep.peer_inside, ep.peer_ifname)
        hook = "postrouting"
    else:
        for key in ("duplicate", "corrupt"):
            if getattr(spec, key) is not None:
                raise InputError(f"{key} arriving at {ep.label} (a LAN port) needs netem",
                                 "impair what leaves the sending node instead (--direction out on its "
                                 "interface), or use a kernel with sch_netem")
        inside, dev, hook = ep.inside, ep.ifname, "prerouting"
    if inside.local:
        python = _python()
        pidfile = str(state.lab_dir(ep.lab) / "emulators" / f"{fault.id}-{d}.pid")
    else:  # in the machine's agent container, which has lab's emulator (images/agent)
        python = ["python3"]
        pidfile = f"/run/lab-emulators/{ep.lab}/{fault.id}-{d}.pid"
    module = [*python, "-m", "lab.net.emulator"]
    chain = _chain(fault.id, d)
    # apply[0] (the daemon, then its rule) is undone by undo[0] and the rest (lab.net.faults.apply);
    # the rule's bypass flag lets packets pass, unimpaired, between the daemon's end and the rule's
    fault.apply.append(inside.command([*module, "start", "--queue", str(queue), "--iface", dev, "--chain", chain,
                                       "--hook", hook, "--pidfile", pidfile, *emulator_args(spec)]))
    fault.undo += [inside.machine_command([*module, "stop", "--pidfile", pidfile]),
                   inside.command([*module, "unqueue", "--chain", chain])]
    fault.pidfiles.append(pidfile)


def _chain(fault_id: str, direction: str) -> str:
    """The nf_tables chain of one impaired direction (lab.net.nfqueue_rules)."""
    return f"fault-{fault_id}-{direction}"
