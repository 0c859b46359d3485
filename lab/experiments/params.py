"""Parameter types an experiment can declare in its steps' signature, beside int, float, str and bool.

    @experiment(id="my-rto", title="...", section="§3.9", topology="book-lan.yaml")
    def my_rto(run: Run, port: int = 5011, rtt: Duration = Duration("80ms")) -> None:
        run.impair("router:eth1", delay=rtt)
        ... rtt.seconds ...

Each is a ``str`` subclass holding the text as written (so it prints, and goes into a topology's
``impair:`` or ``run.impair`` unchanged) and checked when made, in tc's units
(:mod:`lab.topology.units`): ``-p rtt=fast`` is refused before the lab is built.
"""

from __future__ import annotations

from lab.topology import units


class Duration(str):
    """A time: ``40ms``, ``1.5s``, ``500us``."""

    def __new__(cls, text: str) -> Duration:
        units.milliseconds(text)
        return super().__new__(cls, text.strip())

    @property
    def seconds(self) -> float:
        return units.milliseconds(self) / 1000

    @property
    def milliseconds(self) -> float:
        return units.milliseconds(self)


class Percent(str):
    """A share: ``1%``, ``0.1%``."""

    def __new__(cls, text: str) -> Percent:
        units.percent(text)
        return super().__new__(cls, text.strip())

    @property
    def value(self) -> float:
        return units.percent(self)


class Rate(str):
    """A rate: ``10mbit``, ``500kbit``."""

    def __new__(cls, text: str) -> Rate:
        units.bits_per_second(text)
        return super().__new__(cls, text.strip())

    @property
    def bits_per_second(self) -> float:
        return units.bits_per_second(self)


TYPE_NAMES: dict[type, str] = {bool: "bool", int: "int", float: "float", str: "str", Duration: "duration",
                               Percent: "percent", Rate: "rate"}
