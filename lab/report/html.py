"""One self-contained HTML page per run, and an index page for a catalogue run.

The page is meant to be opened from the run directory, mailed, or attached to
a CI job: styles are inline and the drawings are inline SVG, so it needs no
other file and loads nothing from the network. Links to the pcap files are
relative, so the run directory can be moved as a whole.

What a reader sees, top to bottom: the verdict; each expectation with what was
expected, what was observed and links to the packets it cites; the parameters;
the book's listing next to the captured one, then the note on how a modern
kernel differs; the packet sequence diagram; the topology; the steps with
their commands and output; the capture files.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from lab.capture.records import Packet
from lab.report.jsonreport import experiment_json
from lab.report.model import RunResult
from lab.report.sequence import sequence_svg

MAX_LISTING = 5000
MAX_OUTPUT = 20000

CSS = """
body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Noto Sans", "Noto Sans CJK SC", sans-serif;
       margin: 0 auto; max-width: 1400px; padding: 16px 24px; color: #1a1a1a; }
h1 { font-size: 22px; margin: 8px 0 2px; } h2 { font-size: 17px; margin: 26px 0 8px;
     border-bottom: 1px solid #ddd; padding-bottom: 4px; } h3 { font-size: 14px; margin: 8px 0 4px; }
.meta { color: #555; margin: 2px 0 10px; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 4px; font-weight: bold; color: #fff; }
.badge.pass { background: #2e7d32; } .badge.fail { background: #c62828; }
.badge.error { background: #ef8f00; } .badge.unjudged { background: #607d8b; }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; vertical-align: top;
        padding: 4px 8px; border-bottom: 1px solid #eee; } th { background: #fafafa; }
td.v { width: 60px; }
code, pre { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12px; }
pre { background: #f7f7f7; border: 1px solid #e4e4e4; padding: 8px; overflow-x: auto; margin: 4px 0; }
.cols { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 16px; }
@media (max-width: 900px) { .cols { grid-template-columns: minmax(0, 1fr); } }
.listing span { display: block; white-space: pre; } .listing span:target { background: #fff59d; }
.listing .cited { background: #e3f2fd; } .listing .cited-fail { background: #ffebee; }
.note { background: #fffde7; border-left: 4px solid #fbc02d; padding: 6px 12px; margin-top: 10px; }
.error { background: #fff3e0; border-left: 4px solid #ef8f00; padding: 6px 12px; }
.svgbox { overflow-x: auto; border: 1px solid #eee; padding: 6px; }
ol.steps > li { margin-bottom: 10px; } .rc0 { color: #2e7d32; } .rcx { color: #c62828; }
details summary { cursor: pointer; color: #555; }
a.pk { text-decoration: none; font-family: monospace; }
"""


def _h(value: object) -> str:
    return escape(str(value), quote=True)


def _rel(target: str | Path, base: Path) -> str:
    """A link to ``target`` relative to the directory ``base`` (absolute if on another root)."""
    try:
        return Path(os.path.relpath(Path(target).resolve(), base.resolve())).as_posix()
    except ValueError:
        return Path(target).resolve().as_posix()


def _packet_links(numbers: Sequence[int], limit: int = 12) -> str:
    links = " ".join(f'<a class="pk" href="#pkt-{n}">#{n}</a>' for n in numbers[:limit])
    return links + (f" … ({len(numbers) - limit} more)" if len(numbers) > limit else "")


def render_run(result: RunResult, page_dir: Path | None = None) -> str:
    """The run's page as a string; links are relative to ``page_dir`` (default: the run directory)."""
    base = page_dir or result.run_dir
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(result.started)) if result.started else "?"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_h(result.verdict.upper())} {_h(result.id)} — {_h(result.title)}</title>",
        f"<style>{CSS}</style></head><body>",
        f'<header><span class="badge {_h(result.verdict)}">{_h(result.verdict.upper())}</span>',
        f"<h1>{_h(result.title)}</h1>",
        f'<p class="meta"><b>{_h(result.id)}</b> · book section {_h(result.section)} · topology '
        f"{_h(result.topology)} · started {_h(started)} · {result.duration_s:.1f} s · "
        f"{len(result.packets)} packets</p></header>",
    ]
    if result.error:
        parts.append('<section id="error"><h2>Error</h2><div class="error">'
                     f"<pre>{_h(result.error)}</pre></div></section>")
    parts.append(_expectations(result))
    parts.append(_parameters(result.parameters))
    if result.machines:
        rows = "".join(f"<tr><td>{_h(n)}</td><td>{_h(m)}</td></tr>" for n, m in sorted(result.machines.items()))
        parts.append('<section id="machines"><h2>Where each node ran</h2>'
                     f"<table><tr><th>node</th><th>machine</th></tr>{rows}</table></section>")
    parts.append(_compare(result))
    parts.append(_processes(result))
    parts.append('<section id="sequence"><h2>Packet sequence</h2><div class="svgbox">')
    changes = [(s.started, s.title) for s in result.steps if s.change]
    parts.append(sequence_svg(result.packets, names=result.hosts, events=changes) if result.packets else
                 "<p>No packets were captured.</p>")
    parts.append("</div></section>")
    if result.topology_svg:
        parts.append('<section id="topology"><h2>Topology</h2><div class="svgbox">'
                     f"{_inline_svg(result.topology_svg)}</div></section>")
    parts.append(_steps(result))
    parts.append(_captures(result, base))
    generated = time.strftime("%Y-%m-%d %H:%M:%S")
    parts.append(f'<footer class="meta">Generated by lab at {_h(generated)}.</footer>')
    parts.append("</body></html>")
    return "\n".join(parts)


def _processes(result: RunResult) -> str:
    """Which process did what (strace -f of the traced programs): a fork server's or a pool's story."""
    if not result.processes:
        return ""
    rows = []
    for p in result.processes:
        did = "<br>".join(_h(line) for line in p.did) + (f"<br>… {p.calls - len(p.did)} more" if p.calls > len(p.did)
                                                         else "")
        rows.append(f"<tr><td>{_h(p.node)}</td><td>{p.pid}</td><td>{p.parent if p.parent is not None else ''}</td>"
                    f"<td><code>{_h(p.program)}</code></td><td>{did}</td></tr>")
    return ('<section id="processes"><h2>Processes (strace -f)</h2><p class="meta">Each process of the traced '
            "programs: its parent, what it ran, and the calls that tell what it did.</p><table><tr><th>node</th>"
            f"<th>pid</th><th>parent</th><th>program</th><th>did</th></tr>{''.join(rows)}</table></section>")


def _inline_svg(svg: str) -> str:
    """An SVG document as an inline element: drop the XML prolog and doctype graphviz writes."""
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else f"<pre>{_h(svg)}</pre>"


def _expectations(result: RunResult) -> str:
    rows = []
    for v in result.expectations:
        rows.append(f'<tr class="{_h(v.verdict)}"><td class="v"><span class="badge {_h(v.verdict)}">'
                    f"{_h(v.verdict.upper())}</span></td><td>{_h(v.description)}</td><td>{_h(v.expected)}</td>"
                    f"<td>{_h(v.observed)}</td><td>{_packet_links(v.packets)}</td></tr>")
    if not rows:
        return '<section id="expectations"><h2>Expectations</h2><p>No expectation was recorded.</p></section>'
    held = sum(v.ok for v in result.expectations)
    return (f'<section id="expectations"><h2>Expectations ({held} of {len(rows)} held)</h2><table>'
            "<tr><th></th><th>claim</th><th>expected</th><th>observed</th><th>packets</th></tr>"
            + "".join(rows) + "</table></section>")


def _parameters(parameters: dict[str, Any]) -> str:
    if not parameters:
        return '<section id="parameters"><h2>Parameters</h2><p>none</p></section>'
    rows = "".join(f"<tr><td><code>{_h(k)}</code></td><td><code>{_h(v)}</code></td></tr>"
                   for k, v in parameters.items())
    return f'<section id="parameters"><h2>Parameters</h2><table>{rows}</table></section>'


def _listing_html(packets: Sequence[Packet], cited: set[int], failed: set[int]) -> str:
    if not packets:
        return "<pre>No packets were captured.</pre>"
    t0 = packets[0].time
    width = max(len(p.point) for p in packets)
    lines = []
    for p in packets[:MAX_LISTING]:
        cls = "cited-fail" if p.no in failed else ("cited" if p.no in cited else "")
        attr = f' class="{cls}"' if cls else ""
        lines.append(f'<span id="pkt-{p.no}"{attr}>{_h(p.line(t0, width))}</span>')
    if len(packets) > MAX_LISTING:
        lines.append(f"<span>… {len(packets) - MAX_LISTING} more packets: open the pcap files below</span>")
    return '<pre class="listing">' + "".join(lines) + "</pre>"


def _compare(result: RunResult) -> str:
    cited = {n for v in result.expectations for n in v.packets}
    failed = {n for v in result.expectations if not v.ok for n in v.packets}
    book = (f"<pre>{_h(result.book_listing)}</pre>" if result.book_listing.strip()
            else "<p>The book prints no listing for this experiment.</p>")
    note = ""
    if result.modern_note.strip():
        paragraphs = "".join(f"<p>{_h(line)}</p>" for line in result.modern_note.splitlines() if line.strip())
        note = f'<div class="note"><h3>How a modern kernel differs</h3>{paragraphs}</div>'
    return ('<section id="listing"><h2>The book and this run</h2><div class="cols">'
            f"<div><h3>The book ({_h(result.section)})</h3>{book}</div>"
            f"<div><h3>Captured in this run</h3>{_listing_html(result.packets, cited, failed)}</div>"
            f"</div>{note}</section>")


def _clip(text: str) -> str:
    if len(text) <= MAX_OUTPUT:
        return text
    return text[:MAX_OUTPUT] + f"\n… ({len(text) - MAX_OUTPUT} more characters)"


def _steps(result: RunResult) -> str:
    if not result.steps:
        return '<section id="steps"><h2>Steps</h2><p>No steps were recorded.</p></section>'
    items = []
    t0 = result.started or (result.steps[0].started if result.steps else 0.0)
    for step in result.steps:
        where = f" on <b>{_h(step.node)}</b>" if step.node else ""
        rc = ""
        if step.rc is not None:
            rc = f' · exit <span class="{"rc0" if step.rc == 0 else "rcx"}">{step.rc}</span>'
        when = f"+{step.started - t0:.2f} s" if step.started and t0 else ""
        head = f"{_h(step.title)}{where} <span class='meta'>{when} · {step.duration:.2f} s{rc}</span>"
        body = f"<pre>$ {_h(step.command)}</pre>" if step.command else ""
        for name, text in (("stdout", step.stdout), ("stderr", step.stderr)):
            if text and text.strip():
                opened = " open" if len(text) < 2000 else ""
                body += f"<details{opened}><summary>{name}</summary><pre>{_h(_clip(text))}</pre></details>"
        items.append(f"<li>{head}{body}</li>")
    return f'<section id="steps"><h2>Steps</h2><ol class="steps">{"".join(items)}</ol></section>'


def _captures(result: RunResult, base: Path) -> str:
    if not result.pcaps:
        return '<section id="captures"><h2>Captures</h2><p>none</p></section>'
    items = "".join(f'<li><a href="{_h(_rel(path, base))}">{_h(Path(path).name)}</a> — captured at '
                    f"<code>{_h(point)}</code></li>" for point, path in result.pcaps.items())
    return (f'<section id="captures"><h2>Captures</h2><ul>{items}</ul>'
            "<p class='meta'>Open with <code>tcpdump -nt -r FILE</code> or Wireshark.</p></section>")


def write_run(result: RunResult, path: str | Path | None = None) -> Path:
    """Write the run's page (default ``run_dir/report.html``) and return its path."""
    target = Path(path) if path is not None else result.run_dir / "report.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_run(result, target.parent), encoding="utf-8")
    return target


def index_html(items: Sequence[dict[str, Any] | RunResult], base: Path) -> str:
    """The index page for many runs: the summary table, each row linking to its run's page."""
    rows_data = [experiment_json(i) if isinstance(i, RunResult) else i for i in items]
    counts = {k: sum(1 for r in rows_data if r.get("verdict") == k) for k in ("pass", "fail", "error")}
    rows = []
    for r in rows_data:
        verdict = str(r.get("verdict"))
        name = _h(r.get("id"))
        link = f'<a href="{_h(_rel(r["report"], base))}">{name}</a>' if r.get("report") else name
        expectations = r.get("expectations") or []
        held = sum(1 for e in expectations if e.get("verdict") == "pass")
        problem = r.get("error") or next(
            (f"{e.get('description')}: expected {e.get('expected')}, observed {e.get('observed')}"
             for e in expectations if e.get("verdict") != "pass"), "")
        rows.append(f'<tr><td class="v"><span class="badge {_h(verdict)}">{_h(verdict.upper())}</span></td>'
                    f"<td>{link}</td><td>{_h(r.get('title', ''))}</td><td>{_h(r.get('section', ''))}</td>"
                    f"<td>{held}/{len(expectations)}</td><td>{float(r.get('duration_s') or 0):.1f} s</td>"
                    f"<td>{_h(problem)}</td></tr>")
    return "\n".join([
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><title>lab runs</title>',
        f"<style>{CSS}</style></head><body>",
        f"<h1>Experiment runs</h1><p class='meta'>{len(rows_data)} experiments: {counts['pass']} passed, "
        f"{counts['fail']} failed, {counts['error']} errors · {_h(time.strftime('%Y-%m-%d %H:%M:%S'))}</p>",
        "<table><tr><th></th><th>experiment</th><th>what it shows</th><th>section</th><th>held</th>"
        "<th>time</th><th>first problem</th></tr>",
        *rows,
        "</table></body></html>",
    ])


def render_index(results: Sequence[dict[str, Any] | RunResult], path: str | Path) -> Path:
    """Write ``index.html`` for a catalogue run (RunResults or JSON items) and return its path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(index_html(results, target.parent), encoding="utf-8")
    return target


write_index = render_index
