"""Probes of what this machine's kernel can do, each tried in a throwaway network namespace.

Shared by ``lab doctor`` (which reports them) and the code that picks a mechanism by them
(lab.net.impair: netem where the kernel has it), so neither imports the other.
"""

from __future__ import annotations

import os
import shutil
import subprocess

PROBE_SECONDS = 10
NOT_ROOT = "not tried: probing the kernel needs root (run: sudo lab doctor)"


def run(argv: list[str]) -> subprocess.CompletedProcess[str] | None:
    """Run a probe; None when the program is missing or hangs."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=PROBE_SECONDS)
    except (OSError, subprocess.TimeoutExpired):
        return None


def scratch(argv: list[str]) -> tuple[bool, str]:
    """Run ``argv`` in a throwaway network namespace (``unshare -n``); (worked, last line of its error)."""
    result = run(["unshare", "--net", "--", *argv])
    if result is None:
        return False, "could not run unshare"
    lines = (result.stderr or result.stdout).strip().splitlines()
    return result.returncode == 0, (lines[-1] if lines else f"exit {result.returncode}")


def qdisc_works(kind: str, args: list[str]) -> tuple[bool | None, str]:
    """Try a qdisc on lo in a scratch namespace; None when we cannot try (not root, no tc)."""
    if os.geteuid() != 0:
        return None, NOT_ROOT
    if shutil.which("tc") is None:
        return None, "tc is missing (apt-get install iproute2)"
    return scratch(["tc", "qdisc", "add", "dev", "lo", "root", *args])
