"""Network namespaces without forking, and one netlink socket per namespace.

``ip netns add`` and pyroute2's ``netns.create`` fork a helper per namespace.
Here the calling thread itself enters a fresh namespace with ``unshare(2)``,
bind-mounts it at /run/netns/<name> (so ``ip netns`` and ``nsenter`` see it),
opens its netlink socket while inside, and returns with ``setns(2)``. A network
namespace is a per-thread attribute, so nothing else in the process moves.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
    """Make /run/netns a shared mount point, as iproute2 does, so our mounts reach other mount namespaces."""
    os.makedirs(NETNS_DIR, exist_ok=True)
    if _libc.mount(b"none", NETNS_DIR.encode(), b"none", MS_SHARED | MS_REC, None) == 0:
        return
    if ctypes.get_errno() != errno.EINVAL:
        _check(-1, f"mount --make-shared {NETNS_DIR}")
    _check(_libc.mount(NETNS_DIR.encode(), NETNS_DIR.encode(), b"none", MS_BIND | MS_REC, None),
           "bind /run/netns")
    _check(_libc.mount(b"none", NETNS_DIR.encode(), b"none", MS_SHARED | MS_REC, None), "share /run/netns")


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


@dataclass
class Namespace:
    """A namespace of a lab being built: its name, an fd on it, and a raw netlink socket inside it.

    The fd lets a veth's peer be created straight inside this namespace
    (IFLA_NET_NS_FD) and lets a thread enter it without resolving a path.
    """

    name: str
    fd: int
    rtnl: Rtnl

    def close(self) -> None:
        self.rtnl.close()
        os.close(self.fd)


def claim(name: str) -> None:
    """Create the empty mount point /run/netns/<name>; FileExistsError if the name is taken (not ours).

    Separate from :func:`make` so that a helper thread can claim the names
    ahead of the thread that builds the namespaces: creating a file can cost
    as much as the unshare(2) itself when /run sits on a disk.
    """
    fd = os.open(netns_path(name), os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
    os.close(fd)


def make(name: str, sysctls: dict[str, str], claimed: bool = False) -> tuple[Namespace, list[str]]:
    """Create namespace ``name``, write its sysctls while inside, open its handle; no fork, one unshare.

    Returns the handle and the sysctl keys this kernel does not have. Unless
    :func:`claim` was called for it already (``claimed``), the name is claimed
    first, and like :func:`create` an existing one is refused (FileExistsError).
    """
    path = netns_path(name)
    if not claimed:
        claim(name)
    with _lock:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            try:
                _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
            except OSError:
                os.unlink(path)
                raise
            try:
                _check(_libc.mount(b"/proc/thread-self/ns/net", path.encode(), b"none", MS_BIND, None),
                       f"bind-mount namespace at {path}")
                missing = sysctl.write_sysctls(sysctls)
                ns_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
                try:
                    return Namespace(name, ns_fd, Rtnl(name)), missing
                except BaseException:
                    os.close(ns_fd)
                    raise
            finally:
                _check(_libc.setns(home, CLONE_NEWNET), "setns back to the home namespace")
        finally:
            os.close(home)


def open_namespace(name: str) -> Namespace:
    """The handle of an existing namespace (a container's, once :func:`attach` named it)."""
    fd = os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        with entered_fd(fd):
            return Namespace(name, fd, Rtnl(name))
    except BaseException:
        os.close(fd)
        raise


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


def attach(name: str, source: str) -> None:
    """Give an existing namespace (e.g. a container's /proc/PID/ns/net) the name ``name``."""
    path = netns_path(name)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
    os.close(fd)
    try:
        _check(_libc.mount(source.encode(), path.encode(), b"none", MS_BIND, None), f"bind-mount {source}")
    except OSError:
        os.unlink(path)
        raise


def open_socket(name: str) -> IPRoute:
    """A pyroute2 socket inside the existing namespace ``name`` (for reading; ``up`` uses lab.net.rtnl)."""
    from pyroute2 import IPRoute

    return run_in(netns_path(name), IPRoute)


def hold(names: list[str]) -> list[int]:
    """Open each namespace that exists (a reference the kernel counts); the caller closes the fds.

    ``down`` holds all of a lab's namespaces while it unmounts them and lets
    go at once: unmounted one by one, each namespace would be destroyed while
    the next ones are being unmounted, the kernel's cleanup competing with the
    unmounting; released together they are destroyed in one batch. Measured
    at 500 namespaces: ``down`` ~2.5x and the destruction ~1.3-2x faster.
    A namespace that cannot be opened (gone, or out of descriptors) is skipped.
    """
    fds = []
    for name in names:
        try:
            fds.append(os.open(netns_path(name), os.O_RDONLY | os.O_CLOEXEC))
        except OSError:
            continue
    return fds


def delete(name: str) -> bool:
    """Unmount and remove /run/netns/<name>; True if something was there. Idempotent."""
    path = netns_path(name)
    if _libc.umount2(path.encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err == errno.ENOENT:
            return False
        if err != errno.EINVAL:  # EINVAL: not a mount point (a stray file): just remove it
            raise OSError(err, f"umount {path}: {os.strerror(err)}")
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def require_root() -> None:
    if os.geteuid() != 0:
        raise EnvironmentProblem("lab needs root to create namespaces", "run it with sudo")
