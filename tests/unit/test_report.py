"""Reports: the JSON schema's shape, the HTML page's parts and links, the sequence diagram, the terminal."""

from __future__ import annotations

import json
import os
import time
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
from pcapgen import handshake_frames, timed, write_pcap

from lab.capture.pcapfile import merge
from lab.capture.records import Packet
from lab.experiments import expect
from lab.report import html, jsonreport, text
from lab.report.model import RunResult, StepRecord, overall_verdict
from lab.report.sequence import label, sequence_svg, unique

HOSTS = {"10.0.1.1": "kongming20", "10.0.1.2": "ernest-laptop"}


def captured(run_dir: Path) -> tuple[list[Packet], dict[str, str]]:
    """The same handshake seen at the client and, 0.4 ms later, at the server."""
    frames = handshake_frames()
    client = write_pcap(run_dir / "01-kongming20-eth0.pcap", timed(frames, 1000.0, 0.010))
    server = write_pcap(run_dir / "01-ernest-laptop-eth0.pcap", timed(frames, 1000.0004, 0.010))
    pcaps = {"kongming20:eth0": str(client), "ernest-laptop:eth0": str(server)}
    return merge(pcaps), pcaps


@pytest.fixture
def result(tmp_path: Path) -> RunResult:
    run_dir = tmp_path / "runs" / "tcp-handshake-close-1"
    run_dir.mkdir(parents=True)
    packets, pcaps = captured(run_dir)
    client = expect.at(packets, "kongming20")
    verdicts = [
        expect.sequence("three-way handshake", client, [("SYN", expect.is_tcp("S")), ("SYN-ACK", expect.is_tcp("S.")),
                                 ("ACK", expect.is_tcp("."))]),
        expect.count("three closing segments carry FIN", expect.fins(client), 3),
    ]
    steps = [
        StepRecord("start the server", "python3 -m lab.servers.echo --port 80", "ernest-laptop", 0,
                   "listening on 0.0.0.0:80\n<script>alert(1)</script>\n", "", time.time() - 3, 2.0),
        StepRecord("fault: drop SYNs on ernest-laptop:eth0", None, "ernest-laptop", 0, "", "",
                   time.time() - 2, 0.0),
    ]
    return RunResult(
        id="tcp-handshake-close", title="Opening & closing a connection", section="§3.3.1",
        topology="book-lan",
        parameters={"port": 80, "out": Path("/tmp/x"), "ratio": 0.5}, verdict=overall_verdict(verdicts),
        duration_s=3.25, started=time.time() - 4, expectations=verdicts, steps=steps, packets=packets,
        pcaps=pcaps, book_listing="IP 127.0.0.1.41621 > 127.0.0.1.23: Flags [S], seq 3499745539, win 32792",
        modern_note="Only 3 closing segments appear.\nA second line.", error=None,
        topology_svg='<?xml version="1.0"?>\n<!DOCTYPE svg>\n<svg xmlns="http://www.w3.org/2000/svg" '
                     'id="topo"><text>book-lan</text></svg>',
        run_dir=run_dir, html_path=None, hosts=HOSTS,
    )


class _Collector(HTMLParser):
    """Collects ids, hrefs and resource references, and notices unbalanced tags."""

    VOID = {"meta", "br", "img", "link", "input", "hr", "path", "line", "rect", "circle", "ellipse",
            "polygon", "polyline", "stop", "use"}

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.resources: list[str] = []
        self.stack: list[str] = []
        self.unbalanced: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(str(values["id"]))
        if values.get("href"):
            self.hrefs.append(str(values["href"]))
        if tag in ("script", "link", "img", "iframe") or values.get("src"):
            self.resources.append(tag)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("href"):
            self.hrefs.append(str(values["href"]))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.unbalanced.append(tag)
        else:
            self.stack.pop()


def parse(page: str) -> _Collector:
    collector = _Collector()
    collector.feed(page)
    collector.close()
    return collector


# ---------------------------------------------------------------- JSON


def test_json_item_has_the_schema_fields(result: RunResult) -> None:
    result.html_path = result.run_dir / "report.html"
    item = jsonreport.experiment_json(result)
    for name in ("id", "title", "section", "verdict", "duration_s", "parameters", "expectations", "error",
                 "pcaps", "report"):
        assert name in item
    assert item["verdict"] == "fail" and item["error"] is None
    assert item["parameters"] == {"port": 80, "out": "/tmp/x", "ratio": 0.5}
    assert item["report"] == str(result.run_dir / "report.html")
    assert item["pcaps"]["kongming20:eth0"].endswith("01-kongming20-eth0.pcap")
    first = item["expectations"][0]
    assert set(first) == {"description", "verdict", "expected", "observed", "packets"}
    assert first["verdict"] == "pass" and all(isinstance(n, int) for n in first["packets"])
    assert item["notes"] == []
    result.notes = ["lab x had 1 fault(s) active before this run"]
    assert jsonreport.experiment_json(result)["notes"] == result.notes
    doc = jsonreport.document([item])
    assert doc["version"] == 1 and doc["experiments"] == [item]
    env = doc["environment"]
    assert env["kernel"] == os.uname().release and env["packages"]["lab"] and env["packages"]["pyroute2"]
    assert jsonreport.problems(json.loads(json.dumps(doc))) == []


def test_write_json_round_trips(result: RunResult, tmp_path: Path) -> None:
    path = jsonreport.write_json([result], tmp_path / "report.json")
    doc = json.loads(path.read_text())
    assert jsonreport.problems(doc) == []
    assert doc["experiments"][0]["id"] == "tcp-handshake-close"


def test_schema_problems_are_reported() -> None:
    assert jsonreport.problems([]) == ["the document is not a JSON object"]
    assert "version is 2, expected 1" in jsonreport.problems({"version": 2, "experiments": []})
    broken = {"version": 1, "experiments": [{"id": "x", "title": "t", "section": "s", "verdict": "maybe",
                                              "duration_s": "1", "parameters": {}, "error": None, "pcaps": {},
                                              "report": None,
                                              "expectations": [{"description": "d", "verdict": "pass",
                                                                "expected": "1", "observed": "1",
                                                                "packets": ["#1"]}]}]}
    found = jsonreport.problems(broken)
    assert any("verdict is 'maybe'" in p for p in found)
    assert any("duration_s is str" in p for p in found)
    assert any("packets must be packet numbers" in p for p in found)
    missing = {"version": 1, "experiments": [{"id": "x"}]}
    assert any("experiments[0].verdict is missing" in p for p in jsonreport.problems(missing))


def test_overall_verdict() -> None:
    ok = expect.check("a", True, 1, 1)
    bad = expect.check("b", False, 1, 2)
    broken = expect.error("c", "no data")
    assert overall_verdict([ok]) == "pass"
    assert overall_verdict([ok, bad]) == "fail"
    assert overall_verdict([ok, broken]) == "error"
    assert overall_verdict([]) == "error"
    assert overall_verdict([ok], error="lab failed") == "error"


# ---------------------------------------------------------------- HTML


def test_html_page_is_self_contained_with_diagrams_and_links(result: RunResult) -> None:
    path = html.write_run(result)
    assert path == result.run_dir / "report.html"
    page = path.read_text()
    parsed = parse(page)
    assert parsed.unbalanced == [] and parsed.stack == []
    assert parsed.resources == []  # no scripts, stylesheets or images to fetch
    assert "<style>" in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    # the sequence diagram and the topology, inline
    assert page.count("<svg") == 2 and 'class="seq"' in page and 'id="topo"' in page
    assert "<?xml" not in page and "<!DOCTYPE svg>" not in page
    assert "kongming20" in page and "ernest-laptop" in page
    # every packet of the listing has an anchor; each cited packet is linked from its expectation
    assert {f"pkt-{p.no}" for p in result.packets} <= parsed.ids
    cited = {n for v in result.expectations for n in v.packets}
    assert cited and {f"#pkt-{n}" for n in cited} <= set(parsed.hrefs)
    # pcaps linked relative to the page
    assert "01-kongming20-eth0.pcap" in parsed.hrefs and "01-ernest-laptop-eth0.pcap" in parsed.hrefs
    # the book's listing, the note, the steps and their output, escaped
    assert "Flags [S], seq 3499745539, win 32792" in page
    assert "Only 3 closing segments appear." in page and "A second line." in page
    assert "python3 -m lab.servers.echo --port 80" in page
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Opening &amp; closing a connection" in page
    assert 'class="badge fail"' in page and "three closing segments carry FIN" in page


def test_html_page_for_a_run_that_errored(tmp_path: Path) -> None:
    run = RunResult(id="x", title="t", section="§1", topology="book-lan", parameters={}, verdict="error",
                    duration_s=0.1, started=0.0, error="lab up failed: no root", run_dir=tmp_path)
    page = html.render_run(run)
    parsed = parse(page)
    assert parsed.unbalanced == [] and "lab up failed: no root" in page
    assert "No packets were captured." in page and "No expectation was recorded." in page


def test_index_links_each_run(result: RunResult, tmp_path: Path) -> None:
    result.html_path = html.write_run(result)
    item = jsonreport.experiment_json(result)
    other = dict(item, id="other", verdict="error", error="boom", report=None, expectations=[])
    index = html.render_index([result, other], tmp_path / "runs" / "index.html")
    page = index.read_text()
    parsed = parse(page)
    assert parsed.unbalanced == []
    assert "tcp-handshake-close-1/report.html" in parsed.hrefs
    assert "2 experiments: 0 passed, 1 failed, 1 errors" in page and "boom" in page
    assert html.write_index is html.render_index


# ---------------------------------------------------------------- sequence diagram


def test_sequence_diagram_draws_each_packet_once(result: RunResult) -> None:
    kept, copies = unique(result.packets)
    assert len(result.packets) == 16 and len(kept) == 8 and copies == 8
    assert all(p.point == "kongming20:eth0" for p in kept)
    svg = sequence_svg(result.packets, HOSTS)
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    assert svg.count('<g class="pkt') == 8
    assert "8 copies of packets seen at a second capture point are drawn once" in svg
    assert ">kongming20<" in svg and ">ernest-laptop<" in svg and ">10.0.1.1<" in svg
    assert 'href="#pkt-1"' in svg
    assert "Flags [S], seq 3499745539, win 64240, length 0" in svg  # the label drops the options
    assert "options [mss 1460" in svg  # the tooltip keeps them


def test_sequence_diagram_caps_the_arrows(result: RunResult) -> None:
    svg = sequence_svg(result.packets, max_arrows=3)
    assert svg.count('<g class="pkt') == 3
    assert "… 5 more packets not drawn" in svg
    ET.fromstring(svg)


def test_sequence_diagram_without_packets() -> None:
    assert "no IP or ARP packets to draw" in sequence_svg([])


def test_label_is_tcpdump_like(result: RunResult) -> None:
    assert label(result.packets[0]) == "Flags [S], seq 3499745539, win 64240, length 0"


def test_a_bare_ack_shows_its_seq_too(result: RunResult) -> None:
    """tcpdump prints a bare ACK without its seq, which hides a keepalive probe (seq = snd.nxt − 1)."""
    kept, _ = unique(result.packets)
    ack = next(p for p in kept if p.tcp is not None and p.tcp.length == 0 and p.tcp.flags == 0x10)
    assert "seq 1, ack 1" in label(ack) and "seq" not in ack.summary().split("Flags [.]")[1].split("ack")[0]


def test_changes_are_drawn_where_they_happened(result: RunResult) -> None:
    kept, _ = unique(result.packets)
    between = (kept[2].time + kept[3].time) / 2
    svg = sequence_svg(result.packets, HOSTS, events=[(between, "fault: drop tcp fin in on ernest-laptop:eth0"),
                                                      (kept[-1].time + 60, "after the capture: not drawn")])
    ET.fromstring(svg)
    assert svg.count('<g class="change">') == 1 and "after the capture" not in svg
    rows = [line for line in svg.splitlines() if line.startswith(('<a href="#pkt-', '<g class="change"'))]
    assert 'class="change"' in rows[3] and f'#pkt-{kept[3].no}"' in rows[4]  # after packet 3, before packet 4


# ---------------------------------------------------------------- terminal


def test_terminal_report(result: RunResult) -> None:
    result.html_path = result.run_dir / "report.html"
    out = text.render_run(result)
    assert out.startswith("FAIL tcp-handshake-close")
    assert "three-way handshake" in out and "PASS" in out
    assert "1 held, 1 failed, 0 errors; 16 packets captured" in out
    assert "report.html" in out
    summary = text.render_summary([result, {"id": "other", "verdict": "error", "error": "lab up failed",
                                            "expectations": [], "duration_s": 1.0}])
    assert "tcp-handshake-close" in summary and "lab up failed" in summary
    assert "0 passed, 1 failed, 1 errors" in summary


def test_a_cluster_run_says_where_each_node_ran(result: RunResult) -> None:
    assert jsonreport.experiment_json(result)["machines"] == {}
    assert 'id="machines"' not in html.render_run(result)
    result.machines = {"kongming20": "m2", "ernest-laptop": "m1"}
    assert jsonreport.experiment_json(result)["machines"] == {"kongming20": "m2", "ernest-laptop": "m1"}
    page = html.render_run(result)
    assert '<section id="machines">' in page and "<tr><td>kongming20</td><td>m2</td></tr>" in page
