"""What this machine lacks or has wrong for building labs, and what to do about it.

Each check looks at one thing (root, Docker, iptables, a qdisc, a tool, a
kernel limit), says ``ok``, ``warn`` (a feature is missing or a limit is low)
or ``fail`` (lab cannot do its main work), and gives a one-line fix. ``lab
doctor`` prints them all; :func:`preflight` runs only the checks a command
needs and refuses with the same words, before anything is created.

Kernel features are tried, not guessed: each probe runs under ``unshare -n``,
so it gets a scratch network namespace of its own that the kernel removes when
the probe exits (nothing can leak, even if lab is killed).
"""

from __future__ import annotations

import os
import platform
import re
import resource
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from lab.errors import EnvironmentProblem
from lab.net.netns import NETNS_DIR, OPEN_FILES
from lab.net.probe import NOT_ROOT, qdisc_works
from lab.net.probe import run as _run
from lab.net.probe import scratch as _scratch

OK, WARN, FAIL = "ok", "warn", "fail"
DEFAULT_NODES = 20
KIB_PER_NODE = 300  # kernel memory of a namespace node with one veth (measured: 250-293 KiB at 2,000-4,000 hosts)


@dataclass
class Check:
    """One row of the doctor's table."""

    name: str
    status: str  # ok | warn | fail
    summary: str  # what was found, one line
    fix: str = ""  # what to do about it, one line (empty when nothing is needed)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


# ----------------------------------------------------------------------------- helpers


def _is_root() -> bool:
    return os.geteuid() == 0


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _first_line(argv: list[str]) -> str:
    result = _run(argv)
    if result is None:
        return ""
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0] if lines else ""


# ----------------------------------------------------------------------------- the checks


def check_root() -> Check:
    if _is_root():
        return Check("root", OK, "running as root")
    return Check("root", FAIL, "lab needs root to create namespaces, veths and bridges",
                 "run it with sudo (in CI: sudo -E .venv/bin/lab ...)")


def check_docker() -> Check:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        import docker

        client = docker.from_env(timeout=5)
        version = client.version().get("Version", "?")
        client.close()
        return Check("docker", OK, f"Docker Engine {version} answers at {host}")
    except Exception as exc:  # docker raises several unrelated types when no engine answers
        installed = shutil.which("dockerd") is not None
        start = ("start it: systemctl start docker (without systemd: nohup dockerd >/var/log/dockerd.log 2>&1 &)"
                 if installed else "install it: apt-get install docker.io, then systemctl start docker")
        return Check("docker", FAIL, f"no Docker engine answers at {host} ({type(exc).__name__}); container nodes "
                                     "(kind: container, the ch.4 DNS/proxy/web experiments) cannot start", start)


def check_iptables() -> Check:
    if shutil.which("iptables") is None:
        return Check("iptables", FAIL, "iptables is missing: loss and drop faults (the SYN-drop and loss "
                                       "experiments) need it", "apt-get install iptables")
    version = _first_line(["iptables", "--version"])
    found = re.search(r"\((nf_tables|legacy)\)", version)
    backend = found.group(1) if found else "unknown backend"
    return Check("iptables", OK, f"{version or 'iptables'}: {backend} backend; lab's rules live in the lab's own "
                                 "namespaces, so either backend works")


def check_statistic() -> Check:
    if not _is_root():
        return Check("iptables statistic", WARN, NOT_ROOT)
    if shutil.which("iptables") is None:
        return Check("iptables statistic", FAIL, "cannot try the statistic match: iptables is missing",
                     "apt-get install iptables")
    worked, detail = _scratch(["iptables", "-w", "-A", "OUTPUT", "-m", "statistic", "--mode", "random",
                               "--probability", "0.5", "-j", "DROP"])
    if worked:
        return Check("iptables statistic", OK, "the statistic match works (tried in a scratch namespace): "
                                               "random loss faults are available")
    return Check("iptables statistic", FAIL, f"the statistic match does not work ({detail}): random loss "
                                             "faults are unavailable", "load xt_statistic: modprobe xt_statistic")


def check_br_netfilter() -> Check:
    if Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
        return Check("br_netfilter", OK, "br_netfilter is loaded: bridged frames pass iptables, but lab's bridges "
                                         "live in the lab's switch namespace, whose tables are empty, so the host's "
                                         "rules never see lab traffic (informational)")
    return Check("br_netfilter", OK, "br_netfilter is not loaded: bridged lab frames skip iptables entirely "
                                     "(informational; lab needs neither)")


def check_link_emulator() -> Check:
    """Which emulator impairments (delay, jitter, duplicate, reorder, corrupt) will use here, and that it works."""
    import sys

    from lab.net import impair

    try:
        chosen = impair.choose()
    except EnvironmentProblem as exc:
        return Check("link emulator", FAIL, exc.message, exc.hint or "")
    except Exception as exc:  # a bad $LAB_EMULATOR
        return Check("link emulator", FAIL, str(getattr(exc, "message", exc)), "LAB_EMULATOR=auto, netem or lab")
    netem, netem_detail = qdisc_works("netem", ["netem", "delay", "1ms"])
    if netem is None:
        return Check("link emulator", WARN, netem_detail)
    if chosen == "netem":
        if netem:
            return Check("link emulator", OK, "netem works: impairments use it (LAB_EMULATOR=lab forces lab's own)")
        return Check("link emulator", FAIL, f"LAB_EMULATOR=netem, but this kernel has no sch_netem ({netem_detail})",
                     "unset LAB_EMULATOR (lab then uses its own emulator) or use a kernel with CONFIG_NET_SCH_NETEM")
    worked, detail = _scratch([sys.executable, "-m", "lab.net.emulator", "probe"])
    why = "forced by LAB_EMULATOR=lab" if netem else f"no sch_netem here: {netem_detail}"
    if worked:
        return Check("link emulator", OK, f"lab's own emulator (a daemon reading NFQUEUEs) does "
                                          f"delay, jitter, loss, duplicate, reorder, corrupt, rate, limit ({why})")
    return Check("link emulator", WARN, f"{why}; lab's own emulator cannot run either ({detail}): delay and the other "
                                        "impairments are unavailable; loss, drops, cable pulls and rate limits work",
                 "lab's emulator needs NFQUEUE (CONFIG_NETFILTER_NETLINK_QUEUE) and nf_tables with the xtables "
                 "NFQUEUE target (CONFIG_NFT_COMPAT, CONFIG_NETFILTER_XT_TARGET_NFQUEUE)")


def check_rate_qdiscs() -> Check:
    results = {}
    for kind, args in (("tbf", ["tbf", "rate", "1mbit", "burst", "32kbit", "latency", "400ms"]),
                       ("htb", ["handle", "1:", "htb", "default", "10"])):
        results[kind] = qdisc_works(kind, args)
    if any(worked is None for worked, _ in results.values()):
        return Check("tbf/htb", WARN, next(detail for worked, detail in results.values() if worked is None))
    missing = [kind for kind, (worked, _) in results.items() if not worked]
    if not missing:
        return Check("tbf/htb", OK, "tbf and htb work: rate-limit faults are available")
    return Check("tbf/htb", WARN, f"{' and '.join(missing)} not available: rate-limit faults are unavailable",
                 "use a kernel with CONFIG_NET_SCH_TBF and CONFIG_NET_SCH_HTB")


def _tool(name: str, binary: str, status_if_missing: str, why: str, fix: str,
          version_args: list[str] | None = None) -> Check:
    path = shutil.which(binary)
    if path is None:
        return Check(name, status_if_missing, f"{binary} is missing: {why}", fix)
    version = _first_line([path, *(version_args or ["--version"])])
    return Check(name, OK, f"{path}" + (f" ({version})" if version else ""))


def check_tcpdump() -> Check:
    return _tool("tcpdump", "tcpdump", FAIL, "experiments capture their packets with it", "apt-get install tcpdump")


def check_strace() -> Check:
    return _tool("strace", "strace", WARN, "the second half's experiments (epoll, signals, timers) count system "
                 "calls with it", "apt-get install strace", ["-V"])


def check_observers() -> Check:
    """The tools the book's chapter 17 reads a server with, which the second half's experiments may ask for."""
    missing = [tool for tool in ("lsof", "netstat", "ifstat", "sar") if shutil.which(tool) is None]
    if missing:
        return Check("observers", WARN, f"{', '.join(missing)} missing: the book's ch.17 tools, for experiments "
                     "that read a server with them", "apt-get install lsof net-tools ifstat sysstat")
    return Check("observers", OK, "lsof, netstat, ifstat, sar")


def check_compilers() -> Check:
    """A reader's C or C++ program (``--use``, ``lab grade``) is compiled with the machine's cc and c++."""
    missing = [binary for binary in ("cc", "c++") if shutil.which(binary) is None]
    if missing:
        return Check("compilers", WARN, f"{' and '.join(missing)} missing: a reader's C/C++ source (--use NAME.c, "
                     "lab grade) cannot be compiled; executables and scripts still run", "apt-get install gcc g++")
    return Check("compilers", OK, "cc and c++: a reader's C/C++ source is compiled in the sandbox")


def check_ethtool() -> Check:
    return _tool("ethtool", "ethtool", WARN, "lab itself does not need it (it turns offloads off through the "
                 "kernel's ioctl), but it is the way to look at a NIC's offloads by hand",
                 "apt-get install ethtool")


def check_radvd() -> Check:
    return _tool("radvd", "radvd", WARN, "a router interface with ra: true (IPv6 router advertisements, SLAAC) "
                 "needs it; static IPv6 addresses do not", "apt-get install radvd", ["--version"])


def check_nsenter() -> Check:
    return _tool("nsenter", "nsenter", FAIL, "lab exec and captures enter the nodes' namespaces with it",
                 "apt-get install util-linux")


def check_iproute2() -> Check:
    missing = [b for b in ("ip", "tc", "ss") if shutil.which(b) is None]
    if missing:
        return Check("iproute2", FAIL, f"{', '.join(missing)} missing: faults and socket kills use them",
                     "apt-get install iproute2")
    return Check("iproute2", OK, _first_line(["ip", "-V"]) or "ip, tc and ss present")


def check_netns_dir() -> Check:
    """lab names each namespace with a symlink in /run/netns (into the lab's own tmpfs of mounts)."""
    where = NETNS_DIR if os.path.isdir(NETNS_DIR) else "/run"
    if not os.access(where, os.W_OK):
        return Check("/run/netns", FAIL if _is_root() else WARN, f"{where} is not writable: lab cannot name "
                     "namespaces under /run/netns", "run as root on a system with a writable /run")
    return Check("/run/netns", OK, "writable: lab names its namespaces there, for ip netns and nsenter")


def check_inotify(nodes: int = DEFAULT_NODES) -> Check:
    instances = _read_int("/proc/sys/fs/inotify/max_user_instances")
    watches = _read_int("/proc/sys/fs/inotify/max_user_watches")
    if instances is None or watches is None:
        return Check("inotify", WARN, "cannot read fs.inotify limits")
    # An estimate: a container node's daemons and its containerd shim hold about one inotify instance
    # (they all run as root, so they share root's allowance with the machine's own daemons).
    need_instances, need_watches = 64 + nodes, 8192 + 256 * nodes
    found = f"max_user_instances={instances}, max_user_watches={watches}"
    if instances >= need_instances and watches >= need_watches:
        return Check("inotify", OK, f"{found}: enough for {nodes} container nodes")
    return Check("inotify", WARN, f"{found}: low for {nodes} container nodes (their daemons and containerd's "
                                  "shims share root's inotify allowance; running out gives 'too many open files')",
                 f"sysctl -w fs.inotify.max_user_instances={max(instances, need_instances)} "
                 f"fs.inotify.max_user_watches={max(watches, need_watches)}")


def check_neighbours(nodes: int = DEFAULT_NODES) -> Check:
    base = "/proc/sys/net/ipv4/neigh/default/gc_thresh"
    thresh = [_read_int(f"{base}{i}") for i in (1, 2, 3)]
    if None in thresh:
        return Check("neighbour table", WARN, "cannot read net.ipv4.neigh.default.gc_thresh1/2/3")
    t1, t2, t3 = (int(t or 0) for t in thresh)
    entries = nodes * (nodes - 1)
    found = f"gc_thresh1/2/3={t1}/{t2}/{t3}"
    why = (f"{nodes} nodes on one LAN that all talk to each other keep up to {entries} ARP entries, and the limits "
           "count every namespace together")
    fix = (f"sysctl -w net.ipv4.neigh.default.gc_thresh1={max(t1, entries // 2)} "
           f"net.ipv4.neigh.default.gc_thresh2={max(t2, entries)} "
           f"net.ipv4.neigh.default.gc_thresh3={max(t3, 2 * entries)}")
    if entries > t3:
        return Check("neighbour table", WARN, f"{found}: {why}; past gc_thresh3 the kernel drops packets "
                                              "('neighbour table overflow')", fix)
    if entries > t2:
        return Check("neighbour table", WARN, f"{found}: {why}; past gc_thresh2 entries are evicted and "
                                              "captures show extra ARP", fix)
    return Check("neighbour table", OK, f"{found}: enough for {nodes} nodes ({entries} entries at most)")


def check_open_files(nodes: int = DEFAULT_NODES) -> Check:
    """``up`` holds at most OPEN_FILES descriptors at once, whatever the lab's size."""
    need = OPEN_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    found = f"open files: soft {_limit(soft)}, hard {_limit(hard)}"
    if hard != resource.RLIM_INFINITY and hard < need:
        return Check("open files", FAIL, f"{found}: lab up needs {need} at once for a lab of any size",
                     f"raise the hard limit: ulimit -Hn {need} (or LimitNOFILE= in a service unit)")
    return Check("open files", OK, f"{found}: enough; lab up holds at most {need} at once for any lab "
                                   f"({nodes} nodes included), and raises the soft limit itself")


def _limit(value: int) -> str:
    return "unlimited" if value == resource.RLIM_INFINITY else str(value)


def check_memory(nodes: int = DEFAULT_NODES) -> Check:
    """About KIB_PER_NODE of kernel memory per namespace node; containers need more (their daemons)."""
    available = None
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            available = int(line.split()[1])
    if available is None:
        return Check("memory", WARN, "cannot read MemAvailable from /proc/meminfo")
    need = nodes * KIB_PER_NODE
    found = (f"{available // 1024} MiB available; {nodes} namespace nodes take about {need // 1024 or 1} MiB "
             "of kernel memory")
    if need > available * 0.8:
        return Check("memory", WARN, f"{found}: too little for the lab and what runs in it",
                     f"free memory, or build at most {int(available * 0.8) // KIB_PER_NODE} nodes on this machine "
                     "(lab up --cluster FILE spreads a lab over several)")
    return Check("memory", OK, f"{found} (container nodes take more: their daemons)")


def check_kernel() -> Check:
    release = platform.release()
    if Path("/proc/sys/net/ipv4/tcp_syn_linear_timeouts").exists():
        value = _read_int("/proc/sys/net/ipv4/tcp_syn_linear_timeouts")
        return Check("kernel", OK, f"Linux {release}: has tcp_syn_linear_timeouts (={value}; since 6.5): the first "
                                   "SYN retransmissions are 1 s apart instead of doubling as in the book; the "
                                   "experiments set it per namespace and say so")
    return Check("kernel", OK, f"Linux {release}: no tcp_syn_linear_timeouts (before 6.5): SYN retransmissions "
                               "double from the first one, as in the book")


CHECKS: dict[str, Callable[[], Check]] = {
    "root": check_root,
    "docker": check_docker,
    "iptables": check_iptables,
    "statistic": check_statistic,
    "br_netfilter": check_br_netfilter,
    "link emulator": check_link_emulator,
    "rate": check_rate_qdiscs,
    "tcpdump": check_tcpdump,
    "ethtool": check_ethtool,
    "compilers": check_compilers,
    "strace": check_strace,
    "observers": check_observers,
    "radvd": check_radvd,
    "nsenter": check_nsenter,
    "iproute2": check_iproute2,
    "netns": check_netns_dir,
    "inotify": check_inotify,
    "neighbours": check_neighbours,
    "open files": check_open_files,
    "memory": check_memory,
    "kernel": check_kernel,
}


def run_checks(nodes: int = DEFAULT_NODES) -> list[Check]:
    """Every check, in table order; the limits are judged for a lab of ``nodes`` nodes."""
    sized = {"inotify": lambda: check_inotify(nodes), "neighbours": lambda: check_neighbours(nodes),
             "open files": lambda: check_open_files(nodes), "memory": lambda: check_memory(nodes)}
    return [sized.get(key, fn)() for key, fn in CHECKS.items()]


def preflight(needs: set[str]) -> None:
    """Refuse early, in the doctor's words, when a check that ``needs`` names is not ok.

    ``needs`` holds keys of :data:`CHECKS`, e.g. ``{"root", "docker"}`` for a
    topology with container nodes. Raises EnvironmentProblem (exit 3).
    """
    unknown = needs - CHECKS.keys()
    if unknown:
        raise ValueError(f"unknown preflight needs: {sorted(unknown)}")
    for key in CHECKS:  # table order: root first, so the most basic problem is the one reported
        if key in needs:
            check = CHECKS[key]()
            if check.status != OK:
                raise EnvironmentProblem(check.summary, check.fix or None)


def needs_for(topo: object) -> set[str]:
    """What building ``topo`` (a Topology) needs from the machine."""
    needs = {"root"}
    nodes = getattr(topo, "nodes", {})
    if any(getattr(node, "kind", None) == "container" for node in nodes.values()):
        needs.add("docker")
    return needs
