"""Per-namespace sysctls and interface offloads, written from inside the namespace.

/proc/sys/net reflects the network namespace of the thread that opens it, so
these functions are called while the thread is inside the node's namespace.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct

SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM = 0x17


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


def disable_tx_checksum(ifname: str) -> None:
    """``ethtool -K IF tx off``: so captures on the sender show correct checksums."""
    value = ctypes.create_string_buffer(struct.pack("II", ETHTOOL_STXCSUM, 0))
    ifreq = struct.pack("16sP", ifname.encode(), ctypes.addressof(value))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)
