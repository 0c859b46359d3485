"""What a simulated cluster's machines leave on this one once their engines stop: processes, cgroups, data.

Each is found from what the cluster's journal names (its namespaces, cgroups and data
directories), never by a pattern, and removed only when nothing uses it any more.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from lab import procs


def stop_processes(spaces: list[str], cgroups: list[str]) -> None:
    """Stop what is left in the machines' namespaces (containerd, shims) and cgroups (containers)."""
    wanted = set()
    for ns in spaces:
        try:
            st = os.stat(f"/run/netns/{ns}")
            wanted.add((st.st_dev, st.st_ino))
        except OSError:
            continue
    pids = set(procs.in_namespaces(wanted))
    for cgroup in cgroups:
        pids.update(cgroup_pids(Path(cgroup)))
    for pid in sorted(pids):
        procs.stop(pid, procs.start_time(pid), grace=5.0)


def cgroup_pids(path: Path) -> list[int]:
    found: list[int] = []
    if not path.is_dir():
        return found
    for procs_file in path.rglob("cgroup.procs"):
        try:
            found += [int(line) for line in procs_file.read_text().split()]
        except OSError:
            continue
    return found


def remove_cgroup(path: Path, problems: list[str]) -> None:
    if not path.is_dir():
        return
    for child in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            child.rmdir()
        except OSError:
            pass
    try:
        path.rmdir()
    except OSError as exc:
        problems.append(f"cgroup {path}: {exc.strerror}")


def remove_data(path: Path, problems: list[str], root: Path) -> None:
    """The engine's data root, unless something is still mounted inside it (then: say so, remove nothing)."""
    if not path.exists():
        return
    prefix = str(path) + "/"
    with open("/proc/self/mountinfo") as f:
        mounted = [line.split()[4] for line in f if line.split()[4].startswith(prefix)]
    if mounted:
        problems.append(f"{path}: {len(mounted)} mounts still inside (first: {mounted[0]}); "
                        "lab cluster local down again once they are gone")
        return
    shutil.rmtree(path, ignore_errors=True)
    for parent in (path.parent, root):  # the cluster's directory, then the clusters' one, if empty
        if parent.exists() and not any(parent.iterdir()):
            parent.rmdir()
