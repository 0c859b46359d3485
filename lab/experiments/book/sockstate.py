"""Read what the kernel says about sockets: ``nstat -asz`` counters, our programs' TCP_INFO lines, ss filters.

The socket-API experiments check queues and counters the capture cannot show
(how many connections sit in an accept queue, whether a SYN was dropped for
overflow), so they read them from ``ss`` (parsed by :mod:`sstext`) and
``nstat`` run inside a node. These helpers are pure (text in, records out)
and unit-tested; an unparseable line is skipped rather than guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from lab.experiments.book.sstext import SsSocket


def port_of(address: str) -> int:
    """The port of ``IP:PORT`` as ss prints it (0 for ``*``)."""
    tail = address.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def on_port(socks: Iterable[SsSocket], port: int) -> list[SsSocket]:
    """Sockets whose local port is ``port`` (a server's listener and its connections)."""
    return [s for s in socks if port_of(s.local) == port]


def to_port(socks: Iterable[SsSocket], port: int) -> list[SsSocket]:
    """Sockets whose peer port is ``port`` (a client's view of its connections to a server)."""
    return [s for s in socks if port_of(s.peer) == port]


def parse_nstat(text: str) -> dict[str, int]:
    """Counters from ``nstat -asz``: ``{"TcpExtListenOverflows": 3, ...}`` (the header and rates skipped)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and not line.startswith("#") and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def delta(before: dict[str, int], after: dict[str, int], name: str) -> int:
    """How much a counter grew between two readings (a counter missing from both counts as 0)."""
    return after.get(name, 0) - before.get(name, 0)


_KV = re.compile(r"(\w+)=(\S+)")


def parse_tcp_info(text: str, when: str) -> dict[str, str] | None:
    """The ``tcp_info when=<when> key=value ...`` line a program printed, as a dict (None if absent)."""
    for line in text.splitlines():
        if line.startswith(f"tcp_info when={when} "):
            return dict(_KV.findall(line))
    return None


def retrans_total(info: dict[str, str]) -> int | None:
    """The total retransmissions from ``retrans=now/total`` (None if the field is missing)."""
    value = info.get("retrans", "")
    _, _, total = value.partition("/")
    return int(total) if total.isdigit() else None
