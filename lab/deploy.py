"""Bring a lab up (plan → journal → kernel/docker, rolled back on any failure) and take it down.

``up`` writes each batch of objects to the journal before creating them, keeps
one netlink socket per namespace for the whole apply, and works phase by phase
over all namespaces (namespaces, sysctls, bridges, veths, addresses, routes)
so the cost per node is a handful of netlink messages. ``down`` and ``clean``
remove exactly what the journal (and, for containers, the labels) name.
"""

from __future__ import annotations

import os
import queue
import resource
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from lab import names, procs, stopat
from lab.errors import EnvironmentProblem, InputError, LabError
from lab.net import adverts, impair, links, netns, sysctl
from lab.place import Place, Progress
from lab.plan import NO_RESOLVER, Plan, make_plan, networks_record
from lab.state import Journal, lab_dir, lab_lock, labs_with_state, netns_dir, write_lab_info
from lab.teardown import Teardown
from lab.topology.model import Topology

ETC_NETNS = "/etc/netns"


def _no_progress(step: str, done: int, total: int) -> None:
    return None


def up(
    topo: Topology, source_text: str, source_file: str | None = None, progress: Progress = _no_progress,
    emulator: str | None = None, where: Place | None = None,
) -> Plan:
    """Build the lab where it runs (``where``: this machine unless a cluster's :class:`ClusterMachines`);
    on any failure (or Ctrl-C) remove what was made and re-raise.

    The one skeleton for both places: checks, the lab's lock, a journal written before anything is made,
    lab.json, impairments, adverts; an ``OSError`` is an ``EnvironmentProblem`` (exit 3) on either.
    ``emulator`` (netem, lab, auto) applies the topology's impairments; it is kept in the lab's
    info, so later ``lab fault add`` impairments use the same one.
    """
    where = where or ThisMachine()
    where.check(topo)
    progress = stopat.stopping(progress)
    plan = where.plan(topo)
    emulator = impair.choose(emulator) if topo.impairments() or emulator else None
    with lab_lock(topo.name):
        journal = Journal(topo.name)
        if journal.exists():
            raise InputError(f"lab {topo.name!r} is already up (or was interrupted)", f"run: lab down {topo.name}")
        where.ready(plan, topo, progress)
        try:  # from the journal's first line on, any exit (Ctrl-C included) rolls back
            journal.start({"file": source_file, "created": time.time(), "pid": os.getpid(), **where.journal_head()})
            _write_private(lab_dir(topo.name) / "topology.yaml", source_text)
            placed = where.build(plan, topo, journal, progress)
            write_lab_info(topo.name, {
                "name": topo.name, "file": source_file, "created": time.time(), **placed,
                "networks": networks_record(topo), "ipv6": topo.uses_ipv6,
                "bridges": [vars(b) for b in plan.bridges], "emulator": emulator,
            })
            impair.apply_topology(topo, journal, emulator, progress)
            where.advertise(plan, journal, progress)
        except BaseException as exc:
            progress("rolling back", 0, 1)
            try:
                where.teardown(topo.name, journal)
            except Exception as cleanup:  # the first error is the one to report; say the rollback's too
                exc.add_note(f"rollback incomplete ({type(cleanup).__name__}: {cleanup}); run: lab down {topo.name}")
            if isinstance(exc, OSError) and not isinstance(exc, LabError):
                raise EnvironmentProblem(f"could not build lab {topo.name!r}: {exc.strerror or exc}") from exc
            raise
    progress("ready", 1, 1)
    return plan


class ThisMachine:
    """A lab on this machine: network namespaces, veths and bridges through netlink, containers through the
    local engine (a :class:`lab.place.Place`)."""

    def check(self, topo: Topology) -> None:
        netns.require_root()

    def plan(self, topo: Topology) -> Plan:
        return make_plan(topo)

    def ready(self, plan: Plan, topo: Topology, progress: Progress) -> None:
        netns.ensure_netns_dir()
        os.makedirs(ETC_NETNS, exist_ok=True)  # absent on a fresh machine (iproute2 never makes it)
        _refuse_taken_names(plan)

    def journal_head(self) -> dict[str, Any]:
        return {}

    def build(self, plan: Plan, topo: Topology, journal: Journal, progress: Progress) -> dict[str, Any]:
        journal.record([{"kind": "nsdir", "name": "netns"}])
        netns.mount_nsdir(netns_dir(topo.name))
        _apply(plan, topo, journal, progress)
        return {"nodes": {n: vars(s) for n, s in plan.nodes.items()},
                "switch": names.switch_netns(topo.name) if topo.networks else None}

    def advertise(self, plan: Plan, journal: Journal, progress: Progress) -> None:
        adverts.start(plan, journal, progress)

    def teardown(self, lab: str, journal: Journal) -> Teardown:
        return _teardown_here(lab, journal)


def _refuse_taken_names(plan: Plan) -> None:
    """Refuse, before anything is created, a lab whose namespace names are taken by someone else.

    A /run/netns or /etc/netns entry with one of this lab's names that the
    lab's journal does not know belongs to someone else: a hand-made
    namespace, another state directory's lab of the same name, or debris
    the user should look at. lab never adopts or deletes it. (The O_EXCL
    claim in ``_apply`` still guards the moment between this check and the build.)
    """
    wanted = {s.name for s in plan.namespaces}
    taken: set[str] = set()
    for directory in (netns.NETNS_DIR, ETC_NETNS):
        try:
            taken |= wanted & set(os.listdir(directory))
        except FileNotFoundError:
            continue
    if taken:
        first = sorted(taken)
        shown = ", ".join(first[:3]) + (f" and {len(first) - 3} more" if len(first) > 3 else "")
        raise EnvironmentProblem(
            f"namespace {shown} already exists and is not this lab's (nothing was created or removed)",
            f"remove it yourself if it is stale: ip netns delete {first[0]}; rm -r {ETC_NETNS}/{first[0]}")


def _write_private(path: Path, text: str) -> None:
    """Write a state file readable by root only (the umask alone would leave it world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _apply(plan: Plan, topo: Topology, journal: Journal, progress: Progress) -> None:
    spaces = netns.Handles()
    files: _FilesAhead | None = None
    nsdir = netns_dir(plan.lab)
    try:
        _ensure_open_files()
        missing: set[str] = set()
        containers = [s for s in plan.namespaces if s.kind == "container"]
        if containers:
            from lab.nodes import container

            progress("starting containers", 0, len(containers))
            pids = container.start_containers(plan, topo, journal, progress)
            journal.record([{"kind": "netns", "name": s.name} for s in containers])
            for i, spec in enumerate(containers):
                try:
                    netns.attach(spec.name, f"/proc/{pids[spec.node or '']}/ns/net", nsdir)
                except FileExistsError:
                    journal.record([{"kind": "not-ours", "name": s.name} for s in containers[i:]])
                    raise EnvironmentProblem(
                        f"namespace {spec.name} already exists and is not this lab's",
                        f"remove it yourself if it is stale: ip netns delete {spec.name}") from None
                spaces.checkpoint()
                spaces.add(handle := netns.open_namespace(spec.name))
                with netns.entered_fd(handle.fd):
                    missing.update(sysctl.write_sysctls(spec.sysctls))

        plain = [s for s in plan.namespaces if s.kind != "container"]
        journal.record([{"kind": "netns", "name": s.name} for s in plain]
                       + [{"kind": "etcdir", "name": ns} for ns in plan.hosts_files])
        files = _FilesAhead([s.name for s in plain], plan, nsdir)
        files.start()
        defaults = netns.fresh_sysctls(sorted({key for spec in plain for key in spec.sysctls}))
        proc = sysctl.FreshProc(nsdir)
        for i, spec in enumerate(plain):
            if i % 50 == 0:
                progress("namespaces", i, len(plain))
            try:
                files.next_claimed(spec.name)
            except FileExistsError:  # this name and every later one were never claimed by us
                journal.record([{"kind": "not-ours", "name": s.name} for s in plain[i:]])
                raise EnvironmentProblem(
                    f"namespace {spec.name} already exists and is not this lab's",
                    f"remove it yourself if it is stale: ip netns delete {spec.name}") from None
            spaces.checkpoint()
            wanted = sysctl.beyond_defaults(spec.sysctls, defaults)
            made, absent = netns.make(spec.name, wanted, nsdir, claimed=True,
                                      proc_sys=proc.next_root() if wanted else sysctl.PROC_SYS)
            spaces.add(made, pinned=spec.kind == "switch")
            missing.update(absent)
        proc.close()
        _refuse_missing_sysctls(missing, plan)

        progress("links", 0, 3)
        links.queue_links(plan, spaces)
        links.flush(spaces)
        progress("links", 1, 3)
        links.queue_addresses(plan, spaces)
        links.flush(spaces)
        progress("links", 2, 3)
        links.settle(plan, spaces)
        links.tx_checksum_off(plan, spaces)
        for spec in plan.namespaces:
            if spec.late_sysctls:
                spaces.checkpoint()
                with netns.entered_fd(spaces[spec.name].fd):
                    missing.update(sysctl.write_sysctls(spec.late_sysctls))
        _refuse_missing_sysctls(missing, plan)

        files.finish()
        if containers:
            from lab.services import configure_and_start

            configure_and_start(plan, topo, progress)  # /etc files, then the daemons, started and waited for
    finally:
        if files is not None:
            files.stop()
        spaces.close()


def _ensure_open_files() -> None:
    """Raise this process's soft limit to fit what ``up`` holds at once (netns.OPEN_FILES)."""
    need = netns.OPEN_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return
    if hard != resource.RLIM_INFINITY and hard < need:
        raise EnvironmentProblem(
            f"lab up needs {need} open files at once, for a lab of any size; this shell allows {hard}",
            f"raise it first: ulimit -n {need}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


class _FilesAhead(threading.Thread):
    """Claims the namespaces' names, then writes their /etc/netns entries, in a helper thread.

    Creating a file in /run/netns or /etc/netns costs 0.1-0.5 ms where /run
    and /etc sit on a disk (as on the machine in docs/PERFORMANCE.md), about
    as much as building the namespace; the builder thread meanwhile spends
    its time in unshare(2) and netlink with the GIL released, so on two cores
    the two overlap. Everything here is in the journal before it starts.
    """

    def __init__(self, names: list[str], plan: Plan, nsdir: str) -> None:
        super().__init__(name="lab-files-ahead", daemon=True)
        self.names = names
        self.plan = plan
        self.nsdir = nsdir
        self.claimed: queue.SimpleQueue[str | BaseException] = queue.SimpleQueue()
        self.error: BaseException | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        for name in self.names:
            if self.stopping.is_set():
                return
            try:
                netns.claim(name, self.nsdir)
            except BaseException as exc:
                self.claimed.put(exc)
                return
            self.claimed.put(name)
        try:
            _write_etc_files(self.plan, self.stopping)
        except BaseException as exc:
            self.error = exc

    def next_claimed(self, name: str) -> None:
        """Wait until ``name`` (the next in order) is claimed; re-raise the helper's error for it."""
        item = self.claimed.get()
        if isinstance(item, BaseException):
            raise item
        if item != name:
            raise RuntimeError(f"claimed {item}, expected {name}")

    def finish(self) -> None:
        """Wait for the /etc/netns entries; re-raise what went wrong writing them."""
        self.join()
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        self.stopping.set()
        self.join()


def _write_etc_files(plan: Plan, stopping: threading.Event) -> None:
    """Give each node an /etc/netns/<ns>/ (``ip netns exec`` mounts its hosts and resolv.conf over /etc).

    Nodes whose files are identical share one directory under the lab's state
    directory, and /etc/netns/<ns> is a symlink to it: one entry per node
    instead of a directory and two files (the hosts table alone is O(N) bytes,
    so copies would be O(N²)). The first node of a view gets the symlink; the
    others get hard links to that symlink (link(2) does not follow it), so they
    add a name, not an inode: /etc sits on a disk whose file system, right after
    a lab's entries were deleted, scans past each recently freed inode to
    allocate a new one (ext4's recently_deleted), which made 10,000 symlinks
    O(N²). Use :func:`node_etc_dir` to change one node's files.
    """
    shared: dict[tuple[str, str], Path] = {}
    first_link: dict[Path, str] = {}
    for ns_name, text in plan.hosts_files.items():
        if stopping.is_set():
            return
        resolv = plan.resolv_files.get(ns_name, NO_RESOLVER)
        if (text, resolv) not in shared:
            files = {"hosts": text, "resolv.conf": resolv}
            shared[(text, resolv)] = _new_etc_dir(plan.lab, f"shared{len(shared)}", files)
        view = shared[(text, resolv)]
        link = os.path.join(ETC_NETNS, ns_name)
        try:
            if view not in first_link or not _hard_link(first_link[view], link):
                os.symlink(view, link)
                first_link[view] = link
        except FileExistsError:  # a directory a user (or an older lab) left: write into it as before
            path = Path(link)
            path.mkdir(parents=True, exist_ok=True)
            (path / "hosts").write_text(text)
            if ns_name in plan.resolv_files or not (path / "resolv.conf").exists():
                (path / "resolv.conf").write_text(resolv)


def _hard_link(source: str, link: str) -> bool:
    """Link ``link`` to the symlink ``source`` itself; False where the file system will not (a symlink's
    65,000 links on ext4, or no hard links at all): the caller makes a symlink instead."""
    try:
        os.link(source, link, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError:
        return False
    return True


def _new_etc_dir(lab: str, name: str, files: dict[str, str]) -> Path:
    d = lab_dir(lab) / "etc" / name
    d.parent.mkdir(mode=0o700, exist_ok=True)
    d.mkdir(mode=0o700, exist_ok=True)
    for filename, text in {"resolv.conf": NO_RESOLVER, **files}.items():
        # World-readable on purpose: ``ip netns exec`` mounts them over /etc/hosts and /etc/resolv.conf,
        # where a node's non-root programs read them; the 0700 directories keep them private by path.
        path = d / filename
        path.write_text(text)
        os.chmod(path, 0o644)
    return d


def node_etc_dir(lab: str, ns_name: str) -> Path:
    """The node's own /etc/netns/<ns> directory, safe to write into (un-shared first if it was shared)."""
    link = Path(ETC_NETNS) / ns_name
    if not link.is_symlink():
        link.mkdir(parents=True, exist_ok=True)
        return link
    source = link.resolve()
    files = {f.name: f.read_text() for f in source.iterdir() if f.is_file()}
    private = _new_etc_dir(lab, f"node-{ns_name}", files)
    tmp = link.with_name(f".{ns_name}.tmp")
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(private, tmp)
    os.replace(tmp, link)
    return private


def _refuse_missing_sysctls(missing: set[str], plan: Plan) -> None:
    if missing:
        raise EnvironmentProblem(f"this kernel has no sysctl {', '.join(sorted(missing))}",
                                 "remove it from the topology or use a kernel that has it")


def down(lab: str) -> Teardown:
    """Remove everything the lab's journal names. Idempotent: a lab that is not up is not an error."""
    netns.require_root()
    with lab_lock(lab, wait=True):
        return _teardown(lab, Journal(lab))


def _teardown(lab: str, journal: Journal) -> Teardown:
    """Remove what the journal names, where its first line says the lab runs."""
    entries = journal.entries()
    if entries and "cluster" in entries[0]:  # a lab spread over a cluster's machines
        from lab.cluster.teardown import teardown

        result: Teardown = teardown(lab, journal)
        return result
    return _teardown_here(lab, journal)


def _teardown_here(lab: str, journal: Journal) -> Teardown:
    """A lab of this machine: its processes, containers, namespaces and /etc/netns entries."""
    entries = journal.entries()
    report = Teardown(lab)
    for entry in reversed(entries):
        if entry["kind"] == "process":
            if procs.stop(int(entry["pid"]), entry.get("start_time")):
                report.removed.append(f"process {entry['name']}")
    container_names = [e["name"] for e in entries if e["kind"] == "container"]
    # A container is journaled before it is started, so a journal naming none means the lab
    # started none: skip Docker entirely (``lab clean`` still sweeps labelled orphans).
    if container_names or not entries:
        try:
            from lab.nodes import container

            removed, skipped = container.remove_containers(lab, container_names)
            report.removed += [f"container {n}" for n in removed]
            report.skipped += skipped
        except EnvironmentProblem as exc:
            if container_names:
                report.skipped.append(f"containers {', '.join(container_names)}: {exc.message}")
    not_ours = {e["name"] for e in entries if e["kind"] == "not-ours"}
    namespaces = [e["name"] for e in entries if e["kind"] == "netns" and e["name"] not in not_ours]
    etc_entries = [e["name"] for e in entries if e["kind"] == "etcdir" and e["name"] not in not_ours]
    has_nsdir = any(e["kind"] == "nsdir" for e in entries)
    nsdir = netns_dir(lab)
    # Processes still inside one of the namespaces (see procs.in_namespaces) are stopped while
    # the namespaces still have their names: a ``down`` killed after the unmount would not find them.
    for pid, started in [(pid, procs.start_time(pid))
                         for pid in procs.in_namespaces(netns.identities(nsdir, namespaces))]:
        if procs.stop(pid, started, grace=1.0):
            report.removed.append(f"process {pid} (running in a namespace of the lab)")
    if has_nsdir:
        netns.unmount_nsdir(nsdir)  # every namespace of the lab at once (see lab.net.netns)
    for name in namespaces:
        unnamed = netns.unname(name, nsdir if has_nsdir else None)
        if unnamed:
            report.removed.append(f"namespace {name}")
        elif unnamed is None:
            report.skipped.append(f"namespace {name}: /run/netns/{name} is not this lab's, left alone")
    report.removed += _remove_etc_entries(etc_entries)
    journal.remove()
    return report


def _remove_etc_entries(etc_entries: list[str]) -> list[str]:
    """Unlink the lab's /etc/netns/<ns> entries (symlinks into the state directory; a directory if
    one was there before); returns the paths removed."""
    removed = []
    for name in etc_entries:
        if "/" in name or not name.startswith(names.PREFIX):
            continue  # only a lab's own entry directly in /etc/netns (no pathlib here: N entries)
        path = os.path.join(ETC_NETNS, name)
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        except IsADirectoryError:
            shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def clean() -> list[Teardown]:
    """``down`` for every lab with a journal, then any container labelled as a lab's whose journal is gone.

    What looks like a lab's but no journal here names (a hand-made ``lab-*``
    namespace, another state directory's lab) is left alone and listed as skipped.
    """
    netns.require_root()
    reports = [down(lab) for lab in labs_with_state()]
    others = Teardown("(no journal)")
    try:
        from lab.nodes import container

        orphans, others.skipped = container.remove_orphans(known=set())
        others.removed = [f"container {n}" for n in orphans]
    except EnvironmentProblem:
        pass
    try:
        foreign = sorted(n for n in os.listdir(netns.NETNS_DIR) if n.startswith(names.PREFIX))
    except FileNotFoundError:
        foreign = []
    others.skipped += [f"namespace {n}: no lab journal here names it, left alone" for n in foreign]
    if others.removed or others.skipped:
        reports.append(others)
    return reports
