"""Draw a topology: nodes with their kind, networks as bridge nodes, links, interface names and addresses.

For a lab spread over a cluster, ``machines`` (node → machine) adds where each node ran: with
graphviz a box per machine around its nodes (networks stay outside: a LAN may span machines),
and a line ``on m2`` under each node in either layout.

Graphviz's ``dot`` (Debian package ``graphviz``) lays the graph out when it is
installed; it is run with an argv list and the graph on stdin, never through a
shell. Without it, a small pure-Python layout draws the same elements: the
networks in a row, single-homed nodes above and below their network, routers
between the networks they join. The result is an ``<svg>`` element that can be
written to a file or inlined in an HTML report.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from lab.errors import EnvironmentProblem
from lab.topology.model import Interface, Network, Topology

DOT_TIMEOUT = 30
_FILL = {"host": "#e3f2fd", "router": "#fff3e0", "container": "#e8f5e9"}
_SHAPE = {"host": "box", "router": "box3d", "container": "component"}


def dot_path() -> str | None:
    """The graphviz ``dot`` program, if installed."""
    return shutil.which("dot") or ("/usr/bin/dot" if Path("/usr/bin/dot").exists() else None)


def _q(text: str) -> str:
    """A DOT double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _kind_line(node_kind: str, image: str | None) -> str:
    return f"{node_kind} ({image})" if image else node_kind


def _address(value: object | None) -> str:
    return str(value) if value is not None else "no address"


def _node_label(name: str, kind: str, image: str | None, machines: dict[str, str] | None) -> list[str]:
    lines = [name, _kind_line(kind, image)]
    if machines and name in machines:
        lines.append(f"on {machines[name]}")
    return lines


def topology_dot(topo: Topology, machines: dict[str, str] | None = None) -> str:
    """The topology in the DOT language: one vertex per node and per network, one edge per attachment/link."""
    lines = [
        f"graph {_q(topo.name)} {{",
        '  graph [fontname="Helvetica", bgcolor="white", pad="0.3", nodesep="0.6", ranksep="0.9", '
        f'label={_q("lab " + topo.name)}, labelloc="t", fontsize="14"];',
        '  node [fontname="Helvetica", fontsize="11", style="filled"];',
        '  edge [fontname="Helvetica", fontsize="9", color="#607d8b"];',
    ]
    for name, net in topo.networks.items():
        mtu = f"\nmtu {net.mtu}" if net.mtu else ""
        label = chr(10).join([name, *_subnets(net), f"bridge{mtu}"])
        lines.append(f"  {_q('net:' + name)} [shape=ellipse, fillcolor=\"#ede7f6\", label={_q(label)}];")
    for name, node in topo.nodes.items():
        shape = _SHAPE.get(node.kind, "box")
        fill = _FILL.get(node.kind, "#eeeeee")
        label = chr(10).join(_node_label(name, node.kind, node.image, machines))
        lines.append(f"  {_q('node:' + name)} [shape={shape}, fillcolor=\"{fill}\", label={_q(label)}];")
    for i, machine in enumerate(sorted(set((machines or {}).values()))):
        members = " ".join(_q("node:" + n) for n in topo.nodes if (machines or {}).get(n) == machine)
        lines.append(f"  subgraph cluster_{i} {{ label={_q('machine ' + machine)}; style=\"dashed,rounded\"; "
                     f"color=\"#90a4ae\"; fontsize=\"11\"; {members}; }}")
    for name, node in topo.nodes.items():
        for ifname, iface in node.interfaces.items():
            if iface.network:
                text = f"{ifname}\n{_addresses(iface)}"
                lines.append(f"  {_q('node:' + name)} -- {_q('net:' + iface.network)} [label={_q(text)}];")
    for link in topo.links:
        (na, ia), (nb, ib) = link.ends
        ta = f"{ia}\n{_addresses(topo.nodes[na].interfaces[ia])}"
        tb = f"{ib}\n{_addresses(topo.nodes[nb].interfaces[ib])}"
        lines.append(f"  {_q('node:' + na)} -- {_q('node:' + nb)} [taillabel={_q(ta)}, headlabel={_q(tb)}, "
                     'labeldistance="2.2", labelangle="30", style="bold", color="#37474f"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def hosts_of(topo: Topology) -> dict[str, str]:
    """IP address (either family) → node name, for the headings of the packet sequence diagram."""
    names: dict[str, str] = {}
    for name, node in topo.nodes.items():
        for iface in node.interfaces.values():
            for address in iface.addresses():
                names.setdefault(str(address.ip), name)
    return names


def _subnets(net: Network) -> list[str]:
    return [str(s) for s in (net.subnet, net.subnet6) if s is not None]


def _addresses(iface: Interface) -> str:
    """An interface's addresses, one per line (``no address`` when it has none)."""
    return "\n".join(str(a) for a in iface.addresses()) or _address(None)


def _run_dot(topo: Topology, fmt: str, output: Path | None = None, machines: dict[str, str] | None = None) -> bytes:
    dot = dot_path()
    if dot is None:
        raise EnvironmentProblem("graphviz is not installed (no 'dot' program)", "apt-get install graphviz")
    argv = [dot, f"-T{fmt}"] + (["-o", str(output)] if output else [])
    try:
        proc = subprocess.run(argv, input=topology_dot(topo, machines).encode(), capture_output=True,
                              timeout=DOT_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise EnvironmentProblem(f"graphviz dot ran longer than {DOT_TIMEOUT} s") from None
    if proc.returncode != 0:
        raise EnvironmentProblem(f"graphviz dot failed: {proc.stderr.decode(errors='replace').strip()[:300]}")
    return proc.stdout


def topology_svg(topo: Topology, use_dot: bool = True, machines: dict[str, str] | None = None) -> str:
    """The topology as an ``<svg>`` element: graphviz's layout if available, else the built-in one."""
    if use_dot and dot_path() is not None:
        try:
            svg = _run_dot(topo, "svg", machines=machines).decode("utf-8", errors="replace")
            start = svg.find("<svg")
            if start >= 0:
                return svg[start:]
        except EnvironmentProblem:
            pass  # fall back to the built-in layout
    return fallback_svg(topo, machines)


def write_svg(topo: Topology, path: str | Path, machines: dict[str, str] | None = None) -> Path:
    target = Path(path)
    target.write_text('<?xml version="1.0" encoding="UTF-8"?>\n' + topology_svg(topo, machines=machines),
                      encoding="utf-8")
    return target


def write_png(topo: Topology, path: str | Path, machines: dict[str, str] | None = None) -> Path:
    """A PNG of the topology; needs graphviz (there is no pure-Python PNG fallback)."""
    target = Path(path)
    _run_dot(topo, "png", target, machines)
    return target


# ---------------------------------------------------------------- the built-in layout


@dataclass
class _Box:
    key: str
    lines: list[str]
    x: float = 0.0
    y: float = 0.0
    w: float = 130.0
    h: float = 46.0
    fill: str = "#eeeeee"
    round: bool = False
    attached: list[str] = field(default_factory=list)


NET_Y = 260.0
SPACING = 520.0
ROW_ABOVE = 90.0
ROW_BELOW = 430.0
NODE_STEP = 160.0


def _layout(topo: Topology, machines: dict[str, str] | None = None
            ) -> tuple[dict[str, _Box], list[tuple[str, str, str, str]]]:
    """Boxes with positions, and edges (a, b, label at a, label at b)."""
    boxes: dict[str, _Box] = {}
    networks = list(topo.networks)
    for i, name in enumerate(networks):
        net = topo.networks[name]
        boxes["net:" + name] = _Box("net:" + name, [name, *_subnets(net), "bridge"], x=160 + i * SPACING,
                                    y=NET_Y, w=150, h=58, fill="#ede7f6", round=True)
    edges: list[tuple[str, str, str, str]] = []
    homes: dict[str, list[str]] = {}
    for name, node in topo.nodes.items():
        box = _Box("node:" + name, _node_label(name, node.kind, node.image, machines),
                   fill=_FILL.get(node.kind, "#eeeeee"))
        box.w = max(130.0, 7.5 * max(len(line) for line in box.lines) + 20)
        box.h += 14.0 * (len(box.lines) - 2)
        boxes[box.key] = box
        homes[name] = []
        for ifname, iface in node.interfaces.items():
            if iface.network and "net:" + iface.network in boxes:
                homes[name].append(iface.network)
                edges.append((box.key, "net:" + iface.network, f"{ifname} {_addresses(iface)}".replace("\n", " "),
                              ""))
    for link in topo.links:
        (na, ia), (nb, ib) = link.ends
        if "node:" + na in boxes and "node:" + nb in boxes:
            edges.append(("node:" + na, "node:" + nb,
                          f"{ia} {_addresses(topo.nodes[na].interfaces[ia])}".replace("\n", " "),
                          f"{ib} {_addresses(topo.nodes[nb].interfaces[ib])}".replace("\n", " ")))
    # Multi-homed nodes sit between their networks; the rest alternate above and below theirs.
    slots: dict[tuple[str, str], int] = {}
    placed: set[str] = set()
    for name, nets in homes.items():
        box = boxes["node:" + name]
        if len(nets) >= 2:
            xs = [boxes["net:" + n].x for n in nets]
            box.x, box.y = sum(xs) / len(xs), NET_Y + (0 if len(set(xs)) > 1 else -170)
            placed.add(name)
    side_count: dict[str, int] = {}
    for name, nets in homes.items():
        if name in placed or not nets:
            continue
        home = nets[0]
        k = side_count.get(home, 0)
        side_count[home] = k + 1
        side = "above" if k % 2 == 0 else "below"
        index = slots.get((home, side), 0)
        slots[(home, side)] = index + 1
        box = boxes["node:" + name]
        box.x = boxes["net:" + home].x + _offset(index)
        box.y = ROW_ABOVE if side == "above" else ROW_BELOW
        placed.add(name)
    # Nodes on point-to-point links only: next to their peer, in a row of their own.
    loose = [n for n in topo.nodes if n not in placed]
    for i, name in enumerate(loose):
        peer = next((b if a == "node:" + name else a for a, b, _, _ in edges
                     if "node:" + name in (a, b) and (b if a == "node:" + name else a)[5:] in placed), None)
        box = boxes["node:" + name]
        if peer is not None:
            box.x, box.y = boxes[peer].x + NODE_STEP, boxes[peer].y + 120
        else:
            box.x, box.y = 160 + i * NODE_STEP, ROW_BELOW + 140
        placed.add(name)
    _spread(boxes)
    return boxes, edges


def _offset(index: int) -> float:
    """0, +1, -1, +2, -2 ... steps from the network's centre."""
    step = (index + 1) // 2
    return NODE_STEP * step * (1 if index % 2 else -1) if index else 0.0


def _spread(boxes: dict[str, _Box]) -> None:
    """Nudge boxes that overlap on one row apart, and shift everything into view."""
    rows: dict[float, list[_Box]] = {}
    for box in boxes.values():
        rows.setdefault(box.y, []).append(box)
    for row in rows.values():
        row.sort(key=lambda b: b.x)
        for left, right in zip(row, row[1:], strict=False):
            gap = (left.w + right.w) / 2 + 24
            if right.x - left.x < gap:
                right.x = left.x + gap
    min_x = min(b.x - b.w / 2 for b in boxes.values())
    min_y = min(b.y - b.h / 2 for b in boxes.values())
    for box in boxes.values():
        box.x += 30 - min_x
        box.y += 50 - min_y


def fallback_svg(topo: Topology, machines: dict[str, str] | None = None) -> str:
    """The pure-Python drawing (used when graphviz is missing)."""
    boxes, edges = _layout(topo, machines)
    width = max(b.x + b.w / 2 for b in boxes.values()) + 40
    height = max(b.y + b.h / 2 for b in boxes.values()) + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif" role="img" class="topology">',
           f'<text x="12" y="22" font-size="14" font-weight="bold">lab {escape(topo.name)}</text>']
    labels = []
    for a, b, label_a, label_b in edges:
        ba, bb = boxes[a], boxes[b]
        link = b.startswith("node:")
        colour = "#37474f" if link else "#607d8b"
        out.append(f'<line x1="{ba.x:.1f}" y1="{ba.y:.1f}" x2="{bb.x:.1f}" y2="{bb.y:.1f}" stroke="{colour}" '
                   f'stroke-width="{2.2 if link else 1.4}"/>')
        diagonal = abs(bb.x - ba.x) > 20 and abs(bb.y - ba.y) > 20
        labels.append(_edge_label(ba, bb, label_a, 0.25 if link else (0.3 if diagonal else 0.5)))
        if label_b:
            labels.append(_edge_label(bb, ba, label_b, 0.25))
    for box in boxes.values():
        radius = 24 if box.round else 4
        out.append(f'<rect x="{box.x - box.w / 2:.1f}" y="{box.y - box.h / 2:.1f}" width="{box.w:.1f}" '
                   f'height="{box.h:.1f}" rx="{radius}" fill="{box.fill}" stroke="#455a64"/>')
        top = box.y - (len(box.lines) - 1) * 7 + 4
        for i, line in enumerate(box.lines):
            weight = ' font-weight="bold"' if i == 0 else ""
            out.append(f'<text x="{box.x:.1f}" y="{top + i * 14:.1f}" font-size="{12 if i == 0 else 10}" '
                       f'text-anchor="middle"{weight}>{escape(line)}</text>')
    out.extend(labels)
    out.append("</svg>")
    return "\n".join(out)


def _border(box: _Box, toward: _Box) -> tuple[float, float]:
    """Where the line from ``box``'s centre toward another box leaves ``box``."""
    dx, dy = toward.x - box.x, toward.y - box.y
    if dx == 0 and dy == 0:
        return box.x, box.y
    scale = min(box.w / 2 / abs(dx) if dx else float("inf"), box.h / 2 / abs(dy) if dy else float("inf"))
    return box.x + dx * scale, box.y + dy * scale


def _edge_label(a: _Box, b: _Box, text: str, at: float) -> str:
    """A label on a white card, ``at`` of the way along the visible part of the edge from ``a``.

    Labels of horizontal edges sit above the line, centred; the others to the
    right of it. The card keeps the text readable where it crosses a line.
    """
    (x1, y1), (x2, y2) = _border(a, b), _border(b, a)
    x, y = x1 + (x2 - x1) * at, y1 + (y2 - y1) * at
    width = 6.0 * len(text) + 8
    if abs(y2 - y1) * 3 < abs(x2 - x1):
        left, base = x - width / 2, y - 6
    else:
        left, base = x + 4, y + 4
    return (f'<rect x="{left:.1f}" y="{base - 11:.1f}" width="{width:.1f}" height="15" rx="3" fill="white" '
            f'fill-opacity="0.9"/><text x="{left + 4:.1f}" y="{base:.1f}" font-size="10" fill="#263238">'
            f"{escape(text)}</text>")
