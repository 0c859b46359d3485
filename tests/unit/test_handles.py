"""Handles: a lab of any size holds a bounded number of namespaces open, and nothing queued is lost."""

from __future__ import annotations

from typing import Any, cast

from lab.net.netns import Handles, Namespace


class FakeRtnl:
    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name, self.queue = log, name, 0

    def pending(self) -> int:
        return self.queue

    def flush(self) -> None:
        self.log.append(f"flush {self.name}")
        self.queue = 0


class FakeNamespace:
    """What Handles uses of a Namespace: its name, its queue, and release."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log, self.open = name, log, True
        self.rtnl = FakeRtnl(log, name)

    def pending(self) -> int:
        return self.rtnl.pending()

    def release(self, drop: bool = False) -> None:
        assert drop or not self.pending(), f"{self.name} released with requests queued"
        self.log.append(f"release {self.name}")
        self.open = False


def handles(n: int, limit: int) -> tuple[Handles, list[FakeNamespace], list[str]]:
    log: list[str] = []
    spaces = Handles(limit)
    fakes = [FakeNamespace(f"ns{i}", log) for i in range(n)]
    for i, fake in enumerate(fakes):
        spaces.checkpoint()
        spaces.add(cast(Namespace, fake), pinned=i == 0)
    return spaces, fakes, log


def test_a_checkpoint_past_the_limit_sends_what_is_queued_then_releases_all_but_the_pinned() -> None:
    spaces, fakes, log = handles(10, limit=3)
    assert sum(f.open for f in fakes) <= 4  # the limit, and the one added after the last checkpoint
    assert fakes[0].open  # pinned: the switch every port is made from
    log.clear()
    for f in fakes[1:4]:
        f.open = True
        cast(Any, spaces[f.name]).rtnl.queue = 2
    spaces["ns0"].rtnl.queue = 1  # type: ignore[attr-defined]
    spaces.checkpoint()  # 4 used since the last one (ns0, ns9 and these 3 count): over 3
    flushed = [line for line in log if line.startswith("flush")]
    assert flushed == ["flush ns0", "flush ns1", "flush ns2", "flush ns3"]  # in the order used, before releases
    assert log.index("flush ns3") < log.index("release ns1")
    assert "release ns0" not in log and not any(f.open for f in fakes[1:])


def test_under_the_limit_a_checkpoint_does_nothing() -> None:
    spaces, fakes, log = handles(3, limit=5)
    spaces.checkpoint()
    assert all(f.open for f in fakes) and log == []


def test_close_drops_what_is_queued_after_a_failure() -> None:
    spaces, fakes, log = handles(3, limit=5)
    fakes[1].rtnl.queue = 4
    spaces.close()
    assert not any(f.open for f in fakes)
    assert not any(line.startswith("flush") for line in log)
