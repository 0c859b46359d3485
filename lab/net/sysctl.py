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
