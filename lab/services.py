"""Daemons inside container nodes: configured from the topology, started after wiring, waited for.

A node's ``dns:``, ``proxy:`` and ``web:`` sections become a dnsmasq, squid or
nginx configuration through the jinja2 templates in lab/templates/. Rendering
is pure (:func:`plan_daemons`), so a bad reference — an unknown network in
``proxy.allow``, a missing document file — is refused before any container
starts. After the lab is wired (links, addresses and routes exist), each
container gets its /etc/hosts and /etc/resolv.conf, its configuration files,
and its daemons; ``up`` returns only once each daemon is ready, checked from
inside the node's namespace: the DNS server answers a query, the proxy and web
ports listen. A daemon that is not ready in time fails ``up`` with
the node's name and a copy of its log.
"""

from __future__ import annotations

import errno
import io
import os
import socket
import struct
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_address
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from lab import names
from lab.dockerexec import exec_run
from lab.errors import EnvironmentProblem, InputError

if TYPE_CHECKING:
    from lab.plan import Plan
    from lab.topology.model import Topology

TEMPLATES = Path(__file__).parent / "templates"
READY_TIMEOUT = float(os.environ.get("LAB_SERVICE_TIMEOUT", "30"))
FAILED_LOG_DIR = Path("/var/log/lab")
WEB_ROOT = "/var/www/lab"
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024

_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), undefined=StrictUndefined,
                   keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True, autoescape=False)


def _render(template: str, **values: Any) -> bytes:
    return _env.get_template(template).render(**values).encode()


@dataclass
class Readiness:
    """How to tell the daemon is ready: ``dns`` (a query gets an answer) or ``tcp`` (the port listens)."""

    kind: str
    address: str
    port: int
    query: str = "localhost"


@dataclass
class Daemon:
    """One daemon of one container node: its files, the command that starts it, and its readiness check."""

    node: str
    what: str  # dnsmasq | squid | nginx
    files: dict[str, bytes]  # absolute path in the container -> content
    start: list[list[str]]  # commands run in order; the last one starts the daemon (it detaches itself)
    ready: Readiness
    logs: list[str] = field(default_factory=list)  # its log files inside the container


# --- rendering (pure) ---------------------------------------------------------------


def node_addresses(plan: Plan, node: str) -> list[str]:
    """The node's addresses (without prefix): IPv4 ones in interface order, then IPv6 ones."""
    out = []
    for key in ("address", "address6"):  # every IPv4 address first: the daemons' readiness asks the first
        for iface in plan.nodes[node].interfaces.values():
            if iface.get(key):
                out.append(str(iface[key]).split("/")[0])
    return out


def node_subnets(topo: Topology, node: str) -> list[IPv4Network | IPv6Network]:
    """The subnets (both families) the node has an address on: its networks and its point-to-point links."""
    from lab.topology.validate import connected_subnets

    nets: list[IPv4Network | IPv6Network] = []
    for subnet in connected_subnets(topo, node):
        if subnet not in nets:
            nets.append(subnet)
    return nets


def _first_address(plan: Plan, node: str, what: str) -> str:
    addresses = node_addresses(plan, node)
    if not addresses:
        raise InputError(f"node {node!r} runs {what} but has no address",
                         f"give one of its interfaces an address under nodes.{node}.interfaces")
    return addresses[0]


def _arpa(name: str) -> str:
    """``10.0.2.1`` → ``1.2.0.10.in-addr.arpa``, ``fd00::1`` → ``1.0.0…ip6.arpa``; an arpa name is kept."""
    try:
        return ip_address(name).reverse_pointer
    except ValueError:
        return name.rstrip(".")


def dnsmasq_daemon(plan: Plan, topo: Topology, node: str) -> Daemon:
    spec = topo.nodes[node].dns
    assert spec is not None
    conf, hosts, log = "/etc/lab/dnsmasq.conf", "/etc/lab/dns.hosts", "/var/log/lab/dnsmasq.log"
    a_records = [(r.name.rstrip("."), r.value) for r in spec.records if r.type in ("A", "AAAA")]
    cnames = [(r.name.rstrip("."), r.value.rstrip(".")) for r in spec.records if r.type == "CNAME"]
    ptrs = [(_arpa(r.name), r.value.rstrip(".")) for r in spec.records if r.type == "PTR"]
    known = {n for n, _ in a_records} | {n for n, _ in cnames}
    for name, target in cnames:
        if target not in known:
            raise InputError(f"node {node!r}: dns record {name} CNAME {target}: no record here for {target}",
                             "dnsmasq serves a CNAME only when it also serves its target; add an A record")
    addresses = node_addresses(plan, node)
    _first_address(plan, node, "a DNS server")
    query = (cnames or a_records or [("localhost", "")])[0][0]
    return Daemon(
        node, "dnsmasq",
        files={
            conf: _render("dnsmasq.conf.j2", node=node, addresses=addresses, log=log, hosts_file=hosts,
                          cnames=cnames, ptrs=ptrs),
            hosts: _render("dns.hosts.j2", node=node, a_records=a_records),
        },
        start=[["dnsmasq", "--test", f"--conf-file={conf}"], ["dnsmasq", f"--conf-file={conf}"]],
        ready=Readiness("dns", addresses[0], 53, query),
        logs=[log],
    )


def squid_daemon(plan: Plan, topo: Topology, node: str) -> Daemon:
    n = topo.nodes[node]
    spec = n.proxy
    assert spec is not None
    allow: list[str] = []
    for item in spec.allow:
        if isinstance(item, IPv4Network | IPv6Network):
            allow.append(str(item))
        elif item in topo.networks:
            net = topo.networks[item]
            allow += [str(s) for s in (net.subnet, net.subnet6) if s is not None]
        else:
            known = ", ".join(sorted(topo.networks)) or "none"
            raise InputError(f"node {node!r}: proxy.allow names network {item!r}, which the topology lacks",
                             f"networks: {known}; or write a CIDR such as 192.168.1.0/24")
    if not spec.allow:
        allow = [str(s) for s in node_subnets(topo, node)]
    if not allow:
        raise InputError(f"node {node!r}: the proxy would allow no client",
                         "set proxy.allow to networks or CIDRs")
    resolv = n.resolv.nameservers if n.resolv else []
    nameservers = [str(ip) for ip in spec.nameservers or resolv]
    conf, access, cache = "/etc/lab/squid.conf", "/var/log/squid/access.log", "/var/log/squid/cache.log"
    return Daemon(
        node, "squid",
        files={conf: _render("squid.conf.j2", node=node, port=spec.port, allow=allow, nameservers=nameservers,
                             cache=spec.cache, access_log=access, cache_log=cache)},
        start=[["squid", "-k", "parse", "-f", conf], ["squid", "-f", conf]],
        ready=Readiness("tcp", _first_address(plan, node, "squid"), spec.port),
        logs=[cache, access],
    )


def nginx_daemon(plan: Plan, topo: Topology, node: str, base_dir: Path) -> Daemon:
    from lab.topology.model import WebFile

    spec = topo.nodes[node].web
    assert spec is not None
    conf, access, error = "/etc/lab/nginx.conf", "/var/log/nginx/access.log", "/var/log/nginx/error.log"
    ipv6 = any(i.address6 is not None for i in topo.nodes[node].interfaces.values())
    files = {conf: _render("nginx.conf.j2", node=node, port=spec.port, root=WEB_ROOT, access_log=access,
                           error_log=error, ipv6=ipv6)}
    for url_path, doc in spec.documents.items():
        if isinstance(doc, WebFile):
            files[WEB_ROOT + url_path] = _read_document(node, url_path, _inside(node, url_path, base_dir, doc.file))
        else:
            files[WEB_ROOT + url_path] = doc.encode()
    return Daemon(
        node, "nginx", files=files,
        start=[["nginx", "-c", conf]],
        ready=Readiness("tcp", _first_address(plan, node, "nginx"), spec.port),
        logs=[error, access],
    )


def _inside(node: str, url_path: str, base_dir: Path, name: str) -> Path:
    """A document file must lie under the topology's directory: a topology never reads /etc/shadow."""
    base = base_dir.resolve()
    path = (base / name).resolve()
    if not path.is_relative_to(base):
        raise InputError(f"node {node!r}: web document {url_path}: {name} is outside the topology's directory {base}",
                         "put the file next to the topology file")
    return path


def _read_document(node: str, url_path: str, path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_DOCUMENT_BYTES:
            raise InputError(f"node {node!r}: web document {url_path}: {path} is larger than 64 MiB")
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        raise InputError(f"node {node!r}: web document {url_path}: no file {path}",
                         "a document's file: is relative to the topology file's directory") from None
    except IsADirectoryError:
        raise InputError(f"node {node!r}: web document {url_path}: {path} is a directory") from None
    except PermissionError:
        raise InputError(f"node {node!r}: web document {url_path}: cannot read {path}",
                         "permission denied") from None


def plan_daemons(plan: Plan, topo: Topology, base_dir: Path | None = None) -> list[Daemon]:
    """Every daemon of every container node, rendered; raises InputError on a bad reference."""
    base = base_dir or Path.cwd()
    daemons: list[Daemon] = []
    for name, node in topo.nodes.items():
        if node.dns is not None:
            daemons.append(dnsmasq_daemon(plan, topo, name))
        if node.web is not None:
            daemons.append(nginx_daemon(plan, topo, name, base))
        if node.proxy is not None:
            daemons.append(squid_daemon(plan, topo, name))
    return daemons


def topology_dir(lab: str) -> Path:
    """The directory of the topology file the lab is being built from (for relative document paths)."""
    from lab.state import Journal

    for entry in Journal(lab).entries():
        if entry.get("kind") == "lab" and entry.get("file"):
            return Path(str(entry["file"])).resolve().parent
    return Path.cwd()


# --- applying -----------------------------------------------------------------------


def tar_files(files: dict[str, bytes]) -> bytes:
    """An uncompressed tar of ``files`` (path -> bytes), as Docker's put_archive takes it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size = len(data)
            info.mode = 0o644
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def write_etc_files(container: Any, hosts: str, resolv: str) -> None:
    """Replace the /etc/hosts and /etc/resolv.conf Docker made (the host's resolver) with the lab's.

    Docker keeps both files in the container's own directory on the host and
    bind-mounts them; writing those files is how Docker itself updates them.
    """
    for key, text in (("HostsPath", hosts), ("ResolvConfPath", resolv)):
        path = container.attrs.get(key)
        if not path:
            raise EnvironmentProblem(f"container {container.name} has no {key}",
                                     "its Docker engine does not manage /etc files")
        if not Path(path).parent.is_dir():  # lab itself runs in a container without Docker's directory
            raise EnvironmentProblem(f"container {container.name}: Docker keeps its {key} at {path}, which this "
                                     "machine's file system does not show",
                                     "running lab in a container? add -v /var/lib/docker/containers:"
                                     "/var/lib/docker/containers (see docs/CI.md)")
        Path(path).write_text(text)


def configure_and_start(plan: Plan, topo: Topology, progress: Any) -> None:
    """After wiring: /etc files for every container node, then every daemon started and waited for."""
    from lab.dockerclient import docker_client
    from lab.plan import NO_RESOLVER

    daemons = plan_daemons(plan, topo, topology_dir(plan.lab))
    client = docker_client()
    containers = {}
    for spec in plan.nodes.values():
        if spec.kind != "container":
            continue
        c = client.containers.get(names.container_name(plan.lab, spec.name))
        containers[spec.name] = c
        write_etc_files(c, plan.hosts_files[spec.netns], plan.resolv_files.get(spec.netns, NO_RESOLVER))
    if not daemons:
        return
    progress("starting services", 0, len(daemons))
    done = 0

    def run(d: Daemon) -> None:
        start_daemon(containers[d.node], d)
        wait_ready(plan, d, containers[d.node])

    errors: list[EnvironmentProblem] = []
    with ThreadPoolExecutor(max_workers=min(8, len(daemons))) as pool:
        futures = [pool.submit(run, d) for d in daemons]
        for fut in futures:
            try:
                fut.result()
            except EnvironmentProblem as exc:
                errors.append(exc)
            done += 1
            progress("starting services", done, len(daemons))
    if errors:
        if len(errors) == 1:
            raise errors[0]
        raise EnvironmentProblem("; ".join(e.message for e in errors), errors[0].hint)


def start_daemon(container: Any, d: Daemon) -> None:
    """Copy the daemon's files into the container and run its start commands (each must exit 0)."""
    if not container.put_archive("/", tar_files(d.files)):
        raise EnvironmentProblem(f"node {d.node}: could not copy the {d.what} files into its container")
    for argv in d.start:
        code, output = exec_run(container, argv, f"node {d.node}")
        if code != 0:
            text = output.decode(errors="replace").strip()
            if code in (126, 127) or "executable file not found" in text:
                raise EnvironmentProblem(f"node {d.node}: its image has no {argv[0]}",
                                         f"use the lab image that runs it (image: {_image_for(d.what)})")
            saved = _save_logs(container, d, text)
            command = " ".join(argv)
            raise EnvironmentProblem(f"node {d.node}: {command} failed (exit {code}): {_last_line(text)}",
                                     f"its output and logs are in {saved}")


def _image_for(what: str) -> str:
    return {"dnsmasq": "dns", "squid": "proxy", "nginx": "web"}.get(what, what)


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


def wait_ready(plan: Plan | None, d: Daemon, container: Any, timeout: float = READY_TIMEOUT) -> None:
    """Poll the daemon until it answers, or fail with its log: from inside its node's namespace on
    this machine (``plan`` given), else from inside its container through its engine (a cluster)."""
    from lab.net import netns

    path = netns.netns_path(plan.nodes[d.node].netns) if plan is not None else None
    deadline = time.monotonic() + timeout
    why = "not checked"
    while time.monotonic() < deadline:
        try:
            if path is None:
                ready_inside(container, d)
            elif d.ready.kind == "dns":
                dns_answers(path, d.ready.address, d.ready.port, d.ready.query)
            else:
                tcp_listening(path, d.ready.address, d.ready.port)
            return
        except OSError as exc:
            why = exc.strerror or str(exc)
        time.sleep(0.1)
    saved = _save_logs(container, d, "")
    what = "answer DNS" if d.ready.kind == "dns" else "listen"
    raise EnvironmentProblem(
        f"node {d.node}: {d.what} did not {what} on {d.ready.address}:{d.ready.port} "
        f"within {timeout:.0f} s ({why})",
        f"its logs are in {saved}")


def _socket_in(path: str, kind: int, address: str = "0.0.0.0") -> socket.socket:
    """A socket of ``address``'s family created inside the namespace at ``path`` (it stays there after the
    thread returns)."""
    from lab.net import netns

    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return netns.run_in(path, lambda: socket.socket(family, kind))


def tcp_listening(path: str, address: str, port: int) -> None:
    """Raise OSError unless a TCP socket in the namespace listens on address:port (or on a wildcard).

    Reading the namespace's /proc/net/tcp and tcp6, rather than connecting, leaves no
    trace: squid would log a test connection as an error in the access.log
    that experiments read.
    """
    from lab.net import netns

    def read() -> str:
        tables = []
        for name in ("tcp", "tcp6"):
            try:
                with open(f"/proc/thread-self/net/{name}") as f:
                    tables.append(f.read())
            except FileNotFoundError:  # no IPv6 in this kernel
                continue
        return "".join(tables)

    if not listens(netns.run_in(path, read), address, port):
        raise OSError(errno.ECONNREFUSED, f"nothing listens on {address}:{port} yet")


def listens(proc_net_tcp: str, address: str, port: int) -> bool:
    """True when the /proc/net/tcp (or tcp6) table shows a socket listening on address:port, or on a
    wildcard: 0.0.0.0 for an IPv4 address, :: for either family (a dual-stack socket, as squid's).

    The address is read in the byte order of the machine the table came from; /proc/net/tcp
    prints it as the host's 32-bit integers, so a table from another machine of the same byte
    order (every machine lab runs on is little-endian) reads the same way.
    """
    for line in proc_net_tcp.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[3] != "0A" or ":" not in fields[1]:  # 0A = LISTEN; skips the heading
            continue
        ip_hex, _, port_hex = fields[1].partition(":")
        wildcards: tuple[str, ...]
        try:
            if len(ip_hex) == 32:  # tcp6: four 32-bit words
                words = struct.pack("=IIII", *(int(ip_hex[i:i + 8], 16) for i in range(0, 32, 8)))
                ip = socket.inet_ntop(socket.AF_INET6, words)
                wildcards = ("::",)
            else:
                ip = socket.inet_ntoa(struct.pack("=I", int(ip_hex, 16)))
                wildcards = ("0.0.0.0",) if ":" not in address else ()
        except ValueError:
            continue
        if int(port_hex, 16) == port and (ip == address or ip in wildcards):
            return True
    return False


def ready_inside(container: Any, d: Daemon) -> None:
    """Raise OSError unless the daemon answers, asked from inside its own container (a node on another
    machine, whose namespace lab cannot enter): the DNS server answers ``dig``, the port listens."""
    if d.ready.kind == "dns":
        code, _ = exec_run(container, ["dig", "+time=1", "+tries=1", "-p", str(d.ready.port), f"@{d.ready.address}",
                                      d.ready.query], f"node {d.node}")
        if code != 0:
            raise OSError(errno.ETIMEDOUT, f"no DNS answer from {d.ready.address}:{d.ready.port} yet")
        return
    code, table = exec_run(container, ["sh", "-c", "cat /proc/net/tcp && { cat /proc/net/tcp6 2>/dev/null || true; }"],
                           f"node {d.node}")
    if code != 0 or not listens(table.decode(errors="replace"), d.ready.address, d.ready.port):
        raise OSError(errno.ECONNREFUSED, f"nothing listens on {d.ready.address}:{d.ready.port} yet")


def dns_query(name: str, qid: int) -> bytes:
    """A minimal DNS query for ``name`` (type A, class IN, recursion desired)."""
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".") if p)
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\x00" + struct.pack("!HH", 1, 1)


def dns_answers(path: str, address: str, port: int, name: str) -> None:
    """Raise OSError unless a DNS server at address:port answers a query (any rcode) within 0.5 s."""
    qid = int.from_bytes(os.urandom(2), "big")
    with _socket_in(path, socket.SOCK_DGRAM, address) as s:
        s.settimeout(0.5)
        s.sendto(dns_query(name, qid), (address, port))
        data, _ = s.recvfrom(4096)
    if len(data) < 12 or struct.unpack("!H", data[:2])[0] != qid or not data[2] & 0x80:
        raise OSError(0, "a reply that is not an answer to our query")


def _save_logs(container: Any, d: Daemon, output: str) -> Path:
    """Copy the daemon's output and logs out of the container (which rollback removes) to /var/log/lab/."""
    FAILED_LOG_DIR.mkdir(parents=True, exist_ok=True)
    path = FAILED_LOG_DIR / f"{container.name}.{d.what}.log"
    parts = [f"# {d.what} on node {d.node} ({container.name})\n"]
    if output:
        parts.append(f"## output of its start command\n{output}\n")
    for log in d.logs:
        try:
            code, data = exec_run(container, ["tail", "-n", "200", log], f"node {d.node}")
            text = data.decode(errors="replace")
        except Exception as exc:  # the container may be gone; say so in the file rather than fail here
            code, text = 1, f"({type(exc).__name__}: {exc})"
        parts.append(f"## {log}\n{text if code == 0 else '(not readable: ' + text.strip() + ')'}\n")
    path.write_text("".join(parts))
    return path
