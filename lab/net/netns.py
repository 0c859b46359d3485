"""Network namespaces without forking, and one netlink socket per namespace.

``ip netns add`` and pyroute2's ``netns.create`` fork a helper per namespace.
Here the calling thread itself enters a fresh namespace with ``unshare(2)``,
bind-mounts it, opens its netlink socket while inside, and returns with
``setns(2)``. A network namespace is a per-thread attribute, so nothing else
in the process moves.

Where a namespace is mounted: each lab has a namespace directory (*nsdir*), a
small tmpfs of its own in its state directory holding the mount of every
namespace of the lab, and
/run/netns/<name> is a symlink to the namespace's file there, which
``ip netns``, ``ip -n``, ``nsenter --net=`` and ``open(2)`` follow. Taking the
lab down is then one ``umount`` of the nsdir for all of its namespaces instead
of one per namespace: each ``umount`` waits for an RCU grace period, which
costs ~6 µs on an idle machine but ~70 µs for the first ~0.15 s after
namespaces were created (measured in docs/PERFORMANCE.md).
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from lab.errors import EnvironmentProblem
from lab.net import sysctl
from lab.net.rtnl import Rtnl

if TYPE_CHECKING:
    from pyroute2 import IPRoute

NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MS_REC = 16384
MS_SHARED = 1 << 20
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)
_lock = threading.RLock()
T = TypeVar("T")


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def netns_path(name: str) -> str:
    return f"{NETNS_DIR}/{name}"  # names never contain "/" (the topology model forbids it)


def ensure_netns_dir() -> None:
    """Make /run/netns, where ``ip netns`` looks for names (iproute2 never makes it until its first ``add``)."""
    os.makedirs(NETNS_DIR, exist_ok=True)


def mount_nsdir(nsdir: str) -> None:
    """Mount the lab's nsdir: a tmpfs, shared, so that copies of it in other mount namespaces
    (``ip netns exec`` makes one per command) see the namespaces come and go with it."""
    os.makedirs(nsdir, mode=0o700, exist_ok=True)
    _check(_libc.mount(b"lab-netns", nsdir.encode(), b"tmpfs", 0, b"mode=0700,size=64k"), f"mount tmpfs at {nsdir}")
    _check(_libc.mount(b"none", nsdir.encode(), b"none", MS_SHARED, None), f"mount --make-shared {nsdir}")


def unmount_nsdir(nsdir: str) -> bool:
    """Unmount the lab's nsdir with every namespace mounted in it, at once; True if it was mounted.

    The namespaces are then released together, so the kernel destroys them in one batch.
    """
    if _libc.umount2(nsdir.encode(), MNT_DETACH) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOENT, errno.EINVAL):  # gone, or never mounted (up stopped before it)
        return False
    raise OSError(err, f"umount {nsdir}: {os.strerror(err)}")


def mount_point(name: str, nsdir: str) -> str:
    """Where namespace ``name`` is mounted in the lab's nsdir (what /run/netns/<name> links to)."""
    return f"{nsdir}/{name}"


def exists(name: str) -> bool:
    return os.path.exists(netns_path(name))


@contextmanager
def entered(path: str) -> Iterator[None]:
    """Run the body with this thread inside the namespace at ``path``; always come back."""
    with _lock:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(path, os.O_RDONLY)
        try:
            _check(_libc.setns(target, CLONE_NEWNET), f"setns {path}")
            try:
                yield
            finally:
                _check(_libc.setns(home, CLONE_NEWNET), "setns back to the home namespace")
        finally:
            os.close(target)
            os.close(home)


def run_in(path: str, fn: Callable[[], T]) -> T:
    with entered(path):
        return fn()


class Namespace:
    """A namespace of a lab being built: its name and, opened when first needed, an fd on it and a
    raw netlink socket inside it.

    The fd lets a veth's peer be created straight inside this namespace
    (IFLA_NET_NS_FD) and lets a thread enter it without resolving a path.
    :meth:`release` closes both; they reopen on demand from the namespace's
    mount point, so a lab holds only the handles it is using (see :class:`Handles`).
    """

    def __init__(self, name: str, path: str, fd: int | None = None) -> None:
        self.name = name
        self.path = path
        self._fd = fd
        self._rtnl: Rtnl | None = None

    @property
    def fd(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        return self._fd

    @property
    def rtnl(self) -> Rtnl:
        if self._rtnl is None:
            with entered_fd(self.fd):
                self._rtnl = Rtnl(self.name)
        return self._rtnl

    def pending(self) -> int:
        """Requests queued and not sent yet (without opening a socket to ask)."""
        return self._rtnl.pending() if self._rtnl is not None else 0

    def release(self, drop: bool = False) -> None:
        """Close the socket and the fd. A request still queued would be lost: a bug, unless ``drop``
        says the build failed and nothing more is sent."""
        if self.pending() and not drop:
            raise RuntimeError(f"{self.name}: released with {self.pending()} requests not sent")
        if self._rtnl is not None:
            self._rtnl.close()
            self._rtnl = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


OPEN_LIMIT = 256  # namespaces held open at once while a lab is built: 2 descriptors each, under 1,024
OPEN_FILES = 2 * OPEN_LIMIT + 256  # descriptors ``up`` may hold at once, for a lab of any size


class Handles(Mapping[str, Namespace]):
    """The namespaces of a lab being built, by name, with at most about ``limit`` of them open at once.

    Holding every namespace open would take two descriptors per node: 20,000 for
    10,000 nodes, past many machines' hard limit. Callers queue requests on
    ``handles[name].rtnl`` and call :meth:`checkpoint` between items (never
    inside one: a request may carry another namespace's fd). Past the limit it
    sends every queued request, in the order the namespaces were used, and
    releases all but the pinned namespaces (the switch, used by every port).
    """

    def __init__(self, limit: int = OPEN_LIMIT) -> None:
        self.limit = limit
        self._all: dict[str, Namespace] = {}
        self._pinned: set[str] = set()
        self._used: dict[str, Namespace] = {}  # used since the last checkpoint, in order (an ordered set)

    def add(self, ns: Namespace, pinned: bool = False) -> None:
        self._all[ns.name] = ns
        self._used[ns.name] = ns
        if pinned:
            self._pinned.add(ns.name)

    def __getitem__(self, name: str) -> Namespace:
        ns = self._all[name]
        self._used[name] = ns
        return ns

    def __iter__(self) -> Iterator[str]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def flush(self) -> None:
        """Send every queued request (the first refusal raises OSError naming the object)."""
        for ns in self._used.values():
            if ns.pending():
                ns.rtnl.flush()

    def checkpoint(self) -> None:
        """Between two items of a phase: past the limit, send what is queued and release what was used."""
        if len(self._used) <= self.limit:
            return
        self.flush()
        for name, ns in self._used.items():
            if name not in self._pinned:
                ns.release()
        self._used = {name: self._all[name] for name in self._pinned}

    def close(self) -> None:
        """Release every namespace, sent or not (after a failure, what is queued is dropped)."""
        for ns in self._all.values():
            ns.release(drop=True)
        self._used = {}


def claim(name: str, nsdir: str) -> None:
    """Take the name: the symlink /run/netns/<name> to an empty mount point in the lab's nsdir.

    FileExistsError if the name is taken (not ours). Separate from :func:`make`
    so that a helper thread can claim the names ahead of the thread that builds
    the namespaces: creating a file can cost as much as the unshare(2) itself
    when /run sits on a disk.
    """
    point = mount_point(name, nsdir)
    os.symlink(point, netns_path(name))
    fd = os.open(point, os.O_RDONLY | os.O_CREAT, 0o444)
    os.close(fd)


def make(name: str, sysctls: dict[str, str], nsdir: str, claimed: bool = False,
         proc_sys: str = sysctl.PROC_SYS) -> tuple[Namespace, list[str]]:
    """Create namespace ``name``, write its sysctls while inside, open its fd; no fork, one unshare.

    The sysctls are written through ``proc_sys`` (a lab.net.sysctl.FreshProc's, in a big lab).
    Returns the handle and the sysctl keys this kernel does not have. Unless
    :func:`claim` was called for it already (``claimed``), the name is claimed
    first, and an existing one is refused (FileExistsError).
    """
    path = mount_point(name, nsdir)
    if not claimed:
        claim(name, nsdir)
    with _lock:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
            try:
                _check(_libc.mount(b"/proc/thread-self/ns/net", path.encode(), b"none", MS_BIND, None),
                       f"bind-mount namespace at {path}")
                missing = sysctl.write_sysctls(sysctls, proc_sys) if sysctls else []
                ns_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
                return Namespace(name, path, ns_fd), missing
            finally:
                _check(_libc.setns(home, CLONE_NEWNET), "setns back to the home namespace")
        finally:
            os.close(home)


def fresh_sysctls(keys: list[str]) -> dict[str, str]:
    """What a namespace this process makes now holds for ``keys``: read in a throwaway one.

    A new namespace's values are the kernel's defaults or, for IPv4's conf/all and
    conf/default, copies of the machine's own (net.core.devconf_inherit_init_net), the
    same for every namespace ``up`` makes. Writing only the keys that differ spares
    most of a node's sysctl writes. The throwaway namespace has no name and no
    mount: it is gone once this thread leaves it.
    """
    with _lock:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
            try:
                return sysctl.read_sysctls(keys)
            finally:
                _check(_libc.setns(home, CLONE_NEWNET), "setns back to the home namespace")
        finally:
            os.close(home)


def open_namespace(name: str) -> Namespace:
    """The handle of an existing namespace (a container's, once :func:`attach` named it)."""
    return Namespace(name, netns_path(name))


@contextmanager
def entered_fd(fd: int) -> Iterator[None]:
    """:func:`entered` for a namespace already open as ``fd``."""
    with _lock:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            _check(_libc.setns(fd, CLONE_NEWNET), "setns into a lab namespace")
            try:
                yield
            finally:
                _check(_libc.setns(home, CLONE_NEWNET), "setns back to the home namespace")
        finally:
            os.close(home)


def attach(name: str, source: str, nsdir: str) -> None:
    """Give an existing namespace (e.g. a container's /proc/PID/ns/net) the name ``name``."""
    claim(name, nsdir)
    path = mount_point(name, nsdir)
    _check(_libc.mount(source.encode(), path.encode(), b"none", MS_BIND, None), f"bind-mount {source}")


def open_socket(name: str) -> IPRoute:
    """A pyroute2 socket inside the existing namespace ``name`` (for reading; ``up`` uses lab.net.rtnl)."""
    from pyroute2 import IPRoute

    return run_in(netns_path(name), IPRoute)


def identities(nsdir: str, names: list[str]) -> set[tuple[int, int]]:
    """(st_dev, st_ino) of each named namespace: what /proc/PID/ns/net of a process inside stats to.

    Looked up in the lab's ``nsdir`` (one path step each), or through /run/netns for
    a lab without one (built before labs had their own nsdir).
    """
    nsfs = os.stat("/proc/self/ns/net").st_dev  # a name claimed but not (or no longer) mounted is no namespace
    found: set[tuple[int, int]] = set()
    try:
        dir_fd: int | None = os.open(nsdir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        dir_fd = None
    try:
        for name in names:
            try:
                st = os.stat(name, dir_fd=dir_fd) if dir_fd is not None else os.stat(netns_path(name))
            except OSError:
                continue
            if st.st_dev == nsfs:
                found.add((st.st_dev, st.st_ino))
    finally:
        if dir_fd is not None:
            os.close(dir_fd)
    return found


def unname(name: str, nsdir: str | None) -> bool | None:
    """Remove /run/netns/<name> after :func:`unmount_nsdir`: True if removed, False if nothing was
    there, None if what is there is not ours (left alone). Idempotent.

    With the lab's ``nsdir``, only our symlink into it is removed: a name the journal
    holds but that was never claimed (a build stopped first) may be someone else's by
    now. Without (a lab built before labs had their own nsdir), the namespace mounted
    at the path itself is unmounted and removed, as ``ip netns delete`` does.
    """
    path = netns_path(name)
    if nsdir is not None:
        try:
            if os.readlink(path) != mount_point(name, nsdir):
                return None
        except FileNotFoundError:
            return False
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # not a symlink: not ours
                return None
            raise
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        return True
    if _libc.umount2(path.encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err == errno.ENOENT:
            return False
        if err != errno.EINVAL:  # EINVAL: not a mount point (an empty claim): just remove it
            raise OSError(err, f"umount {path}: {os.strerror(err)}")
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def require_root() -> None:
    if os.geteuid() != 0:
        raise EnvironmentProblem("lab needs root to create namespaces", "run it with sudo")
