"""Per-namespace sysctls, written from inside the namespace (offloads: lab.net.rtnl).

/proc/sys/net reflects the network namespace of the thread that opens it, so
these functions are called while the thread is inside the node's namespace.
"""

from __future__ import annotations

import os


def sysctl_path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


def write_sysctls(values: dict[str, str]) -> list[str]:
    """Write each key; return the keys this kernel does not have (the caller decides how loud to be)."""
    missing = []
    for key, value in values.items():
        try:
            fd = os.open(sysctl_path(key), os.O_WRONLY | os.O_CLOEXEC)
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
