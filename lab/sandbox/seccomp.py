"""A seccomp filter for the jail: the system calls a reader's program has no business making fail EPERM.

The jail's namespaces, user and read-only root already keep a program away from the machine; these
calls reach kernel state that namespaces do not separate. Keyrings (``add_key``, ``request_key``,
``keyctl``): a uid's keyring outlives its processes, so two submissions that draw the same sandbox
slot could talk through it, and ``request_key`` makes the kernel run ``/sbin/request-key`` as root.
``bpf``, ``perf_event_open``, ``userfaultfd``, ``io_uring_*``, ``kexec_*``: large attack surface, no
use to a network program. Everything else is allowed: a book listing uses plain sockets, epoll,
signals, fork and threads.

Stdlib only (ctypes); x86_64 and aarch64, the architectures lab runs on. Elsewhere ``install``
returns False and the jail says so.
"""

from __future__ import annotations

import ctypes
import errno
import os

PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000
BPF_LD_W_ABS, BPF_JEQ_K, BPF_JGE_K, BPF_RET_K = 0x20, 0x15, 0x35, 0x06
X32_BIT = 0x40000000  # x86_64's x32 calls: the same numbers with this bit, under the same arch: refused
ARCH_OFFSET, NR_OFFSET = 4, 0  # struct seccomp_data: int nr; __u32 arch; ...

# name → (x86_64 number, aarch64 number)
DENIED: dict[str, tuple[int, int]] = {
    "add_key": (248, 217), "request_key": (249, 218), "keyctl": (250, 219),
    "bpf": (321, 280), "perf_event_open": (298, 241), "userfaultfd": (323, 282),
    "io_uring_setup": (425, 425), "io_uring_enter": (426, 426), "io_uring_register": (427, 427),
    "kexec_load": (246, 104), "kexec_file_load": (320, 294),
}
ARCHES = {"x86_64": (0xC000003E, 0), "aarch64": (0xC00000B7, 1)}  # AUDIT_ARCH_*, column of DENIED


class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]


def program(arch: str) -> list[tuple[int, int, int, int]]:
    """The BPF program: another architecture's calls (32-bit, x32) get EPERM, each denied number EPERM,
    the rest is allowed."""
    audit, column = ARCHES[arch]
    deny = SECCOMP_RET_ERRNO | errno.EPERM
    numbers = sorted({pair[column] for pair in DENIED.values()})
    code = [(BPF_LD_W_ABS, 0, 0, ARCH_OFFSET), (BPF_JEQ_K, 1, 0, audit), (BPF_RET_K, 0, 0, deny),
            (BPF_LD_W_ABS, 0, 0, NR_OFFSET), (BPF_JGE_K, len(numbers) + 1, 0, X32_BIT)]
    for i, number in enumerate(numbers):
        last = len(numbers) - 1 - i
        code.append((BPF_JEQ_K, last + 1, 0, number))  # equal: jump to the EPERM return after the list
    code += [(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW), (BPF_RET_K, 0, 0, deny)]
    return code


def install() -> bool:
    """Load the filter into this process (after ``no_new_privs``); it is inherited across fork and exec."""
    arch = os.uname().machine
    if arch not in ARCHES:
        return False
    code = program(arch)
    filters = (SockFilter * len(code))(*[SockFilter(*op) for op in code])
    prog = SockFprog(len(code), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "seccomp filter")
    return True
