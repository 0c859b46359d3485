"""The topology model: what a topology file may say, and nothing else.

Every model forbids unknown keys, so a typo ("adress") is an error at its line
rather than a silently ignored field. Names are constrained here so that they
can become kernel names (namespaces, interfaces) without escaping or shells.
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface, IPv6Network
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

import lab.topology.units as units
from lab.names import LAB_NAME

NODE_NAME = r"^[A-Za-z]([A-Za-z0-9-]*[A-Za-z0-9])?$"
NETWORK_NAME = r"^[a-z][a-z0-9-]*$"
IFNAME = r"^[a-z][a-z0-9_-]*$"
MACHINE_NAME = r"^[a-z][a-z0-9-]{0,30}$"  # a machine of a cluster file (lab.cluster.model)
SYSCTL_KEY = r"^[a-z0-9_]+(\.[a-z0-9_-]+)+$"

LabName = Annotated[str, StringConstraints(pattern=LAB_NAME, max_length=20)]
NodeName = Annotated[str, StringConstraints(pattern=NODE_NAME, max_length=32)]
NetworkName = Annotated[str, StringConstraints(pattern=NETWORK_NAME, max_length=32)]
IfName = Annotated[str, StringConstraints(pattern=IFNAME, max_length=15)]
SysctlKey = Annotated[str, StringConstraints(pattern=SYSCTL_KEY, max_length=128)]
# A value is written to a /proc/sys file: one line of printable text, never a second "key=value" line.
SysctlText = Annotated[str, StringConstraints(pattern=r"^[ -~\t]*$", max_length=256)]
SysctlValue = Annotated[SysctlText | int, Field(union_mode="left_to_right")]
# A Docker image reference (registry[:port]/name[:tag][@sha256:digest]); never a shell word.
ImageRef = Annotated[str, StringConstraints(
    pattern=r"^([a-z0-9.-]+(:[0-9]+)?/)?[a-z0-9]+([._-]+[a-z0-9]+)*(/[a-z0-9]+([._-]+[a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$", max_length=255)]
EnvValue = Annotated[str, StringConstraints(pattern=r"^[^\x00]*$", max_length=65536)]
HostName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9.-]+$", max_length=253)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class Network(Strict):
    """One L2 segment: a Linux bridge inside the lab's switch namespace, IPv4, IPv6 or both."""

    subnet: IPv4Network | None = None
    subnet6: IPv6Network | None = None  # dual-stack beside subnet, or IPv6 only
    mtu: int | None = Field(default=None, ge=576, le=9000)

    @model_validator(mode="after")
    def _a_subnet(self) -> Network:
        if self.subnet is None and self.subnet6 is None:
            raise ValueError("a network needs subnet: (IPv4), subnet6: (IPv6), or both")
        if self.subnet6 is not None and self.mtu is not None and self.mtu < 1280:
            raise ValueError(f"mtu {self.mtu}: IPv6 needs at least 1280")
        return self

    def subnet_of(self, family: int) -> IPv4Network | IPv6Network | None:
        return self.subnet if family == 4 else self.subnet6


class Impair(Strict):
    """netem's impairments of what leaves an interface, written as tc writes them (lab.topology.units).

    Applied by netem where the kernel has it, else by lab's own emulator (lab.net.emulator).
    """

    delay: str | None = None  # 40ms
    jitter: str | None = None  # 4ms: each packet waits delay ± jitter (uniform), so packets reorder
    loss: str | None = None  # 1%
    duplicate: str | None = None
    reorder: str | None = None  # this share goes at once, ahead of the delayed ones
    corrupt: str | None = None
    rate: str | None = None  # 10mbit
    limit: int | None = Field(default=None, ge=1, le=1_000_000)  # packets waiting at most (netem: 1000)

    @model_validator(mode="before")
    @classmethod
    def _a_mapping(cls, value: object) -> object:
        if not isinstance(value, dict):
            raise ValueError(f"impair: is a mapping of delay, jitter, loss, duplicate, reorder, corrupt, rate, limit "
                             f"(e.g. {{delay: 40ms, loss: 1%}}), not {value!r}")
        return value

    @field_validator("delay", "jitter", mode="before")
    @classmethod
    def _time(cls, value: object) -> object:
        return None if value is None else _checked(units.milliseconds, value)

    @field_validator("loss", "duplicate", "reorder", "corrupt", mode="before")
    @classmethod
    def _percent(cls, value: object) -> object:
        return None if value is None else _checked(units.percent, value)

    @field_validator("rate", mode="before")
    @classmethod
    def _rate(cls, value: object) -> object:
        return None if value is None else _checked(units.bits_per_second, value)

    @model_validator(mode="after")
    def _coherent(self) -> Impair:
        if not any(v is not None for v in self.model_dump().values()):
            raise ValueError("an empty impair: give at least one of delay, jitter, loss, duplicate, reorder, "
                             "corrupt, rate, limit")
        for needs in ("jitter", "reorder"):
            if getattr(self, needs) is not None and self.delay is None:
                raise ValueError(f"{needs} needs a delay (as in netem): add e.g. delay: 20ms")
        return self


def _checked(parse: Callable[[str], float], value: object) -> str:
    """The value as text, once ``parse`` accepts it (a bare number is refused: say its unit)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{value!r}: write a value with its unit, e.g. 40ms, 1%, 10mbit")
    text = str(value).strip()
    parse(text)
    return text


class Interface(Strict):
    """A node's interface: on a network (bridge port) or one end of a point-to-point link."""

    network: NetworkName | None = None
    address: IPv4Interface | None = None
    address6: IPv6Interface | None = None  # beside address (dual-stack), or alone
    ra: bool = False  # a router's interface advertises its IPv6 prefix; the network's hosts take SLAAC addresses
    mtu: int | None = Field(default=None, ge=576, le=9000)
    mac: Annotated[str, StringConstraints(pattern=r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")] | None = None
    impair: Impair | None = None  # shapes what leaves this interface (the tc convention)

    def addresses(self) -> list[IPv4Interface | IPv6Interface]:
        """Its addresses, IPv4 first."""
        return [a for a in (self.address, self.address6) if a is not None]


class Route(Strict):
    """A static route: ``to`` is ``default`` or a CIDR; ``via`` a gateway on a connected subnet.

    Its family follows ``to`` (a CIDR) or ``via``: ``{to: default, via: "fd00:1::1"}`` is IPv6's default;
    a default with neither is IPv4's (``{to: default, dev: eth0}``).
    """

    to: Literal["default"] | IPv4Network | IPv6Network
    via: IPv4Address | IPv6Address | None = None
    dev: IfName | None = None

    @model_validator(mode="after")
    def _one_family(self) -> Route:
        if self.to != "default" and self.via is not None and not isinstance(self.to, str) \
                and self.to.version != self.via.version:
            raise ValueError(f"to {self.to} is IPv{self.to.version} but via {self.via} is IPv{self.via.version}")
        return self

    @property
    def family(self) -> int:
        if not isinstance(self.to, str):
            return self.to.version
        return self.via.version if self.via is not None else 4

    @property
    def destination(self) -> str:
        """``to`` as the kernel writes it: ``default`` is 0.0.0.0/0 or ::/0 by family."""
        if self.to == "default":
            return "0.0.0.0/0" if self.family == 4 else "::/0"
        return str(self.to)


DNS_NAME = r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9])?\.?$"
DnsName = Annotated[str, StringConstraints(pattern=DNS_NAME, max_length=253)]
Ip6Text = Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$", max_length=45)]
DocPath = Annotated[str, StringConstraints(pattern=r"^(/[A-Za-z0-9_-][A-Za-z0-9_.-]*)+$", max_length=255)]
Port = Annotated[int, Field(ge=1, le=65535)]


def _ip_version(text: str) -> int | None:
    """4 or 6 for an IP address, None for anything else (a host name)."""
    for kind in (IPv4Address, IPv6Address):
        try:
            return kind(text).version
        except ValueError:
            continue
    return None


class DnsRecord(Strict):
    """One record a node's DNS server answers: A (name → IPv4), AAAA (name → IPv6), CNAME (name → name),
    PTR (an address → name, answered in in-addr.arpa or ip6.arpa)."""

    name: DnsName | Ip6Text  # for PTR: the address (or its ...in-addr.arpa / ...ip6.arpa name)
    type: Literal["A", "AAAA", "CNAME", "PTR"] = "A"
    value: DnsName | Ip6Text  # A: an IPv4 address; AAAA: an IPv6 one; CNAME and PTR: a host name

    @model_validator(mode="after")
    def _value_fits_type(self) -> DnsRecord:
        version = _ip_version(str(self.value))
        if self.type == "A" and version != 4:
            raise ValueError(f"an A record's value is an IPv4 address, not {self.value!r}")
        if self.type == "AAAA" and version != 6:
            raise ValueError(f"an AAAA record's value is an IPv6 address, not {self.value!r}")
        if self.type in ("CNAME", "PTR") and version is not None:
            raise ValueError(f"a {self.type} record's value is a host name, not the address {self.value!r}")
        name = str(self.name).rstrip(".")
        arpa = name.endswith((".in-addr.arpa", ".ip6.arpa"))
        if self.type == "PTR" and not (_ip_version(name) or arpa):
            raise ValueError(f"a PTR record's name is an address, x.in-addr.arpa or x.ip6.arpa, not {self.name!r}")
        if self.type != "PTR" and _ip_version(name) == 6:
            raise ValueError(f"an {self.type} record's name is a host name, not the address {self.name!r}")
        return self


class DnsService(Strict):
    """Run a DNS server (dnsmasq) on this container node; it has no upstream, so no query leaves the lab."""

    records: list[DnsRecord] = Field(default_factory=list)  # the only names it answers for


class ProxyService(Strict):
    """Run an HTTP proxy (squid) on this container node, as the book's ernest-laptop does in ch.4."""

    port: Port = 3128
    allow: list[NetworkName | IPv4Network | IPv6Network] = Field(default_factory=list)  # (default: its own)
    cache: bool = False  # False writes `cache deny all`: every fetch reaches the web server (a MISS)
    nameservers: list[IPv4Address | IPv6Address] = Field(default_factory=list)  # (default: node's resolv)


class WebFile(Strict):
    """A document read from a file (a path relative to the topology file's directory)."""

    file: Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class WebService(Strict):
    """Run a web server (nginx) on this container node, serving ``documents``."""

    port: Port = 80
    documents: dict[DocPath, str | WebFile] = Field(default_factory=dict)  # URL path → text, or {file: ...}


class Resolv(Strict):
    """The node's /etc/resolv.conf: the DNS servers it asks (with none, names come from /etc/hosts only)."""

    nameservers: list[IPv4Address | IPv6Address] = Field(default_factory=list, max_length=3)
    search: list[DnsName] = Field(default_factory=list, max_length=6)


class Node(Strict):
    """A host of the lab. ``host`` and ``router`` are plain namespaces; ``container`` runs an image."""

    kind: Literal["host", "router", "container"] = "host"
    image: ImageRef | None = None
    interfaces: dict[IfName, Interface] = Field(default_factory=dict)
    routes: list[Route] = Field(default_factory=list)
    sysctls: dict[SysctlKey, SysctlValue] = Field(default_factory=dict)
    env: dict[Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], EnvValue] = Field(
        default_factory=dict
    )
    hosts: dict[HostName, IPv4Address | IPv6Address] = Field(default_factory=dict)
    resolv: Resolv | None = None  # /etc/resolv.conf (any kind of node)
    dns: DnsService | None = None  # run dnsmasq (container nodes, e.g. image: dns)
    proxy: ProxyService | None = None  # run squid (container nodes, e.g. image: proxy)
    web: WebService | None = None  # run nginx (container nodes, e.g. image: web)
    # On a cluster (lab up --cluster): the machine this node must run on; without it the engine places it.
    machine: Annotated[str, StringConstraints(pattern=MACHINE_NAME)] | None = None

    @model_validator(mode="after")
    def _services_need_a_container(self) -> Node:
        wanted = [k for k in ("dns", "proxy", "web") if getattr(self, k) is not None]
        if wanted and self.kind != "container":
            what = wanted[0]
            raise ValueError(f"'{what}:' runs a daemon, so the node needs kind: container (image: {what})")
        return self


Endpoint = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]+:[a-z][a-z0-9_-]*$", max_length=64)]


class Link(Strict):
    """A point-to-point veth between two ``node:interface`` endpoints, impaired both ways if ``impair``."""

    a: Endpoint
    b: Endpoint
    impair: Impair | None = None  # what leaves either end

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, value: object) -> object:
        """``[a:eth0, b:eth0]``, or ``{ends: [a:eth0, b:eth0], impair: {...}}``; errors point at the item's line."""
        if isinstance(value, dict) and "ends" in value:
            rest = {k: v for k, v in value.items() if k != "ends"}
            ends = value["ends"]
            if not isinstance(ends, list | tuple) or len(ends) != 2:
                raise ValueError("ends: names exactly two endpoints 'node:interface'")
            return {"a": ends[0], "b": ends[1], **rest}
        if isinstance(value, list | tuple):
            if len(value) != 2:
                raise ValueError(f"a link names exactly two endpoints 'node:interface', got {len(value)}")
            return {"a": value[0], "b": value[1]}
        return value

    @property
    def ends(self) -> tuple[tuple[str, str], tuple[str, str]]:
        na, ia = self.a.split(":", 1)
        nb, ib = self.b.split(":", 1)
        return (na, ia), (nb, ib)


class Topology(Strict):
    """A whole lab: its name, L2 networks, nodes and point-to-point links."""

    name: LabName
    networks: dict[NetworkName, Network] = Field(default_factory=dict)
    nodes: dict[NodeName, Node]
    links: list[Link] = Field(default_factory=list)
    sysctls: dict[SysctlKey, SysctlValue] = Field(default_factory=dict)
    ipv6: bool = False  # IPv6 on (link-local addresses) even where no subnet6 or address6 asks for it

    @property
    def uses_ipv6(self) -> bool:
        """Whether the lab's namespaces get IPv6: asked for, or any IPv6 subnet, address or route."""
        return self.ipv6 or any(n.subnet6 for n in self.networks.values()) or any(
            i.address6 is not None for node in self.nodes.values() for i in node.interfaces.values()) or any(
            r.family == 6 for node in self.nodes.values() for r in node.routes)

    def impairments(self) -> list[tuple[str, Impair]]:
        """``(node:if, impairment)`` for every impaired interface: its own ``impair:``, or its link's (both ends)."""
        found = [(f"{n}:{i}", iface.impair) for n, node in self.nodes.items()
                 for i, iface in node.interfaces.items() if iface.impair]
        for link in self.links:
            if link.impair:
                found += [(f"{node}:{ifname}", link.impair) for node, ifname in link.ends]
        return found

    @field_validator("nodes")
    @classmethod
    def _at_least_one_node(cls, value: dict[str, Node]) -> dict[str, Node]:
        if not value:
            raise ValueError("a lab needs at least one node")
        return value
