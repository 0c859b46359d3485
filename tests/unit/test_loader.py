"""The loader: line numbers for every error (plain YAML and inside jinja2 loops), the sandbox and its limits."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest
from jinja2.sandbox import SandboxedEnvironment

from lab.errors import InputError, TopologyError
from lab.topology import load_topology, load_topology_text, loader, render
from lab.topology.loader import MAX_ALIAS_VALUES, MAX_DEPTH
from lab.topology.sourcemap import SourceMap


def load(text: str, **variables: str):  # type: ignore[no-untyped-def]
    return load_topology_text(textwrap.dedent(text), "t.yaml", variables)


def problems(text: str, **variables: str) -> list[str]:
    with pytest.raises(TopologyError) as exc:
        load(text, **variables)
    return exc.value.problems


LAN = "name: t\nnetworks:\n  lan: {subnet: 10.0.0.0/24}\nnodes:\n"


# ----------------------------------------------------------------------------- plain YAML


def test_source_map_records_the_line_of_every_key() -> None:
    _, smap = load(LAN + "  a:\n    interfaces:\n      eth0: {network: lan}\n")
    assert smap.line_of(("name",)) == 1
    assert smap.line_of(("networks", "lan", "subnet")) == 3
    assert smap.line_of(("nodes", "a")) == 5
    assert smap.line_of(("nodes", "a", "interfaces", "eth0", "network")) == 7
    assert smap.line_of(("nodes", "a", "missing", "deeper")) == 5  # the longest known prefix


def test_unknown_key_names_its_line_and_the_keys_allowed() -> None:
    (p,) = problems(LAN + "  a:\n    interfaces:\n      eth0:\n        network: lan\n        colour: red\n")
    assert p.startswith("t.yaml:9: nodes.a.interfaces.eth0.colour: unknown key 'colour'")
    assert "expected one of: address, address6, impair, mac, mtu, network" in p


def test_a_misspelt_key_names_the_key_it_looks_like() -> None:
    (p,) = problems(LAN + "  a:\n    interfaces:\n      eth0:\n        network: lan\n        adress: 10.0.0.5/24\n")
    assert p == "t.yaml:9: nodes.a.interfaces.eth0.adress: unknown key 'adress'; did you mean 'address'?"


def test_missing_key_points_at_its_parent() -> None:
    (p,) = problems("\n\nname: t\nnetworks: {}\n")
    assert p == "t.yaml:3: nodes: required key is missing"


def test_wrong_type_shows_what_was_given() -> None:
    (p,) = problems(LAN + "  a: {interfaces: {eth0: {network: lan, mtu: big}}}\n")
    assert p.startswith("t.yaml:5: nodes.a.interfaces.eth0.mtu: input should be a valid integer")
    assert p.endswith("(got 'big')")


def test_union_errors_are_one_problem() -> None:
    (p,) = problems(LAN + "  a:\n    interfaces: {eth0: {network: lan}}\n    routes: [{to: 10.9.0.0/99}]\n")
    assert p.startswith("t.yaml:7: nodes.a.routes.0.to: input should be 'default', or ")


def test_all_problems_are_reported_at_once_each_at_its_line() -> None:
    found = problems(LAN + "  a: {interfaces: {eth0: {network: wan}}}\n  b: {interfaces: {eth0: {network: lan}}, "
                           "routes: [{to: default, via: 10.9.9.9}]}\n")
    assert [p.split(": ")[0] for p in found] == ["t.yaml:5", "t.yaml:6"]


def test_yaml_syntax_error_line() -> None:
    (p,) = problems(LAN + "  a:\n    interfaces: eth0: x\n")
    assert p.startswith("t.yaml:6: YAML syntax error")


def test_unclosed_quote_points_where_it_opened() -> None:
    (p,) = problems('name: "t\nnodes: {a: {}}\n\n\n')
    assert p.startswith("t.yaml:1: YAML syntax error")


def test_aliases_in_moderation_are_fine() -> None:
    topo, _ = load(LAN + "  a:\n    interfaces: {eth0: {network: lan, address: 10.0.0.2/24}}\n"
                         "    routes: &gw [{to: default, via: 10.0.0.1}]\n"
                         "  b:\n    interfaces: {eth0: {network: lan}}\n    routes: *gw\n")
    assert topo.nodes["b"].routes == topo.nodes["a"].routes


def test_billion_laughs_is_refused_quickly() -> None:
    lines = ["name: t", 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    start = time.monotonic()
    (p,) = problems("\n".join(lines) + "\nnodes: {a: {}}\n")
    assert time.monotonic() - start < 1
    assert f"more than {MAX_ALIAS_VALUES:,}" in p


@pytest.mark.parametrize("depth", [40, 5000])  # 40: our composer's limit trips; 5000: libyaml's may trip first
def test_deep_nesting_is_refused_with_its_line(depth: int) -> None:
    (p,) = problems("name: t\nnodes:\n  a: " + "[" * depth + "]" * depth + "\n")
    assert p == f"t.yaml:3: the YAML is nested too deeply (more than {MAX_DEPTH} levels)"


def test_the_yaml_librarys_own_nesting_limit_gets_the_same_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """PyYAML 6.0.4's libyaml refuses deep flow nesting in its scanner; 6.0.3's does not. Either way, one message."""
    import yaml

    def scanner_refuses(self: object) -> None:
        mark = yaml.Mark("t.yaml", 0, 2, 1003, "", 0)
        raise yaml.scanner.ScannerError("while increasing flow level", mark, "exceeded maximum nesting depth", mark)

    monkeypatch.setattr(loader._Loader, "get_single_node", scanner_refuses)
    (p,) = problems("name: t\nnodes:\n  a: [[[]]]\n")
    assert p == f"t.yaml:3: the YAML is nested too deeply (more than {MAX_DEPTH} levels)"


def test_python_tags_are_refused() -> None:
    (p,) = problems("name: t\nnodes: !!python/object/apply:os.system [reboot]\n")
    assert p.startswith("t.yaml:2: YAML tag '!!python/object/apply:os.system' is not allowed")


def test_nul_and_lone_surrogates() -> None:
    assert problems("name: t\n\nnodes: {a\x00: {}}\n") == ["t.yaml:3: the file contains a NUL byte"]
    assert problems("name: t\nnodes: {a\udcff: {}}\n")[0].startswith("t.yaml:2: the text is not valid Unicode")


# ----------------------------------------------------------------------------- files


def test_non_utf8_file_names_the_line(tmp_path: Path) -> None:
    f = tmp_path / "latin1.yaml"
    f.write_bytes(b"name: t\nnodes:\n  caf\xe9: {}\n")
    with pytest.raises(TopologyError) as exc:
        load_topology(f)
    assert exc.value.problems[0].startswith(f"{f}:3: the file is not UTF-8 text")


def test_special_files_are_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        with pytest.raises(InputError) as exc:
            load_topology(path)
        assert "not a regular file" in exc.value.message
    with pytest.raises(InputError, match="no such topology file"):
        load_topology(tmp_path / "missing.yaml")
    with pytest.raises(InputError, match="is a directory"):
        load_topology(tmp_path)


# ----------------------------------------------------------------------------- jinja2


TEMPLATE = """\
    name: t
    networks:
      red: {subnet: 10.1.0.0/24}
      green: {subnet: 10.2.0.0/24}
    nodes:
    {% for lan in ["red", "green", "blue"] %}
    {% for i in range(n | int) %}
      {{ lan }}{{ i }}:
        interfaces:
          eth0: {network: {{ lan }}}
    {% endfor %}
    {% endfor %}
"""


def test_error_inside_a_loop_points_at_the_template_line() -> None:
    found = problems(TEMPLATE, n="2")
    assert found == [
        "t.yaml:10: nodes.blue0.interfaces.eth0.network: unknown network 'blue' (networks: green, red)",
        "t.yaml:10: nodes.blue1.interfaces.eth0.network: unknown network 'blue' (networks: green, red)",
    ]


def test_rendered_lines_map_back_to_template_lines() -> None:
    topo, smap = load(TEMPLATE.replace(', "blue"', ""), n="3")
    assert sorted(topo.nodes) == ["green0", "green1", "green2", "red0", "red1", "red2"]
    assert smap.line_of(("nodes", "green2")) == 8
    assert smap.line_of(("nodes", "red0", "interfaces", "eth0", "network")) == 10
    assert smap.line_of(("networks", "green")) == 4


def test_yaml_error_after_a_loop_points_at_the_template_line() -> None:
    text = LAN + "{% for i in range(30) %}\n  h{{ i }}: {interfaces: {eth0: {network: lan}}}\n{% endfor %}\n  x: [\n"
    (p,) = problems(text)
    assert p.startswith("t.yaml:8: YAML syntax error")


def test_template_errors_name_their_line() -> None:
    assert problems("name: t\nnodes:\n{% for i in range(hosts) %}\n  n{{ i }}: {}\n{% endfor %}\n") == [
        "t.yaml:3: template error: 'hosts' is undefined"]
    (p,) = problems("name: t\nnodes:\n  a: {}\n{% if %}\n")
    assert p.startswith("t.yaml:4: template error:")


def test_templates_render_in_the_sandbox() -> None:
    assert issubclass(render._Sandbox, SandboxedEnvironment)
    for expr in ("''.__class__.__mro__", "cycler.__init__.__globals__", "lipsum.__globals__",
                 "(lipsum | attr('__globals__'))", "'{0.__class__}'.format(1)"):
        (p,) = problems(f"name: t\nnodes:\n  a: {{env: {{X: \"{{{{ {expr} }}}}\"}}}}\n")
        assert p.startswith("t.yaml:3: template error:") and "unsafe" in p, p


def test_loops_have_a_budget() -> None:
    start = time.monotonic()
    (p,) = problems("name: t\nnodes: {a: {}}\n\n{% for i in range(100000) %}{% for j in range(100000) %}"
                    "{% endfor %}{% endfor %}\n")
    assert time.monotonic() - start < 3
    assert p.startswith("t.yaml:4: template error: the template's loops run more than 1,000,000 times")


def test_big_operators_are_refused() -> None:
    assert "would repeat 1 items 10000000000 times" in problems("name: t\nnodes: {a: {env: {X: \"{{ 'x' * 10 ** 10 "
                                                                "}}\"}}}\n")[0]
    assert "too large a number" in problems("name: t\nnodes: {a: {env: {X: \"{{ 7 ** 1000000 }}\"}}}\n")[0]


def test_rendering_has_a_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loops over lists do not use range(), so only the clock stops them."""
    monkeypatch.setattr(render, "RENDER_SECONDS", 0.5)
    start = time.monotonic()
    (p,) = problems("name: t\nnodes: {a: {}}\n{% set l = range(100000) | list %}\n"
                    "{% for x in l %}{% for y in l %}{% endfor %}{% endfor %}\n")
    assert time.monotonic() - start < 3
    assert p.startswith("t.yaml:4: template error: rendering took longer than 0.5 s")


def test_rendering_has_a_memory_limit() -> None:
    start = time.monotonic()
    (p,) = problems("name: t\nnodes:\n  a: {env: {X: \"{{ 'x' | center(10 ** 10) }}\"}}\n")
    assert time.monotonic() - start < 5
    assert p.startswith("t.yaml:3: template error: the template needs more than")


def test_rendering_has_an_output_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render, "MAX_OUTPUT_CHARS", 10_000)
    (p,) = problems("name: t\nnodes: {a: {}}\n{% for i in range(1000) %}\n# {{ 'padding ' * 5 }}\n{% endfor %}\n")
    assert p.startswith("t.yaml:4: template error: the rendered topology is larger than")


def _children() -> set[int]:
    found: set[int] = set()
    for task in os.listdir("/proc/self/task"):
        try:
            found |= {int(p) for p in Path(f"/proc/self/task/{task}/children").read_text().split()}
        except OSError:
            pass
    return found


def test_the_render_child_is_always_reaped() -> None:
    before = _children()
    load(TEMPLATE.replace(', "blue"', ""), n="2")
    problems("name: t\nnodes:\n  a: {env: {X: \"{{ 'x' | center(10 ** 10) }}\"}}\n")
    assert _children() == before


def test_variables_reach_the_template() -> None:
    topo, _ = load(TEMPLATE.replace(', "blue"', ""), n="1")
    assert len(topo.nodes) == 2
    found = problems(TEMPLATE.replace(', "blue"', ""))
    assert found == ["t.yaml:7: template error: 'n' is undefined"]


def test_source_map_clamps_rendered_lines() -> None:
    smap = SourceMap("f", rendered_to_source=[1, 1, 5])
    assert smap.source_line(0) == 1 and smap.source_line(3) == 5 and smap.source_line(99) == 5
