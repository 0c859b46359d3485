"""Per-lab state: a directory, a lock, and an ownership journal.

The journal is the list of everything the lab created. Each object is
appended (and fsync'ed, one write per batch) *before* it is created, so after
a crash at any point — even SIGKILL — ``lab down`` reads the journal and
removes exactly what may exist, and nothing else. Teardown of a missing
object is a no-op, so ``down`` is idempotent.

Layout: ``$LAB_STATE_DIR`` (default /run/lab, root-only)/<lab>/
  journal.jsonl   one JSON object per line: {"kind": ..., "name": ..., ...}
  lab.json        written when ``up`` finished: the plan's nodes, for exec/inspect
  topology.yaml   the topology the lab was made from, as rendered (jinja2 applied)
  netns/          a tmpfs where the lab's namespaces are mounted (/run/netns/<ns> links here)
  etc/            the nodes' hosts and resolv.conf (/etc/netns/<ns> links here)
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lab.errors import EnvironmentProblem, InputError, LabNotFound
from lab.names import LAB_NAME

DEFAULT_ROOT = "/run/lab"


def state_root() -> Path:
    """Absolute, even if LAB_STATE_DIR is not: /run/netns and /etc/netns link into it."""
    return Path(os.path.abspath(os.environ.get("LAB_STATE_DIR", DEFAULT_ROOT)))


def check_lab_name(lab: str) -> str:
    """A lab name becomes a path under the state root: refuse anything else (``lab down ..`` must not
    make the lab directory /run itself, which teardown would then remove)."""
    if not (isinstance(lab, str) and len(lab) <= 20 and re.fullmatch(LAB_NAME, lab)):
        raise LabNotFound(f"{lab!r} is not a lab name", "lab names are lower-case letters, digits and inner "
                                                         "hyphens; see: lab ls")
    return lab


def lab_dir(lab: str) -> Path:
    return state_root() / check_lab_name(lab)


def netns_dir(lab: str) -> str:
    """Where the lab's namespaces are mounted (see lab.net.netns)."""
    return str(lab_dir(lab) / "netns")


def ensure_root_dir() -> Path:
    """The state root, made root-only if we create it; an existing one must already be safe to use."""
    root = state_root()
    try:
        root.mkdir(mode=0o700, parents=True)
        os.chmod(root, 0o700)
    except FileExistsError:
        st = root.stat()
        if not root.is_dir() or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise InputError(f"state directory {root} is not a private directory of this user",
                             "point LAB_STATE_DIR at a new directory (lab creates it root-only)") from None
    return root


@contextmanager
def lab_lock(lab: str, wait: bool = False) -> Iterator[None]:
    """Hold the lab's lock: two ``up`` of one lab never interleave; the second gets a clear error.

    The lock file goes away with the lab: a holder that leaves no lab directory
    unlinks it before letting go, so ``down`` leaves no state file behind. A
    process that was waiting on the unlinked file sees that its inode is no
    longer the one at the path, and starts over on a fresh file.
    """
    root = ensure_root_dir()
    path = root / f".{check_lab_name(lab)}.lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            raise InputError(f"lab {lab!r} is being changed by another lab process", "wait for it to finish") from None
        except BaseException:  # Ctrl-C while waiting
            os.close(fd)
            raise
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is not None and current.st_ino == os.fstat(fd).st_ino:
            break
        os.close(fd)  # unlinked by the previous holder: take the new file's lock instead
    try:
        yield
    finally:
        if not lab_dir(lab).exists():
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        os.close(fd)


class Journal:
    """Append-only record of what a lab owns. Entries are dicts with at least 'kind' and 'name'."""

    def __init__(self, lab: str, directory: Path | None = None) -> None:
        """A lab's journal in its state directory; ``directory`` for another owner's (a local cluster's)."""
        self.lab = lab
        self.dir = directory if directory is not None else lab_dir(lab)
        self.path = self.dir / "journal.jsonl"

    def exists(self) -> bool:
        return self.path.exists()

    def start(self, meta: dict[str, Any]) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.record([{"kind": "lab", "name": self.lab, **meta}])

    def record(self, entries: list[dict[str, Any]]) -> None:
        """Append a batch of entries durably, in one write."""
        if not entries:
            return
        data = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries).encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def entries(self) -> list[dict[str, Any]]:
        """Every entry; a line torn by a crash mid-write is skipped (its object was not created yet)."""
        try:
            lines = [line for line in self.path.read_text().splitlines() if line.strip()]
        except FileNotFoundError:
            return []
        try:  # one parse for the whole journal (json.dumps never writes a raw newline inside a line)
            parsed = json.loads("[" + ",".join(lines) + "]")
        except json.JSONDecodeError:  # a torn line: parse line by line and skip it
            parsed = []
            for line in lines:
                try:
                    parsed.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return [e for e in parsed if isinstance(e, dict) and "kind" in e]

    def remove(self) -> None:
        """Remove the lab's directory, the journal last (a ``down`` killed meanwhile can be run again).

        Refuses while the namespaces' tmpfs is still mounted there: removing the
        directory would reach into it.
        """
        nsdir = str(self.dir / "netns")  # netns_dir() of a lab
        if os.path.ismount(nsdir):
            raise EnvironmentProblem(f"{nsdir} is still mounted", f"umount -l {nsdir}; then lab down {self.lab}")
        try:
            children = os.listdir(self.dir)
        except FileNotFoundError:
            return
        for child in children:
            path = self.dir / child
            if child == self.path.name:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        self.path.unlink(missing_ok=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def write_lab_info(lab: str, info: dict[str, Any]) -> None:
    path = lab_dir(lab) / "lab.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=2, sort_keys=True))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def read_lab_info(lab: str) -> dict[str, Any]:
    path = lab_dir(lab) / "lab.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    except FileNotFoundError:
        if Journal(lab).exists():
            raise LabNotFound(f"lab {lab!r} is not fully up (a build was interrupted)",
                              f"run: lab down {lab}") from None
        raise LabNotFound(f"no lab named {lab!r} is up", "see: lab ls") from None


def labs_with_state() -> list[str]:
    root = state_root()
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir()
                  if re.fullmatch(LAB_NAME, p.name) and p.is_dir() and (p / "journal.jsonl").exists())


def labs_up() -> list[str]:
    return [lab for lab in labs_with_state() if (lab_dir(lab) / "lab.json").exists()]


def resolve_lab(name: str | None) -> str:
    """The lab a node-addressing verb means: the one named, or the only one that is up."""
    if name:
        if not (lab_dir(name) / "lab.json").exists():
            read_lab_info(name)  # raises the right error
        return name
    up = labs_up()
    if len(up) == 1:
        return up[0]
    if not up:
        raise LabNotFound("no lab is up", "start one with: lab up topologies/book-lan.yaml")
    raise InputError(f"{len(up)} labs are up ({', '.join(up)})", "say which with --lab NAME")
