"""Per-namespace sysctls, written from inside the namespace (offloads: lab.net.rtnl).

/proc/sys/net reflects the network namespace of the thread that opens it, so
these functions are called while the thread is inside the node's namespace.
"""

from __future__ import annotations

import ctypes
import os

PROC_SYS = "/proc/sys"
WINDOW = 128  # new namespaces whose sysctls go through one fresh procfs (see FreshProc)
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


def sysctl_path(key: str, proc_sys: str = PROC_SYS) -> str:
    return proc_sys + "/" + key.replace(".", "/")


class FreshProc:
    """A procfs of lab's own for the sysctls of new namespaces, mounted afresh every WINDOW of them.

    Each network namespace has its own /proc/sys/net/ipv4, /proc/sys/net/ipv6, …, and the
    kernel's dentry cache files them all under one parent and one name. A lookup that misses
    (the first of each in a new namespace) compares itself with every namespace's entry
    (proc_sys_compare, twice), so writing the sysctls of N new namespaces through /proc cost
    O(N²): 11 of 26 s at 4,000 hosts. A procfs instance has dentries of its own: a fresh one
    every WINDOW namespaces keeps each comparison chain under WINDOW entries, and the cost linear.

    It is mounted at ``DIR/.proc``, inside the lab's nsdir, so the nsdir's unmount (``down``,
    after any crash) takes it along; :meth:`close` unmounts it at the end of ``up``.
    """

    def __init__(self, nsdir: str, window: int = WINDOW) -> None:
        self.point = os.path.join(nsdir, ".proc")
        self.window = window
        self.used = 0
        self.mounted = False

    def next_root(self) -> str:
        """The /proc/sys to write the next new namespace's sysctls through."""
        if not self.mounted or self.used >= self.window:
            self.close()
            os.makedirs(self.point, mode=0o700, exist_ok=True)
            flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
            if _libc.mount(b"proc", self.point.encode(), b"proc", flags, None) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"mount proc at {self.point}: {os.strerror(err)}")
            self.mounted, self.used = True, 0
        self.used += 1
        return self.point + "/sys"

    def close(self) -> None:
        if self.mounted:
            if _libc.umount2(self.point.encode(), MNT_DETACH) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"umount {self.point}: {os.strerror(err)}")
            self.mounted = False


def write_sysctls(values: dict[str, str], proc_sys: str = PROC_SYS) -> list[str]:
    """Write each key; return the keys this kernel does not have (the caller decides how loud to be)."""
    missing = []
    for key, value in values.items():
        try:
            fd = os.open(sysctl_path(key, proc_sys), os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            missing.append(key)
            continue
        try:
            os.write(fd, str(value).encode())
        finally:
            os.close(fd)
    return missing


def read_sysctl(key: str) -> str:
    with open(sysctl_path(key)) as f:
        return f.read().strip()


def read_sysctls(keys: list[str]) -> dict[str, str]:
    """The value of each key this kernel has (in the thread's namespace); missing keys are left out."""
    found = {}
    for key in keys:
        try:
            found[key] = read_sysctl(key)
        except FileNotFoundError:
            continue
    return found


def beyond_defaults(wanted: dict[str, str], defaults: dict[str, str]) -> dict[str, str]:
    """The keys of ``wanted`` whose value a new namespace does not already hold.

    Values compare as the kernel prints them, field by field ("1\\t0" is "1 0"). A key
    the kernel lacks is kept, so that writing it reports it missing.
    """
    return {k: v for k, v in wanted.items() if k not in defaults or str(v).split() != defaults[k].split()}
