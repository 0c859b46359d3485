"""Experiment parameters: typed in the steps' signature (or, as before, by params= defaults), checked at -p."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lab.errors import InputError
from lab.experiments import engine
from lab.experiments.params import Duration, Percent, Rate


@pytest.fixture(autouse=True)
def _own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "REGISTRY", {})


def test_parameters_come_from_the_signature_with_their_types() -> None:
    seen: dict[str, object] = {}

    @engine.experiment(id="sig-demo", title="t", section="§0", topology="book-lan.yaml")
    def steps(run, port: int = 54321, rtt: Duration = Duration("40ms"), loss: Percent = Percent("1%"),
              rate: Rate = Rate("10mbit"), fast: bool = False, ratio: float = 0.5, name: str = "x") -> None:
        seen.update(port=port, rtt=rtt, fast=fast)

    exp = engine.REGISTRY["sig-demo"]
    assert exp.params == {"port": 54321, "rtt": "40ms", "loss": "1%", "rate": "10mbit", "fast": False, "ratio": 0.5,
                          "name": "x"}
    assert exp.parameter_types() == {"port": "int", "rtt": "duration", "loss": "percent", "rate": "rate",
                                     "fast": "bool", "ratio": "float", "name": "str"}
    p = exp.parameters({"port": "8080", "rtt": "1.5s", "fast": "yes"})
    assert (p.port, p.rtt, p.rtt.seconds, p.fast) == (8080, "1.5s", 1.5, True)
    exp.run_steps(SimpleNamespace(p=p))  # type: ignore[arg-type]  # called with the parameters as keyword arguments
    assert seen == {"port": 8080, "rtt": "1.5s", "fast": True}


@pytest.mark.parametrize("key, raw, message", [
    ("port", "http", "-p port=http: expected int: 'http' is not an int"),
    ("rtt", "40", "-p rtt=40: expected duration: '40' is not a time"),
    ("fast", "maybe", "-p fast=maybe: expected bool: 'maybe' is not true or false"),
    ("nothing", "1", "sig-bad has no parameter 'nothing'"),
])
def test_a_value_that_does_not_fit_is_one_line(key: str, raw: str, message: str) -> None:
    @engine.experiment(id="sig-bad", title="t", section="§0", topology="book-lan.yaml")
    def steps(run, port: int = 1, rtt: Duration = Duration("1ms"), fast: bool = False) -> None: ...

    with pytest.raises(InputError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        engine.REGISTRY["sig-bad"].parameters({key: raw})


def test_params_by_defaults_still_work_and_the_steps_get_only_run() -> None:
    calls = []

    @engine.experiment(id="old-style", title="t", section="§0", topology="book-lan.yaml",
                       params={"port": 7, "wait": 0.5})
    def steps(run) -> None:
        calls.append(run.p.wait)

    exp = engine.REGISTRY["old-style"]
    assert exp.parameter_types() == {"port": "int", "wait": "float"}
    exp.run_steps(SimpleNamespace(p=exp.parameters({"wait": "2"})))  # type: ignore[arg-type]
    assert calls == [2.0]


def test_declaring_both_ways_a_default_less_or_an_unknown_type_is_refused() -> None:
    with pytest.raises(ValueError, match="not both"):
        @engine.experiment(id="both", title="t", section="§0", topology="x.yaml", params={"a": 1})
        def both(run, b: int = 2) -> None: ...
    with pytest.raises(ValueError, match="needs a default"):
        @engine.experiment(id="nodefault", title="t", section="§0", topology="x.yaml")
        def nodefault(run, b: int) -> None: ...
    with pytest.raises(ValueError, match="use one of"):
        @engine.experiment(id="badtype", title="t", section="§0", topology="x.yaml")
        def badtype(run, b: list = []) -> None: ...  # noqa: B006


def test_the_units_are_checked_when_a_value_is_made() -> None:
    assert Rate("1gbit").bits_per_second == 1e9 and Percent("0.1%").value == 0.1
    assert Duration("500us").milliseconds == 0.5
    with pytest.raises(ValueError):
        Duration("soon")


def test_family_chooses_the_topology_and_takes_4_or_6() -> None:
    @engine.experiment(id="fam-demo", title="t", section="§0", topology="book-lan.yaml", topology6="book-lan6.yaml")
    def steps(run, family: int = 4, port: int = 7) -> None:
        pass

    exp = engine.REGISTRY["fam-demo"]
    assert exp.topology_path(exp.parameters()).name == "book-lan.yaml"
    assert exp.topology_path(exp.parameters({"family": "6"})).name == "book-lan6.yaml"
    assert exp.topology_for(exp.parameters({"family": "6"})) == "book-lan6.yaml"
    with pytest.raises(InputError, match=r"-p family=5: expected 4 or 6"):
        exp.parameters({"family": "5"})


def test_a_family_parameter_and_topology6_go_together() -> None:
    with pytest.raises(ValueError, match="go together"):
        @engine.experiment(id="fam-half", title="t", section="§0", topology="book-lan.yaml")
        def steps(run, family: int = 4) -> None:
            pass
    with pytest.raises(ValueError, match="go together"):
        @engine.experiment(id="fam-other", title="t", section="§0", topology="book-lan.yaml",
                           topology6="book-lan6.yaml")
        def other(run, port: int = 7) -> None:
            pass
