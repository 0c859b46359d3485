"""Link impairments (delay, jitter, loss, duplicate, reorder, corrupt, rate, limit) as faults.

One :class:`~lab.topology.model.Impair` — from a topology's ``impair:`` or ``lab fault add`` —
becomes a fault applied by one of two emulators with the same keys and the same meaning:

- ``netem``: the kernel's ``sch_netem`` as the root qdisc of the egress (what Mininet's TCLink
  and netlab's ``tc`` use);
- ``lab``: lab's own emulator (:mod:`lab.net.emulator`), a small daemon per impaired direction
  fed by an iptables NFQUEUE rule, for kernels built without netem (this machine's, and stock
  GitHub runners' until linux-modules-extra is installed).

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
import os
import sys
import zlib
from collections.abc import Callable, Mapping
from typing import Literal

from pydantic import ValidationError

from lab import state
from lab.errors import InputError
from lab.net.emulator import RESENT_MARK
from lab.net.faults import Direction, Endpoint, Fault, apply, directions, endpoint, new_id, qdisc_targets
from lab.topology import units
from lab.topology.model import Impair, Topology

Emulator = Literal["netem", "lab"]
EMULATORS: tuple[str, ...] = ("auto", "netem", "lab")
KEYS = ("delay", "jitter", "loss", "duplicate", "reorder", "corrupt", "rate", "limit")


@functools.cache
def netem_works() -> tuple[bool | None, str]:
    """Does ``tc qdisc add … netem`` work here? (None: cannot tell, e.g. not root.)"""
    from lab.doctor import qdisc_works

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
        raise InputError(f"--{where or 'impair'}: {first['msg'].removeprefix('Value error, ')}") from None


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


def of_topology(topo: Topology) -> list[tuple[str, Impair]]:
    """``(node:if, impairment)`` for every impaired interface: its own ``impair:``, or its link's (both ends)."""
    found = [(f"{n}:{i}", iface.impair) for n, node in topo.nodes.items()
             for i, iface in node.interfaces.items() if iface.impair]
    for link in topo.links:
        if link.impair:
            found += [(f"{node}:{ifname}", link.impair) for node, ifname in link.ends]
    return found


def apply_topology(topo: Topology, journal: state.Journal, emulator: str | None,
                   progress: Callable[[str, int, int], None]) -> None:
    """During ``up``: the topology's ``impair:`` entries, each a fault in the journal (``lab fault ls`` lists them)."""
    wanted = of_topology(topo)
    if not wanted:
        return
    info = state.read_lab_info(topo.name)
    for done, (where, spec) in enumerate(wanted):
        progress("impairing links", done, len(wanted))
        apply(journal, impair(endpoint(info, where), spec, "out", emulator))
    progress("impairing links", len(wanted), len(wanted))


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


def emulator_args(spec: Impair) -> list[str]:
    """``python3 -m lab.net.emulator start`` arguments (milliseconds, percents, bits per second)."""
    args: list[str] = []
    for key in ("delay", "jitter"):
        value = getattr(spec, key)
        if value is not None:
            args += [f"--{key}", f"{units.milliseconds(value):g}"]
    for key in ("loss", "duplicate", "reorder", "corrupt"):
        value = getattr(spec, key)
        if value is not None:
            args += [f"--{key}", f"{units.percent(value):g}"]
    if spec.rate is not None:
        args += ["--rate", f"{units.bits_per_second(spec.rate):g}"]
    if spec.limit is not None:
        args += ["--limit", str(spec.limit)]
    return args


def impair(ep: Endpoint, spec: Impair, direction: Direction = "out", emulator: str | None = None) -> Fault:
    """The fault that impairs ``ep`` in ``direction`` (``out``: what leaves it, the tc convention)."""
    chosen = choose(emulator)
    fault = Fault(new_id(), ep.label, f"impair {describe(spec)} {direction}" + (" (lab emulator)"
                                                                               if chosen == "lab" else ""))
    if chosen == "netem":
        for ns, dev in qdisc_targets(ep, direction):
            fault.apply.append(ns.command(["tc", "qdisc", "replace", "dev", dev, "root", "netem",
                                           *netem_args(spec)]))
            fault.undo.append(ns.command(["tc", "qdisc", "del", "dev", dev, "root"]))
        return fault
    for i, d in enumerate(directions(direction)):
        _emulate(fault, ep, spec, d, queue=(zlib.crc32(f"{fault.id}/{d}".encode()) + i) & 0xFFFF)
    return fault


def _emulate(fault: Fault, ep: Endpoint, spec: Impair, d: str, queue: int) -> None:
    """Start lab's emulator for one direction, then send that direction's packets to its queue."""
    if d == "out" or not ep.peer_is_switch:
        inside, dev = (ep.inside, ep.ifname) if d == "out" else (ep.peer_inside, ep.peer_ifname)
        table, chain, match = "mangle", "POSTROUTING", ["-o", dev]
    else:
        for key in ("duplicate", "corrupt"):
            if getattr(spec, key) is not None:
                raise InputError(f"{key} arriving at {ep.label} (a LAN port) needs netem",
                                 "impair what leaves the sending node instead (--direction out on its "
                                 "interface), or use a kernel with sch_netem")
        inside, dev = ep.inside, ep.ifname
        table, chain, match = "mangle", "PREROUTING", ["-i", dev]
    if inside.local:
        from lab.nodes.host import programs_path

        python = ["env", f"PYTHONPATH={programs_path()}", sys.executable]
        pidfile = str(state.lab_dir(ep.lab) / "emulators" / f"{fault.id}-{d}.pid")
    else:  # in the machine's agent container, which has lab's emulator (images/agent)
        python = ["python3"]
        pidfile = f"/run/lab-emulators/{ep.lab}/{fault.id}-{d}.pid"
    module = [*python, "-m", "lab.net.emulator"]
    rule = [chain, *match, "-m", "mark", "!", "--mark", hex(RESENT_MARK), "-m", "comment", "--comment",
            f"lab-fault-{fault.id}", "-j", "NFQUEUE", "--queue-num", str(queue), "--queue-bypass"]
    # apply[i] is undone by undo[i] (lab.net.faults.apply); --queue-bypass lets packets pass, unimpaired,
    # in the moment between the daemon's end and the rule's
    fault.apply += [inside.command([*module, "start", "--queue", str(queue), "--iface", dev, "--pidfile", pidfile,
                                    *emulator_args(spec)]),
                    inside.command(["iptables", "-w", "-t", table, "-A", *rule])]
    fault.undo += [inside.machine_command([*module, "stop", "--pidfile", pidfile]),
                   inside.command(["iptables", "-w", "-t", table, "-D", *rule])]
    fault.pidfiles.append(pidfile)
