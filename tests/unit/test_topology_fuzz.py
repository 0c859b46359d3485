"""Fuzzing the loader: whatever the text, load_topology_text returns a Topology or raises InputError.

Three sources of input: mutations of valid topologies (cut, paste, hostile
words, jinja2 tags), random YAML structures shaped like a topology, and raw
text. For each, the loader must finish within a bounded time and either
succeed or raise lab.errors.InputError (TopologyError is one) whose every
problem starts with ``file:line:``. Any other exception is a bug.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab.errors import InputError, TopologyError
from lab.topology import Topology, load_topology_text
from lab.topology.render import RENDER_SECONDS

FILENAME = "fuzz.yaml"
PROBLEM = re.compile(rf"^{re.escape(FILENAME)}:\d+: \S")
TIME_LIMIT = RENDER_SECONDS + 5  # a template may use its whole render time; YAML must be quick
ROOT = Path(__file__).resolve().parents[2]

SEEDS = [p.read_text() for p in sorted((ROOT / "topologies").glob("*.yaml"))] + [
    """name: seed-p2p
nodes:
  a: {interfaces: {eth0: {address: 10.0.0.1/30}}, routes: [{to: default, via: 10.0.0.2}]}
  b: {kind: router, interfaces: {eth0: {address: 10.0.0.2/30}}, sysctls: {net.ipv4.tcp_syn_retries: 2}}
links:
  - [a:eth0, b:eth0]
""",
    """name: seed-tpl
networks:
  lan: {subnet: 10.9.0.0/24}
nodes:
{% for i in range(3) %}
  h{{ i }}:
    interfaces: {eth0: {network: lan}}
{% endfor %}
""",
]

HOSTILE = ["$(reboot)", "../../etc", ";rm -rf /", "\x00", "\udcff", "{{", "}}", "{%", "%}", "{#", "&a", "*a",
           "!!python/object/apply:os.system", "<<", "? ", "- ", ": ", "\t", "\n", "'", '"', "[", "]", "{", "}",
           "é", "\u2028", "1e999", "0x1F", "2024-13-45", "~", "yes", "a" * 300, "9" * 5000,
           "{{ ''.__class__.__mro__ }}", "{{ cycler.__init__.__globals__ }}", "{{ lipsum.__globals__ }}",
           "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
           "{{ 'x' * 10 ** 9 }}", "{{ undefined_thing }}", "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
           "name", "nodes", "networks", "links", "interfaces", "routes", "address", "network", "subnet", "via",
           "to", "default", "10.0.0.0/24", "10.0.0.1", "eth0", "kind", "router", "container", "image"]


def check(text: str) -> None:
    """The property: a Topology, or an InputError whose problems all say file:line."""
    start = time.monotonic()
    try:
        topo, _ = load_topology_text(text, FILENAME)
    except TopologyError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert PROBLEM.match(problem), f"problem without file:line: {problem!r}"
            assert "\n" not in problem, f"a problem spans lines: {problem!r}"
    except InputError as exc:
        assert PROBLEM.match(exc.message), f"message without file:line: {exc.message!r}"
    else:
        assert isinstance(topo, Topology)
    elapsed = time.monotonic() - start
    assert elapsed < TIME_LIMIT, f"took {elapsed:.1f} s"


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["insert", "delete", "replace", "dup-line", "swap-lines"]))
        pos = draw(st.integers(0, len(text)))
        if kind == "insert":
            text = text[:pos] + draw(st.sampled_from(HOSTILE) | st.text(max_size=8)) + text[pos:]
        elif kind == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 20)):]
        elif kind == "replace":
            words = re.findall(r"[A-Za-z0-9_./-]+", text)
            if words:
                word = draw(st.sampled_from(words))
                text = text.replace(word, draw(st.sampled_from(HOSTILE) | st.text(max_size=6)), 1)
        else:
            lines = text.split("\n")
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            if kind == "dup-line":
                lines.insert(j, lines[i])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
    return text


KEYS = st.sampled_from(["name", "nodes", "networks", "links", "interfaces", "routes", "sysctls", "kind", "image",
                        "address", "network", "subnet", "via", "to", "dev", "mtu", "mac", "env", "hosts", "ipv6",
                        "a", "b", "eth0", "lan", "resolv", "dns", "web", "proxy"]) | st.text(max_size=10)
SCALARS = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True)
           | st.sampled_from(HOSTILE) | st.text(max_size=20)
           | st.sampled_from(["10.0.0.1/24", "10.0.0.0/24", "default", "a:eth0", "host", "router"]))
STRUCTURES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(KEYS, inner, max_size=5), max_leaves=40)


@st.composite
def structured(draw: st.DrawFn) -> str:
    data: Any = draw(st.dictionaries(KEYS, STRUCTURES, max_size=6) | STRUCTURES)
    if isinstance(data, dict) and draw(st.booleans()):
        data.setdefault("name", "fuzz")
        data.setdefault("nodes", {"a": {}})
    return yaml.safe_dump(data, allow_unicode=draw(st.booleans()), default_flow_style=draw(st.booleans()))


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(mutated())
def test_mutated_topologies(text: str) -> None:
    check(text)


@FUZZ
@given(structured())
def test_random_structures(text: str) -> None:
    check(text)


@FUZZ
@given(st.text(max_size=300))
def test_raw_text(text: str) -> None:
    check(text)


def test_seeds_are_valid() -> None:
    """The mutations start from topologies that load (else the fuzzing would only test the error path)."""
    for seed in SEEDS:
        topo, _ = load_topology_text(seed, FILENAME)
        assert topo.nodes
