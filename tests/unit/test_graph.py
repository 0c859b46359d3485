"""The topology drawing (graphviz and the built-in layout) and the ``lab graph`` verb."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lab.cli import main
from lab.report import graph
from lab.topology import Topology, load_topology, load_topology_text

ROOT = Path(__file__).resolve().parents[2]
BOOK_LAN = ROOT / "topologies" / "book-lan.yaml"
EXPECTED_TEXT = ["kongming20", "ernest-laptop", "router", "isp", "far-host", "192.168.1.0/24", "10.0.1.0/24",
                 "192.168.1.109/24", "192.168.1.1/24", "10.0.0.1/30", "10.0.0.2/30", "eth0", "eth1", "bridge",
                 "host"]


def svg_text(svg: str) -> str:
    """All the text an SVG shows, joined (graphviz splits labels into one <text> per line)."""
    root = ET.fromstring(svg)
    return "\n".join("".join(node.itertext()) for node in root.iter() if node.tag.endswith("text"))


@pytest.fixture
def book_lan() -> Topology:
    topo, _ = load_topology(BOOK_LAN)
    return topo


def require_dot() -> None:
    if graph.dot_path() is None:
        pytest.skip("graphviz is not installed (apt-get install graphviz)")


def test_dot_source_names_every_element(book_lan: Topology) -> None:
    dot = graph.topology_dot(book_lan)
    assert dot.startswith('graph "book-lan" {')
    assert '"node:kongming20" -- "net:lan" [label="eth0\\n192.168.1.109/24"]' in dot
    assert ('"node:router" -- "node:isp" [taillabel="eth1\\n10.0.0.1/30", '
            'headlabel="eth0\\n10.0.0.2/30"') in dot
    assert '"node:router" [shape=box3d' in dot and '"net:far" [shape=ellipse' in dot
    assert dot.count(" -- ") == 6  # five attachments to networks and one point-to-point link


def test_graphviz_svg(book_lan: Topology) -> None:
    require_dot()
    svg = graph.topology_svg(book_lan)
    assert svg.startswith("<svg")
    shown = svg_text(svg)
    for text in EXPECTED_TEXT:
        assert text in shown, text


def test_builtin_layout_when_graphviz_is_missing(book_lan: Topology, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph, "dot_path", lambda: None)
    svg = graph.topology_svg(book_lan)
    assert 'class="topology"' in svg
    shown = svg_text(svg)
    for text in EXPECTED_TEXT:
        assert text in shown, text
    with pytest.raises(graph.EnvironmentProblem, match="graphviz is not installed"):
        graph.write_png(book_lan, Path("/nonexistent/x.png"))


def test_builtin_layout_keeps_boxes_apart() -> None:
    text = "name: many\nnetworks: {lan: {subnet: 10.9.0.0/24}}\nnodes:\n" + "".join(
        f"  h{i}: {{interfaces: {{eth0: {{network: lan}}}}}}\n" for i in range(12))
    topo, _ = load_topology_text(text)
    boxes, edges = graph._layout(topo)
    assert len(edges) == 12
    rows: dict[float, list[graph._Box]] = {}
    for box in boxes.values():
        assert box.x - box.w / 2 >= 0 and box.y - box.h / 2 >= 0
        rows.setdefault(box.y, []).append(box)
    for row in rows.values():
        row.sort(key=lambda b: b.x)
        for left, right in zip(row, row[1:], strict=False):
            assert right.x - left.x >= (left.w + right.w) / 2, (left.key, right.key)
    ET.fromstring(graph.fallback_svg(topo))


def test_png(book_lan: Topology, tmp_path: Path) -> None:
    require_dot()
    path = graph.write_png(book_lan, tmp_path / "lan.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_graph_file_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(BOOK_LAN)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("<svg") and "kongming20" in out


def test_cli_graph_on_a_terminal_writes_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """SVG's text is no picture on a terminal: NAME.svg in the current directory, and a line saying so."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["graph", str(BOOK_LAN)]) == 0
    assert capsys.readouterr().out.startswith("wrote book-lan.svg (open it in a browser")
    ET.fromstring((tmp_path / "book-lan.svg").read_text())


def test_cli_graph_to_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(BOOK_LAN), "-o", str(tmp_path / "lan.svg")]) == 0
    svg = (tmp_path / "lan.svg").read_text()
    assert svg.startswith("<?xml") and "<svg" in svg
    ET.fromstring(svg)
    if graph.dot_path() is not None:
        assert main(["graph", str(BOOK_LAN), "--png", "-o", str(tmp_path / "lan.png")]) == 0
        assert (tmp_path / "lan.png").read_bytes()[:4] == b"\x89PNG"
    assert "wrote" in capsys.readouterr().out


def test_cli_graph_of_a_running_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LAB_STATE_DIR", str(tmp_path))
    (tmp_path / "graph-test").mkdir()
    (tmp_path / "graph-test" / "topology.yaml").write_text(BOOK_LAN.read_text())
    assert main(["graph", "graph-test"]) == 0
    assert "far-host" in svg_text(capsys.readouterr().out)
    assert main(["graph", "no-such-lab"]) == 2
    assert "no lab named 'no-such-lab' is up" in capsys.readouterr().err


def test_cli_graph_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nnodes: {a: {kind: spaceship}}\n")
    assert main(["graph", str(bad)]) == 2
    assert "bad.yaml:2" in capsys.readouterr().err


def test_hosts_of_names_every_address(book_lan: Topology) -> None:
    hosts = graph.hosts_of(book_lan)
    assert hosts["192.168.1.109"] == "kongming20" and hosts["192.168.1.1"] == "router"
    assert hosts["10.0.0.2"] == "isp" and hosts["10.0.1.10"] == "far-host"
    assert len(hosts) == 7  # the routers have two addresses each


SPREAD = {"kongming20": "m1", "ernest-laptop": "m2", "router": "m1", "isp": "m3", "far-host": "m3"}


def test_dot_boxes_each_machine_around_its_nodes(book_lan: Topology) -> None:
    dot = graph.topology_dot(book_lan, SPREAD)
    assert dot.count("subgraph cluster_") == 3
    assert 'subgraph cluster_0 { label="machine m1"' in dot
    m1 = next(line for line in dot.splitlines() if 'label="machine m1"' in line)
    assert '"node:kongming20"' in m1 and '"node:router"' in m1 and '"node:isp"' not in m1
    assert "net:" not in m1  # a LAN may span machines: networks stay outside the boxes
    assert 'label="router\\nrouter\\non m1"' in dot  # the node's own label says it too


def test_graphviz_and_builtin_layouts_say_where_each_node_ran(book_lan: Topology,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    require_dot()
    assert "machine m3" in svg_text(graph.topology_svg(book_lan, machines=SPREAD))
    monkeypatch.setattr(graph, "dot_path", lambda: None)
    text = svg_text(graph.topology_svg(book_lan, machines=SPREAD))
    assert text.count("on m1") == 2 and text.count("on m3") == 2 and "on m2" in text


def test_without_machines_nothing_changes(book_lan: Topology) -> None:
    assert graph.topology_dot(book_lan, None) == graph.topology_dot(book_lan)
    assert "subgraph" not in graph.topology_dot(book_lan)
