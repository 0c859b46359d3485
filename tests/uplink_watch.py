"""Watch the machine's uplink for the whole test session: no packet from a lab address may appear there.

A lab is sealed: its namespaces have no interface in the machine's namespace
and no route out, and its "Internet" (DNS, web servers) lives inside it. This
module checks that from the outside. It finds the uplink (the device of the
default route), collects the address ranges the project's labs use (every
topologies/*.yaml, plus the subnets written inline in the integration tests
and the benchmark generator), and runs tcpdump on the uplink with a filter
that matches a packet (IPv4, IPv6 or ARP) whose source is in one of them. The
conftest starts it for the session; tests/integration/test_zz_sealed.py stops
it last and asserts the capture is empty. It only listens: nothing is sent.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INLINE = re.compile(r"(?:subnet|address):\s*\{?\s*(\d{1,3}(?:\.\d{1,3}){3}/\d{1,2})")
NETWORK_CALL = re.compile(r"IPv4Network\(\"(\d{1,3}(?:\.\d{1,3}){3}/\d{1,2})\"\)")
INLINE6 = re.compile(r"(?:subnet6|address6):\s*\"?([0-9a-fA-F:]*:[0-9a-fA-F:]*/\d{1,3})")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def uplink() -> tuple[str, list[ipaddress.IPv4Interface]] | None:
    """The default route's device and its IPv4 addresses; None when the machine has no default route."""
    out = subprocess.run(["ip", "-j", "-4", "route", "show", "default"], capture_output=True, text=True).stdout
    routes = json.loads(out or "[]")
    devices = [r["dev"] for r in routes if r.get("dev")]
    if not devices:
        return None
    dev = devices[0]
    info = json.loads(subprocess.run(["ip", "-j", "-4", "addr", "show", "dev", dev],
                                     capture_output=True, text=True).stdout or "[]")
    addresses = [ipaddress.IPv4Interface(f"{a['local']}/{a['prefixlen']}")
                 for entry in info for a in entry.get("addr_info", []) if a.get("family") == "inet"]
    return dev, addresses


def lab_subnets() -> list[Network]:
    """Every IPv4 and IPv6 range a lab of this project uses: topologies/*.yaml (loaded), inline test and
    benchmark ones."""
    from lab.topology import load_topology

    found: set[Network] = set()
    for path in sorted((ROOT / "topologies").glob("*.yaml")):
        try:
            topo, _ = load_topology(path)
        except Exception:  # noqa: BLE001 - a topology that needs variables: its text still names its ranges
            found |= {ipaddress.IPv4Network(m, strict=False) for m in INLINE.findall(path.read_text())}
            continue
        found |= {ipaddress.ip_network(str(s)) for net in topo.networks.values()
                  for s in (net.subnet, net.subnet6) if s is not None}
        for node in topo.nodes.values():
            for iface in node.interfaces.values():
                for address in (iface.address, iface.address6):
                    if address:
                        found.add(ipaddress.ip_interface(str(address)).network)
    sources = [*(ROOT / "tests" / "integration").glob("*.py"), *(ROOT / "benchmarks").glob("*.py")]
    for path in sources:
        text = path.read_text()
        for cidr in INLINE.findall(text) + NETWORK_CALL.findall(text) + INLINE6.findall(text):
            found.add(ipaddress.ip_network(cidr, strict=False))
    four = ipaddress.collapse_addresses(n for n in found if n.version == 4 and n.prefixlen >= 8)
    six = ipaddress.collapse_addresses(n for n in found if n.version == 6 and n.prefixlen >= 16)
    return [*four, *six]


def bpf(subnets: list[Network], own: list[ipaddress.IPv4Interface]) -> str:
    """A tcpdump filter: the source (IPv4, IPv6 or ARP sender) is in a lab range and is not the machine itself."""
    nets = " or ".join(f"src net {n}" for n in subnets)
    mine = " or ".join(f"src host {a.ip}" for a in own)
    return f"({nets})" + (f" and not ({mine})" if mine else "")


@dataclass
class Verdict:
    device: str
    subnets: list[Network]
    skipped: list[Network]
    packets: list[str] = field(default_factory=list)
    seconds: float = 0.0


class UplinkWatch:
    """tcpdump on the uplink with the lab filter, from :meth:`start` to :meth:`stop` (by its PID only)."""

    def __init__(self, device: str, own: list[ipaddress.IPv4Interface]) -> None:
        self.device = device
        self.own = own
        wanted = lab_subnets()
        # A lab range that overlaps the uplink's own network cannot be told apart from the machine's
        # neighbours; it is left out of the filter and reported, not silently watched badly.
        self.skipped = [n for n in wanted if any(n.overlaps(a.network) for a in own)]
        self.subnets = [n for n in wanted if n not in self.skipped]
        self.dir = Path(tempfile.mkdtemp(prefix="lab-uplink-"))
        self.pcap = self.dir / "uplink.pcap"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.result: Verdict | None = None

    def filter(self) -> str:
        return bpf(self.subnets, self.own)

    def start(self, timeout: float = 10.0) -> None:
        argv = ["tcpdump", "-i", self.device, "-nn", "-U", "-s", "128", "-w", str(self.pcap), self.filter()]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert self.proc.stderr is not None
        deadline = time.monotonic() + timeout
        text = b""
        while time.monotonic() < deadline and self.proc.poll() is None:
            if select.select([self.proc.stderr], [], [], 0.1)[0]:
                text += os.read(self.proc.stderr.fileno(), 4096)
                if b"listening on" in text:
                    self.started = time.monotonic()
                    return
        self._kill()
        raise RuntimeError(f"tcpdump on {self.device} did not start: {text.decode(errors='replace').strip()}")

    def stop(self) -> Verdict:
        """Stop the capture (once) and read what it caught."""
        if self.result is not None:
            return self.result
        seconds = time.monotonic() - self.started
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._kill()
        lines = []
        if self.pcap.exists() and self.pcap.stat().st_size > 24:
            out = subprocess.run(["tcpdump", "-nn", "-r", str(self.pcap)], capture_output=True, text=True)
            lines = out.stdout.splitlines()
        self.result = Verdict(self.device, self.subnets, self.skipped, lines, seconds)
        if not lines:  # keep the capture only when it holds evidence
            shutil.rmtree(self.dir, ignore_errors=True)
        return self.result

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def start_watch() -> UplinkWatch | None:
    """Start watching when we are root, tcpdump exists and there is a default route; else None."""
    if os.geteuid() != 0:
        return None
    found = uplink()
    if found is None:
        return None
    watch = UplinkWatch(*found)
    try:
        watch.start()
    except FileNotFoundError:  # no tcpdump: the sealed test says so
        return None
    return watch
