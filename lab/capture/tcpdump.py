"""Run tcpdump inside a node's network namespace, losing nothing at the start or the end.

tcpdump is started with ``--immediate-mode -U`` (each packet written as it
arrives, no TPACKET_V3 block timeout holding packets back) and we wait for its
"listening on" line before any step acts: catalogue rule 0.5, where stopping
tcpdump too soon lost every packet. ``-Z root`` keeps it able to write into the
root-only run directory. Immediate mode means TPACKET_V2, whose ring slots are
snaplen-sized when the interface has offloads (256 KiB with ``-s 0``): the
default 2 MiB ring holds only 8 frames and a bulk burst loses most of its
packets. So the snaplen is the largest IPv4 packet and the ring is enlarged.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from lab.errors import EnvironmentProblem
from lab.nodes.namespace import Namespace

READY_TIMEOUT = 10.0
SETTLE = 0.3  # let the last packets of a step reach the ring before stopping
SNAPLEN = 65535  # the largest IPv4 packet; lab senders use gso_max_segs 1, so frames are MTU-sized anyway
HEADERS = 128  # a snaplen that keeps the Ethernet, IP and TCP headers with options
RING_KIB = 32768  # -B: ~512 slots; 2 MiB with -s 0 (the defaults) dropped 60 % of a 1 MB transfer


def tcpdump_binary() -> str:
    path = shutil.which("tcpdump") or ("/usr/bin/tcpdump" if os.path.exists("/usr/bin/tcpdump") else None)
    if not path:
        raise EnvironmentProblem("tcpdump is not installed", "apt-get install tcpdump (or run scripts/setup.sh)")
    return path


@dataclass
class Tcpdump:
    """One running tcpdump on one interface of one namespace."""

    point: str
    inside: Namespace  # where the interface is (lab.nodes.namespace): on this machine or a cluster's
    ifname: str
    pcap: Path
    bpf: str | None = None
    snaplen: int = SNAPLEN  # headers only (e.g. 128) for a burst of thousands: far more ring slots
    proc: subprocess.Popen[bytes] | None = None
    stderr_lines: list[str] = field(default_factory=list)

    remote_pcap: str | None = None  # on a cluster's machine: where tcpdump writes, fetched at stop

    def argv(self) -> list[str]:
        """tcpdump writes the file where it runs: here, or on the node's machine (fetched when it stops,
        since a stream through the engine can fall behind a burst and make the kernel drop packets)."""
        binary = tcpdump_binary() if self.inside.local else "tcpdump"
        if not self.inside.local and self.remote_pcap is None:
            self.remote_pcap = f"/tmp/.lab-capture-{os.getpid()}-{time.monotonic_ns()}.pcap"
        target = str(self.pcap) if self.inside.local else str(self.remote_pcap)
        args = [binary, "-i", self.ifname, "-nn", "--immediate-mode", "-U", "-Z", "root", "-s", str(self.snaplen),
                "-B", str(RING_KIB), "-w", target]
        if self.bpf:
            args.append(self.bpf)
        return self.inside.command(args)

    def start(self) -> None:
        self.pcap.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert self.proc.stderr is not None
        deadline = time.monotonic() + READY_TIMEOUT
        buf = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stderr], [], [], 0.1)
            if ready:
                chunk = os.read(self.proc.stderr.fileno(), 4096)
                if not chunk:
                    break
                buf += chunk
                if b"listening on" in buf:
                    self.stderr_lines = buf.decode(errors="replace").splitlines()
                    return
            if self.proc.poll() is not None:
                break
        self.stop()
        text = buf.decode(errors="replace").strip().splitlines()
        raise EnvironmentProblem(f"tcpdump on {self.point} did not start: {text[-1] if text else 'no output'}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.inside.signal(self.proc, signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=5 if self.inside.local else 20)
            self.stderr_lines += err.decode(errors="replace").splitlines()
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
        if self.remote_pcap is not None:
            self.pcap.write_bytes(self.inside.take_file(self.remote_pcap))

    @property
    def dropped(self) -> int:
        """Packets tcpdump says the kernel dropped (0 when it says nothing)."""
        for line in self.stderr_lines:
            if "dropped by kernel" in line:
                return int(line.split()[0])
        return 0


class CaptureSet:
    """Several tcpdumps started together (each waited for) and stopped together."""

    def __init__(self, dumps: list[Tcpdump]) -> None:
        self.dumps = dumps

    def start(self) -> None:
        try:
            for dump in self.dumps:
                dump.start()
        except BaseException:
            self.stop(settle=False)
            raise

    def stop(self, settle: bool = True) -> None:
        if settle:
            time.sleep(SETTLE)
        for dump in self.dumps:
            dump.stop()

    @property
    def pids(self) -> list[int]:
        return [d.proc.pid for d in self.dumps if d.proc is not None]

    def pcaps(self) -> dict[str, Path]:
        return {d.point: d.pcap for d in self.dumps}
