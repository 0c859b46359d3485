"""Run: the handle an experiment's steps use. Every change it makes is undone when the run ends.

Steps read like the book's procedure::

    server = run.serve("ernest-laptop", "echo", "--port", "7")
    with run.capture(["kongming20:eth0"], "arp or tcp"):
        run.sh("kongming20", ["ip", "neigh", "flush", "dev", "eth0"])
        run.py("kongming20", "connect_timer", run.ip("ernest-laptop"), "7")
    run.expect(expect.count("two ARP frames", expect.arp(run.packets), 2))

Faults cleared and sysctls put back (both journaled), background programs and
captures stopped (by PID, recorded in the lab's journal), whatever the steps raised.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from lab import procs
from lab.capture.pcapfile import merge
from lab.capture.records import Packet
from lab.capture.tcpdump import HEADERS, SNAPLEN, CaptureSet, Tcpdump
from lab.errors import EnvironmentProblem, InputError
from lab.experiments import yours
from lab.experiments.etcfiles import ContainerEtc, EtcFiles, NamespaceEtc
from lab.experiments.expect import Verdict
from lab.experiments.processes import process_table
from lab.experiments.programs import Proc, Result
from lab.experiments.syscalls import Syscall
from lab.experiments.syscalls import parse as parse_syscalls
from lab.net import faults, impair
from lab.nodes import NodeHandle, node_from_info
from lab.nodes.namespace import node_namespace
from lab.report.model import ProcessRecord, StepRecord
from lab.sandbox.program import UserProgram
from lab.state import Journal


class Run:
    """One run of one experiment on one lab."""

    def __init__(self, lab_info: dict[str, Any], params: SimpleNamespace, run_dir: Path) -> None:
        self.lab_info = lab_info
        self.lab = lab_info["name"]
        self.p = params
        self.run_dir = run_dir
        self.journal = Journal(self.lab)
        self.steps: list[StepRecord] = []
        self.verdicts: list[Verdict] = []
        self.packets: list[Packet] = []
        self.pcaps: dict[str, Path] = {}
        self.notes: list[str] = []
        self._procs: list[Proc] = []
        self.processes: list[ProcessRecord] = []  # the traced programs' processes, for the report
        self._traced: dict[str, str] = {}  # a trace file → the program traced into it
        self._straces = 0
        self._faults: list[str] = []
        self._captures = 0
        self.observations: list[dict[str, Any]] = []  # what the steps saw, in order: saved for lab check
        self.replaying = False
        self.uses: dict[str, UserProgram] = {}  # the reader's programs standing in for the project's (--use)
        self.sandbox_tag = secrets.token_hex(6)  # marks the sandbox's own lines (yours.sandbox_lines)

    # --- observations ------------------------------------------------------
    def observe(self, kind: str, node: str, live: Callable[[], Any]) -> Any:
        """What the steps read from the lab (a command's output, a program's, a clock): read it, and keep
        it in order, so that ``lab check`` can give the same steps the same readings from the run's files.

        The value must be JSON (str, numbers, bools, lists, dicts). A replayed run
        (:class:`lab.experiments.replay.ReplayRun`) returns the saved value instead of calling ``live``.
        """
        value = live()
        self.observations.append({"kind": kind, "node": node, "value": value})
        return value

    def now(self) -> float:
        """The wall clock (``time.time()``, as capture times are), as an observation."""
        return float(self.observe("now", "", time.time))

    def clock(self) -> float:
        """A monotonic clock (``time.monotonic()``) for durations, as an observation."""
        return float(self.observe("clock", "", time.monotonic))

    def topology_text(self) -> str:
        """The topology the lab was built from, as rendered (kept in the lab's state directory)."""
        from lab.state import lab_dir

        def read() -> str:
            path = lab_dir(self.lab) / "topology.yaml"
            try:
                return path.read_text()
            except FileNotFoundError:
                raise InputError(f"lab {self.lab!r} has no copy of its topology ({path})",
                                 "build it again with lab up, or run the experiment without --lab") from None

        return str(self.observe("topology", "", read))

    # --- nodes -------------------------------------------------------------
    def node(self, name: str) -> NodeHandle:
        return node_from_info(self.lab_info, name)

    def ip(self, node: str, ifname: str | None = None, family: int | None = None) -> str:
        """The node's address on ``ifname`` (or its first): IPv4, or IPv6 with ``family=6`` (or where it has
        no IPv4). Without ``family``, an experiment's own ``family`` parameter (``-p family=6``) decides."""
        if family is None:
            family = getattr(self.p, "family", None)
        address = self.node(node).address(ifname, family)
        if address is None:
            kind = f"IPv{family} " if family else ""
            raise InputError(f"node {node!r} has no {kind}address" + (f" on {ifname}" if ifname else ""))
        return address

    def mac(self, node: str, ifname: str = "eth0") -> str:
        r = self.sh(node, ["ip", "-j", "link", "show", "dev", ifname], record=False)
        return str(json.loads(r.stdout)[0]["address"])

    def python(self, node: str) -> str:
        """The interpreter that runs the project's programs in ``node``."""
        from lab.nodes.container import ContainerNode

        # a container (any node of a cluster lab is one) has its image's python3; a namespace, this one's
        return "python3" if isinstance(self.node(node), ContainerNode) else sys.executable

    # --- steps -------------------------------------------------------------
    def sh(self, node: str, argv: list[str], title: str | None = None, timeout: float = 60,
           env: dict[str, str] | None = None, record: bool = True, input: str | None = None) -> Result:
        """Run a command in a node to completion and record it as a step."""
        self._remember_traced(argv, title)

        def live() -> list[Any]:
            handle = self.node(node)
            started = time.time()
            try:
                cp = handle.exec(argv, timeout=timeout, env=env, input=input)
                rc, out, err = cp.returncode, cp.stdout, cp.stderr
            except subprocess.TimeoutExpired as exc:
                rc, out, err = -9, _text(exc.stdout), _text(exc.stderr) + f"\n(killed after {timeout:g} s)"
            return [rc, out, err, started, time.time() - started]

        rc, out, err, started, elapsed = self.observe("sh", node, live)
        if record:
            self.steps.append(StepRecord(title or " ".join(argv), " ".join(argv), node, rc, out, err, started, elapsed))
        return Result(rc, out, err, elapsed)

    def py(self, node: str, program: str, *args: str, title: str | None = None, timeout: float = 60) -> Result:
        """Run one of the project's programs (lab/servers) to completion in a node: or the reader's own,
        in its sandbox, where ``--use`` gave one."""
        title = title or f"{program} {' '.join(args)}"
        use = self.uses.get(program)
        if use is not None:
            return self.sh(node, self._jailed(node, use, args, wall=timeout),
                           title=f"{title}  [yours: {use.source}]", timeout=timeout + 10)
        argv = [self.python(node), "-m", f"lab.servers.{program}", *args]
        return self.sh(node, argv, title=title, timeout=timeout)

    def spawn(self, node: str, argv: list[str], title: str | None = None, ready: str | None = None,
              ready_timeout: float = 10.0) -> Proc:
        """Start a program in the background; with ``ready``, wait until it printed that text."""
        self._remember_traced(argv, title)
        popen = self._popen(node, argv)
        step = StepRecord(title or " ".join(argv), " ".join(argv), node, None, "", "", self.now(), 0.0)
        self.steps.append(step)
        proc = Proc(self, node, step.title, popen, step)
        self._procs.append(proc)
        if ready and not proc.wait_for(ready, ready_timeout):
            proc.stop()
            raise RuntimeError(f"{step.title} on {node} did not print {ready!r} within {ready_timeout:g} s: "
                               f"{(proc.step.stderr or proc.step.stdout).strip()[-300:]}")
        return proc

    def _popen(self, node: str, argv: list[str]) -> subprocess.Popen[str] | None:
        handle = self.node(node)
        popen = handle.popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
        self.journal.record([procs.process_record(popen.pid, f"{node}:{argv[0]}", handle.netns)])
        return popen

    def serve(self, node: str, program: str, *args: str, ready: str | None = "listening on",
              title: str | None = None) -> Proc:
        """Start one of the project's servers in a node and wait until it listens: or the reader's own
        (``--use``), in its sandbox, ready once the kernel shows its LISTEN socket (its contract's port)."""
        title = title or f"{program} {' '.join(args)}"
        use = self.uses.get(program)
        if use is None:
            argv = [self.python(node), "-m", f"lab.servers.{program}", *args]
            return self.spawn(node, argv, title=title, ready=ready)
        proc = self.spawn(node, self._jailed(node, use, args, wall=yours.USER_WALL),
                          title=f"{title}  [yours: {use.source}]")
        proc.jailed = True
        port = yours.listen_port(use, args)
        if ready is not None and port is not None:
            handle, popen = self.node(node), proc.popen
            if not self.observe("listening", node, lambda: yours.listening(
                    handle, port, lambda: popen is not None and popen.poll() is None, proc._drain)):
                exited = self.observe("exited", node, lambda: popen.poll() if popen is not None else None)
                rc = proc.stop()
                raise yours.not_listening(use, args, port, rc if exited is not None else None, proc.step.duration,
                                          proc.step.stderr + proc.step.stdout)
        return proc

    def _jailed(self, node: str, use: UserProgram, args: tuple[str, ...], wall: float) -> list[str]:
        from lab.nodes.container import ContainerNode

        if not self.replaying and (self.lab_info.get("cluster") or isinstance(self.node(node), ContainerNode)):
            raise InputError(f"--use {use.name}: {node} is a container node; a reader's program runs in "
                             "namespace nodes (the book's topologies) so far")
        return yours.jailed(use, args, wall, self.sandbox_tag)

    def start(self, node: str, program: str, *args: str, title: str | None = None) -> Proc:
        """Start one of the project's clients in the background (no readiness line)."""
        return self.serve(node, program, *args, ready=None, title=title)

    def strace(self, node: str, calls: tuple[str, ...], signals: tuple[str, ...] = ()) -> tuple[list[str], str]:
        """The argv prefix that runs a program under ``strace -f`` recording ``calls`` (and the delivery of
        ``signals``, e.g. ``("SIGURG",)``), and the trace file (in
        the run's directory: a namespace node sees the machine's files). Read it with :meth:`syscalls` once
        the program has ended (a traced server must end by itself: strace stopped would leave it running)."""
        from lab.nodes.container import ContainerNode

        if isinstance(self.node(node), ContainerNode) and not self.replaying:
            raise InputError(f"strace in {node}: a container node; the traced experiments run on namespace nodes")
        self._straces += 1  # counted here, not from the files: a strace just started may not have made its own
        path = self.run_dir / f"strace-{node}-{self._straces}.txt"
        argv = ["strace", "-f", "-qq", "-ttt", "-T", "-e", f"trace={','.join(calls)}",
                "-e", f"signal={','.join(signals) or 'none'}",
                "-o", str(path)]
        return argv, str(path)

    def syscalls(self, node: str, path: str) -> list[Syscall]:
        """The system calls a program under :meth:`strace` made, read as an observation (``lab check``
        replays them). The report shows which of its processes did what."""
        text = self.observe("strace", node, lambda: Path(path).read_text() if Path(path).exists() else "")
        calls = parse_syscalls(str(text))
        self.processes.extend(process_table(calls, node, self._traced.get(path, Path(path).stem)))
        return calls

    def _remember_traced(self, argv: list[str], title: str | None) -> None:
        """A program started under :meth:`strace`: its trace file's program, for the report's process table."""
        if argv[:1] == ["strace"] and "-o" in argv:
            rest = argv[argv.index("-o") + 2:]
            module = rest[rest.index("-m") + 1] if "-m" in rest[:-1] else " ".join(rest[:1])
            self._traced[argv[argv.index("-o") + 1]] = (title or module.removeprefix("lab.servers.")).split(" (")[0]

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def note(self, text: str) -> None:
        self.notes.append(text)

    # --- capture -----------------------------------------------------------
    @contextmanager
    def capture(self, points: list[str], bpf: str | None = "ip or arp", headers_only: bool = False) -> Iterator[None]:
        """Capture on ``node:if`` points for the duration of the block; decode into ``run.packets``.
        ``headers_only`` keeps the first 128 bytes of each packet: a ring of many more slots, for a burst
        of thousands of connections whose payloads no claim reads."""
        self._captures += 1
        dumps = []
        for point in points:
            ep = self.endpoint(point)
            name = f"{self._captures:02d}-{ep.node}-{ep.ifname}.pcap"
            dumps.append(Tcpdump(ep.label, ep.inside, ep.ifname, self.run_dir / name, bpf,
                                 snaplen=HEADERS if headers_only else SNAPLEN))
        cap = CaptureSet(dumps)
        cap.start()
        self.journal.record([procs.process_record(pid, "tcpdump") for pid in cap.pids])
        try:
            yield
        finally:
            cap.stop()
            pcaps = cap.pcaps()
            lost = sum(d.dropped for d in dumps)
            self.observe("capture", "", lambda: {"pcaps": {pt: path.name for pt, path in pcaps.items()},
                                                 "dropped": lost})
            self._captured(pcaps, lost)

    def _captured(self, pcaps: dict[str, Path], lost: int) -> None:
        """A capture's files in the report, and its packets (merged, in time order) in ``run.packets``."""
        for point, path in pcaps.items():
            # A second capture at the same point keeps the first one's file in the report too.
            key = point if point not in self.pcaps else f"{point} (capture {self._captures})"
            self.pcaps[key] = path
        self.packets = merge(pcaps)
        if lost:
            self.note(f"tcpdump reported {lost} packets dropped by the kernel")

    # --- a node's /etc files ------------------------------------------------
    def read_etc(self, node: str, name: str) -> str:
        """The node's /etc/``name`` (``hosts`` or ``resolv.conf``) as its programs read it."""
        return str(self.observe("etc", node, lambda: self._etc(node).read(name)))

    def write_etc(self, node: str, name: str, text: str) -> None:
        """Replace the node's /etc/``name`` (``hosts`` or ``resolv.conf``) for the programs it runs next.

        A namespace node's files are the ones ``ip netns exec`` mounts (its own /etc/netns entry);
        a container's are written inside it. The caller puts the old text back when it is done.
        """
        if not self.replaying:
            self._etc(node).write(name, text)

    def _etc(self, node: str) -> EtcFiles:
        from lab.nodes.container import ContainerNode

        handle = self.node(node)
        return ContainerEtc(handle) if isinstance(handle, ContainerNode) else NamespaceEtc(self.lab, handle.netns)

    # --- changes that are undone at the end ---------------------------------
    def sysctl(self, node: str, key: str, value: str | int) -> None:
        """Set a per-namespace sysctl in the node for this run; the old value comes back at the end.

        Journaled like a fault (see :func:`faults.sysctl`): after a run that was killed,
        ``lab fault clear`` restores it. Written from the machine into the node's network
        namespace, so container nodes (whose /proc/sys is read-only) work alike.
        """
        inside = node_namespace(self.lab_info, node)

        def read() -> list[Any]:
            old = subprocess.run(inside.command(["sysctl", "-n", key]), capture_output=True, text=True, timeout=30)
            return [old.returncode, old.stdout]

        rc, old = self.observe("sysctl", node, read)
        if rc != 0:
            raise EnvironmentProblem(f"{node}: this kernel has no sysctl {key}")
        self.fault(faults.sysctl(node, inside, key, str(value), old.strip()),
                   title=f"sysctl {key}={value}", command=f"sysctl -w {key}={value}")

    def change(self, node: str, argv: list[str], undo: list[list[str]], title: str | None = None) -> faults.Fault:
        """Change the node's network state for this run (an MTU, a route): ``argv`` now, ``undo`` at the end.

        Journaled like a fault before it is made, so the end of the run, ``lab fault clear`` and
        ``lab fault ls`` know it even after a run that was killed; ``run.clear(change)`` undoes it
        earlier. Both run in the node's network namespace with the machine's tools
        (``ip``), as faults do, so container nodes work alike::

            run.change("kongming20", ["ip", "link", "set", "dev", "eth0", "mtu", "1400"],
                       undo=[["ip", "link", "set", "dev", "eth0", "mtu", "1500"]])
        """
        inside = node_namespace(self.lab_info, node)
        what = title or " ".join(argv)
        return self.fault(faults.Fault(faults.new_id(), node, what, [inside.command(argv)],
                                       [inside.command(a) for a in undo]), title=what, command=" ".join(argv))

    def fault(self, fault: faults.Fault, title: str | None = None, command: str | None = None) -> faults.Fault:
        """Apply a journaled change (cleared at the end of the run) and record it as a step."""
        started = self.now()
        self._apply(fault)
        self.steps.append(StepRecord(title or f"fault: {fault.what} on {fault.where}", command,
                                     fault.where.split(":")[0], 0, "", "", started, self.now() - started,
                                     change=True))
        return fault

    def _apply(self, fault: faults.Fault) -> None:
        faults.apply(self.journal, fault)
        self._faults.append(fault.id)

    def endpoint(self, spec: str) -> faults.Endpoint:
        return faults.endpoint(self.lab_info, spec)

    def drop(self, where: str, match: str, direction: faults.Direction = "in") -> faults.Fault:
        return self.fault(faults.drop(self.endpoint(where), match, direction))

    def reject(self, where: str, match: str, with_: str, direction: faults.Direction = "in") -> faults.Fault:
        return self.fault(faults.reject(self.endpoint(where), match, direction, with_))

    def loss(self, where: str, percent: float, direction: faults.Direction = "both", match: str = "") -> faults.Fault:
        return self.fault(faults.loss(self.endpoint(where), percent, direction, match))

    def rate(self, where: str, rate: str, direction: faults.Direction = "out") -> faults.Fault:
        """A rate limit (tc tbf), e.g. ``run.rate("client:eth0", "1mbit")``."""
        return self.fault(faults.rate(self.endpoint(where), rate, direction))

    def impair(self, where: str, direction: faults.Direction = "out", **keys: str | int) -> faults.Fault:
        """netem's impairments, e.g. ``run.impair("gw:eth1", delay="40ms", jitter="4ms", loss="1%")``.

        Keys and units as in a topology's ``impair:``; applied by netem, or lab's own emulator
        where the kernel has none (lab.net.impair). ``out`` is what leaves ``where``.
        """
        spec = impair.spec_from(keys)
        return self.fault(impair.impair(self.endpoint(where), spec, direction, self.lab_info.get("emulator")))

    def clear(self, *made: faults.Fault) -> None:
        """Undo some of this run's faults now (say, one impairment before the next); the rest end with the run."""
        started = self.now()
        for fault in made:
            self._undo(fault)
        self.steps.append(StepRecord("clear: " + "; ".join(f"{f.what} on {f.where}" for f in made), None,
                                     made[0].where.split(":")[0] if made else "", 0, "", "", started,
                                     self.now() - started, change=True))

    def _undo(self, fault: faults.Fault) -> None:
        faults.clear(self.journal, fault_id=fault.id)
        if fault.id in self._faults:
            self._faults.remove(fault.id)

    def link(self, where: str, up: bool) -> None:
        """Cable pull (``up=False``) or plug back; pulled cables are plugged back at the end."""
        if up:
            self._plug_back(where)
            self.steps.append(StepRecord(f"plug {where} back in", None, where.split(":")[0], 0, "", "",
                                         self.now(), 0.0, change=True))
            return
        self.fault(faults.link_state(self.endpoint(where), up))

    def _plug_back(self, where: str) -> None:
        faults.plug_back(self.journal, self.endpoint(where))

    def expect(self, verdict: Verdict) -> Verdict:
        self.verdicts.append(verdict)
        return verdict

    # --- the end -----------------------------------------------------------
    def cleanup(self) -> list[str]:
        """Stop programs, clear faults and put sysctls back; return problems met (never raises)."""
        problems = []
        for proc in reversed(self._procs):
            try:
                if proc.popen is None:
                    continue
                if proc.popen.poll() is None:
                    proc.stop()
                elif proc.step.rc is None:
                    proc._finish()
            except Exception as exc:  # cleanup must go on
                problems.append(f"stopping {proc.title}: {exc}")
        for fid in reversed(self._faults):
            try:
                faults.clear(self.journal, fault_id=fid)
            except Exception as exc:
                problems.append(f"clearing fault {fid}: {exc}")
        return problems


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value
