"""The expectation library: claims about a run that read like the book's, each decided into a Verdict.

An experiment states what should be true ("the SYN was sent 4 times; gaps ≈ 1,
2, 4 s") and this module turns that into a :class:`Verdict` that says what was
expected, what was observed, and which packets (by their number in the listing)
decided it — so a failing run can be checked by eye against the capture.

Two kinds of functions live here:

- queries, which narrow a packet list the way a sentence does: ``syns(pk)``,
  ``tcp(pk, flags="R.", src=server)``, ``icmp(pk, type=5)``, ``gaps(pk)``;
- claims, which return a Verdict: ``count``, ``sequence``, ``gaps_match``,
  ``equals``, ``within``, ``every``, ``output_contains``, ``exit_code``, ``errno``.
  Every claim takes its description first, then what was observed and what was
  expected: ``count("two ARP frames", arp(pk), 2)``. An empty description ("")
  lets the claim word one itself ("exactly 2 packets").

Claims never raise for a claim that does not hold; :func:`guarded` turns an
exception in the code computing a claim into an ``error`` verdict.
"""

from __future__ import annotations

import errno as _errno
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from lab.capture.records import ACK, RST, SYN, Packet
from lab.experiments.claim_order import OldClaimOrder as OldClaimOrder  # re-exported: expect.OldClaimOrder
from lab.experiments.claim_order import packets_first_accepted

VerdictKind = Literal["pass", "fail", "error", "unjudged"]
Predicate = Callable[[Packet], bool]
Flags = str | Iterable[str] | None


@dataclass
class Verdict:
    """One decided claim: what was expected, what was observed, and the packets that decided it."""

    description: str
    verdict: VerdictKind
    expected: str
    observed: str
    packets: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.verdict == "pass"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        cited = f" [packets {', '.join(map(str, self.packets))}]" if self.packets else ""
        return (f"{self.verdict.upper()} {self.description}: expected {self.expected}; "
                f"observed {self.observed}{cited}")


def check(description: str, ok: bool, expected: object, observed: object,
          packets: Iterable[Packet | int] = ()) -> Verdict:
    """The general claim: ``ok`` decides; expected and observed are shown as text."""
    return Verdict(description, "pass" if ok else "fail", _text(expected), _text(observed), nos(packets))


def error(description: str, message: str, expected: object = "", packets: Iterable[Packet | int] = ()) -> Verdict:
    """A claim that could not be decided (the data it needs is missing or broken)."""
    return Verdict(description, "error", _text(expected), message, nos(packets))


def unjudged(description: str, why: str, expected: object = "") -> Verdict:
    """A claim this run cannot decide, and why (a reader's program that does not do what it needs): never a fail."""
    return Verdict(description, "unjudged", _text(expected), why)


def guarded(description: str, compute: Callable[[], Verdict]) -> Verdict:
    """Run ``compute``; an exception becomes an ``error`` verdict naming it, instead of ending the run."""
    try:
        return compute()
    except Exception as exc:  # a bug or missing data in one claim must not hide the others
        return error(description, f"could not evaluate: {type(exc).__name__}: {exc}")


def _text(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple) and value and all(isinstance(v, float) for v in value):
        return ", ".join(f"{v:g}" for v in value)
    return str(value)


def nos(packets: Iterable[Packet | int]) -> list[int]:
    """The listing numbers of packets (ints pass through)."""
    return [p if isinstance(p, int) else p.no for p in packets]


def cite(packets: Sequence[Packet], limit: int = 8) -> str:
    """Packets as ``#3, #5, #9`` (first ``limit`` of them), for observed strings."""
    shown = ", ".join(f"#{p.no}" for p in packets[:limit])
    more = f" and {len(packets) - limit} more" if len(packets) > limit else ""
    return shown + more


# ---------------------------------------------------------------- predicates and queries


def _flags_match(flag_str: str, flags: Flags) -> bool:
    if flags is None:
        return True
    if isinstance(flags, str):
        return flag_str == flags
    return flag_str in set(flags)


def is_tcp(flags: Flags = None, sport: int | None = None, dport: int | None = None, src: str | None = None,
           dst: str | None = None, payload: bytes | str | bool | None = None) -> Predicate:
    """A predicate for TCP segments.

    ``flags`` is tcpdump's notation matched exactly ("S", "S.", "R.", "P.U"), or
    several accepted ones; ``payload`` is the exact bytes (a str is UTF-8), or
    True for "carries data" / False for "carries none".
    """
    wanted = payload.encode() if isinstance(payload, str) else payload

    def predicate(p: Packet) -> bool:
        t = p.tcp
        if t is None or not _flags_match(t.flag_str, flags):
            return False
        if (sport is not None and t.sport != sport) or (dport is not None and t.dport != dport):
            return False
        if (src is not None and p.src != src) or (dst is not None and p.dst != dst):
            return False
        if wanted is True:
            return t.length > 0
        if wanted is False:
            return t.length == 0
        return wanted is None or t.payload == wanted

    return predicate


def is_udp(sport: int | None = None, dport: int | None = None, src: str | None = None,
           dst: str | None = None) -> Predicate:
    def predicate(p: Packet) -> bool:
        u = p.udp
        return (u is not None and (sport is None or u.sport == sport) and (dport is None or u.dport == dport)
                and (src is None or p.src == src) and (dst is None or p.dst == dst))

    return predicate


def is_arp(op: int | str | None = None) -> Predicate:
    """ARP frames; ``op`` is 1/"request" or 2/"reply"."""
    number = {"request": 1, "reply": 2}.get(op, op) if isinstance(op, str) else op
    if isinstance(op, str) and number == op:
        raise ValueError(f"ARP op {op!r}: use 'request', 'reply', 1 or 2")
    return lambda p: p.arp is not None and (number is None or p.arp.op == number)


def is_icmp(type: int | None = None, code: int | None = None) -> Predicate:
    return lambda p: (p.icmp is not None and (type is None or p.icmp.type == type)
                      and (code is None or p.icmp.code == code))


def is_dns(response: bool | None = None, qtype: str | None = None) -> Predicate:
    """DNS messages; ``response`` True/False for answers/queries; ``qtype`` such as "A" or "AAAA"."""
    def predicate(p: Packet) -> bool:
        d = p.dns
        if d is None or (response is not None and d.is_response != response):
            return False
        return qtype is None or any(t == qtype for _, t in d.questions)

    return predicate


def where(packets: Iterable[Packet], predicate: Predicate) -> list[Packet]:
    return [p for p in packets if predicate(p)]


def at(packets: Iterable[Packet], point: str) -> list[Packet]:
    """Packets captured at one point: ``node:eth0``, or ``node`` for any interface of that node."""
    return [p for p in packets if p.point == point or p.point.startswith(point + ":")]


def tcp(packets: Iterable[Packet], flags: Flags = None, sport: int | None = None, dport: int | None = None,
        src: str | None = None, dst: str | None = None,
        payload: bytes | str | bool | None = None) -> list[Packet]:
    """TCP segments matching every given field (see :func:`is_tcp`)."""
    return where(packets, is_tcp(flags, sport, dport, src, dst, payload))


def udp(packets: Iterable[Packet], sport: int | None = None, dport: int | None = None, src: str | None = None,
        dst: str | None = None) -> list[Packet]:
    return where(packets, is_udp(sport, dport, src, dst))


def syns(packets: Iterable[Packet]) -> list[Packet]:
    """Opening SYNs (SYN without ACK), retransmissions included."""
    return [p for p in packets if p.tcp is not None and p.tcp.flags & (SYN | ACK) == SYN]


def synacks(packets: Iterable[Packet]) -> list[Packet]:
    return [p for p in packets if p.tcp is not None and p.tcp.flags & (SYN | ACK) == SYN | ACK]


def rsts(packets: Iterable[Packet]) -> list[Packet]:
    """Segments with RST set, with or without ACK."""
    return [p for p in packets if p.tcp is not None and p.tcp.flags & RST]


def fins(packets: Iterable[Packet]) -> list[Packet]:
    return [p for p in packets if p.tcp is not None and p.tcp.is_fin]


def once_each(packets: Iterable[Packet]) -> list[Packet]:
    """TCP segments with every repeat left out: a retransmission (same sender, sequence and
    acknowledgment numbers, flags and length as an earlier one) counts as its first sending."""
    seen: set[tuple[str, int, int, int, int, int]] = set()
    out = []
    for p in packets:
        if p.tcp is None:
            continue
        key = (p.tcp.src, p.tcp.sport, p.tcp.seq, p.tcp.ack, p.tcp.flags, p.tcp.length)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def data(packets: Iterable[Packet]) -> list[Packet]:
    """TCP segments that carry payload."""
    return [p for p in packets if p.tcp is not None and p.tcp.length > 0]


def arp(packets: Iterable[Packet], op: int | str | None = None) -> list[Packet]:
    return where(packets, is_arp(op))


def dns(packets: Iterable[Packet], response: bool | None = None, qtype: str | None = None) -> list[Packet]:
    return where(packets, is_dns(response, qtype))


def icmp(packets: Iterable[Packet], type: int | None = None, code: int | None = None) -> list[Packet]:
    return where(packets, is_icmp(type, code))


def fragments(packets: Iterable[Packet]) -> list[Packet]:
    """IPv4 fragments (MF set or a non-zero offset)."""
    return [p for p in packets if p.ip is not None and p.ip.is_fragment]


def http(packets: Iterable[Packet], kind: str | None = None) -> list[Packet]:
    """Segments starting an HTTP message; ``kind`` "request" or "response"."""
    return [p for p in packets if p.http is not None and (kind is None or p.http.kind == kind)]


def first(packets: Iterable[Packet], predicate: Predicate | None = None) -> Packet | None:
    return next((p for p in packets if predicate is None or predicate(p)), None)


def between(packets: Iterable[Packet], after: Packet | None = None,
            before: Packet | None = None) -> list[Packet]:
    """Packets strictly after ``after`` and strictly before ``before`` in the listing."""
    lo = after.no if after else -1
    hi = before.no if before else float("inf")
    return [p for p in packets if lo < p.no < hi]


def gaps(items: Sequence[Packet | float]) -> list[float]:
    """Time between consecutive packets (or timestamps), in seconds."""
    times = [p if isinstance(p, int | float) else p.time for p in items]
    return [b - a for a, b in zip(times, times[1:], strict=False)]


# ---------------------------------------------------------------- claims about packets


def _described(description: object, claim: str) -> None:
    """Claims take their description first; an older call with the packets first says so plainly."""
    if not isinstance(description, str):
        raise TypeError(f"expect.{claim}() takes its description first: expect.{claim}(description, ...), "
                        f"not a {type(description).__name__}")


@packets_first_accepted(lambda packets, n=None, description="", *, min=None, max=None: None)
def count(description: str, packets: Sequence[Packet], n: int | range | None = None, *,
          min: int | None = None, max: int | None = None) -> Verdict:
    """So many packets: exactly ``n``, ``n`` in a range, or between ``min`` and ``max`` (inclusive)."""
    _described(description, "count")
    found = len(packets)
    if isinstance(n, range):
        ok = found in n
        expected = f"{n.start} to {n.stop - 1}" if n.step == 1 else f"one of {list(n)}"
    elif n is not None:
        ok, expected = found == n, f"exactly {n}"
    elif min is not None and max is not None:
        ok, expected = min <= found <= max, f"{min} to {max}"
    elif min is not None:
        ok, expected = found >= min, f"at least {min}"
    elif max is not None:
        ok, expected = found <= max, f"at most {max}"
    else:
        raise ValueError("count() needs n, a range, min or max")
    observed = f"{found}" + (f" ({cite(packets)})" if packets else "")
    return check(description or f"{expected} packets", ok, expected, observed, packets)


@packets_first_accepted(lambda packets, steps, description="": None)
def sequence(description: str, packets: Sequence[Packet], steps: Sequence[tuple[str, Predicate]]) -> Verdict:
    """Packets matching each step, in this order (others may come between): "a SYN, a SYN-ACK, an ACK"."""
    _described(description, "sequence")
    expected = ", then ".join(label for label, _ in steps)
    found: list[Packet] = []
    start = 0
    for label, predicate in steps:
        hit = next((i for i in range(start, len(packets)) if predicate(packets[i])), None)
        if hit is None:
            seen = ", ".join(f"{lab} #{p.no}" for (lab, _), p in zip(steps, found, strict=False))
            after = f" after #{found[-1].no}" if found else ""
            observed = (seen + "; " if seen else "") + f"no {label}{after}"
            return check(description or expected, False, expected, observed, found)
        found.append(packets[hit])
        start = hit + 1
    observed = ", ".join(f"{label} #{p.no}" for (label, _), p in zip(steps, found, strict=True))
    return check(description or expected, True, expected, observed, found)


def timer_tolerance(gap: float) -> tuple[float, float]:
    """Catalogue rule 0.8: kernel timers fire late, more so for long ones.

    Allowed range for an expected gap: +15 % on gaps of 16 s or more, ±10 %
    otherwise. The low side keeps 10 % for long gaps too: a timer never fires
    early, but two capture timestamps can still be read a little apart.
    """
    return gap * 0.9, gap * (1.15 if gap >= 16 else 1.10)


@packets_first_accepted(lambda items, expected_gaps, rel_tol=0.2, abs_tol=0.0, description="", tolerance=None: None)
def gaps_match(description: str, items: Sequence[Packet | float], expected_gaps: Sequence[float],
               rel_tol: float = 0.2, abs_tol: float = 0.0,
               tolerance: Callable[[float], tuple[float, float]] | None = None) -> Verdict:
    """The times between consecutive packets match ``expected_gaps``, one by one, and there are as many.

    Each gap g may lie in ``g·(1 ± rel_tol) ± abs_tol``, or in the range
    ``tolerance(g)`` returns (pass :func:`timer_tolerance` for rule 0.8).
    """
    _described(description, "gaps_match")
    actual = gaps(items)
    packets = [p for p in items if isinstance(p, Packet)]
    bounds: Callable[[float], tuple[float, float]]
    if tolerance is None:
        def bounds(g: float) -> tuple[float, float]:
            return g * (1 - rel_tol) - abs_tol, g * (1 + rel_tol) + abs_tol
        how = f"±{rel_tol:.0%}" + (f" ±{abs_tol:g} s" if abs_tol else "")
    else:
        bounds = tolerance
        how = getattr(tolerance, "__name__", "tolerance").replace("_", " ")
    expected = f"{len(expected_gaps)} gaps of {_seconds(expected_gaps)} s ({how})"
    observed = f"{len(actual)} gaps of {_seconds(actual)} s" if actual else "no gaps (fewer than 2 packets)"
    problems = []
    if len(actual) != len(expected_gaps):
        problems.append(f"{len(actual)} gaps instead of {len(expected_gaps)}")
    for i, (g, want) in enumerate(zip(actual, expected_gaps, strict=False), 1):
        lo, hi = bounds(want)
        if not lo <= g <= hi:
            problems.append(f"gap {i} = {g:.3f} s outside [{lo:.3f}, {hi:.3f}]")
    if problems:
        observed += "; " + "; ".join(problems)
    what = description or f"gaps ≈ {_seconds(expected_gaps)} s"
    return check(what, not problems, expected, observed, packets)


def _seconds(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.3g}" if abs(v) >= 1 else f"{v:.3f}".rstrip("0").rstrip(".") for v in values) or "-"


@packets_first_accepted(lambda packets, predicate, description, expected="", allow_empty=False: None)
def every(description: str, packets: Sequence[Packet], predicate: Predicate, expected: str = "",
          allow_empty: bool = False) -> Verdict:
    """Every packet satisfies ``predicate``; those that do not are cited. An empty list fails by default."""
    _described(description, "every")
    bad = [p for p in packets if not predicate(p)]
    want = expected or description
    if not packets and not allow_empty:
        return check(description, False, want, "no packets to check")
    if bad:
        return check(description, False, want, f"{len(bad)} of {len(packets)} do not: {cite(bad)}", bad)
    return check(description, True, want, f"all {len(packets)} do ({cite(packets)})", packets)


# ---------------------------------------------------------------- claims about values and programs


def equals(description: str, expected: object, observed: object,
           packets: Iterable[Packet | int] = ()) -> Verdict:
    return check(description, expected == observed, expected, observed, packets)


def within(description: str, value: float | None, low: float | None = None, high: float | None = None,
           packets: Iterable[Packet | int] = ()) -> Verdict:
    """``low ≤ value ≤ high`` (either bound may be open); a missing value fails."""
    if low is not None and high is not None:
        expected = f"between {low:g} and {high:g}"
    elif low is not None:
        expected = f"at least {low:g}"
    elif high is not None:
        expected = f"at most {high:g}"
    else:
        raise ValueError("within() needs low, high or both")
    if value is None:
        return check(description, False, expected, "no value", packets)
    ok = (low is None or value >= low) and (high is None or value <= high)
    return check(description, ok, expected, f"{value:g}", packets)


def output_contains(description: str, text: str, needle: str) -> Verdict:
    """A program's output contains ``needle``; observed shows the matching line or the output's end."""
    _described(description, "output_contains")
    for line in text.splitlines():
        if needle in line:
            return check(description or f"output contains {needle!r}", True, repr(needle), line.strip())
    return check(description or f"output contains {needle!r}", False, repr(needle), _excerpt(text))


def output_matches(description: str, text: str, regex: str) -> Verdict:
    """A program's output matches ``regex`` (re.search, multiline); observed shows the match."""
    _described(description, "output_matches")
    found = re.search(regex, text, re.MULTILINE)
    what = description or f"output matches /{regex}/"
    if found:
        return check(what, True, f"/{regex}/", found.group(0).strip())
    return check(what, False, f"/{regex}/", _excerpt(text))


def _excerpt(text: str, limit: int = 300) -> str:
    stripped = text.strip()
    if not stripped:
        return "no output"
    return stripped if len(stripped) <= limit else "…" + stripped[-limit:]


def exit_code(description: str, rc: int | None, expected: int | Iterable[int]) -> Verdict:
    """A program's exit status is ``expected`` (or one of several)."""
    _described(description, "exit_code")
    accepted = [expected] if isinstance(expected, int) else list(expected)
    want = str(accepted[0]) if len(accepted) == 1 else " or ".join(map(str, accepted))
    what = description or f"exit code {want}"
    if rc is None:
        return check(what, False, want, "the program did not finish")
    return check(what, rc in accepted, want, rc)


def errno_number(value: int | str) -> int | None:
    """An errno from a number, a name ("ETIMEDOUT"), or text that mentions either or its message."""
    if isinstance(value, int):
        return value
    text = value.strip()
    if text.isdigit():
        return int(text)
    if re.fullmatch(r"E[A-Z0-9]+", text):
        return getattr(_errno, text, None) if isinstance(getattr(_errno, text, None), int) else None
    found = re.search(r"\[Errno (\d+)\]|errno[ =:]+(\d+)", text, re.IGNORECASE)
    if found:
        return int(found.group(1) or found.group(2))
    for name in re.findall(r"\bE[A-Z][A-Z0-9]+\b", text):
        code = getattr(_errno, name, None)
        if isinstance(code, int):
            return code
    lowered = text.lower()
    for code in sorted(_errno.errorcode):
        message = os.strerror(code).lower()
        if not message.startswith("unknown error") and message in lowered:
            return code
    return None


def errno_name(code: int | None) -> str:
    if code is None:
        return "none"
    return f"{code} {_errno.errorcode.get(code, '?')} ({os.strerror(code)})"


def errno(description: str, expected: int | str, observed: int | str | None) -> Verdict:
    """The error a program met is ``expected`` (a name such as "ETIMEDOUT" or a number).

    ``observed`` may be a number, a name, or text such as "[Errno 110] Connection
    timed out" or "connect: Connection refused".
    """
    _described(description, "errno")
    want = errno_number(expected)
    if want is None:
        raise ValueError(f"unknown errno {expected!r}")
    got = None if observed is None else errno_number(observed)
    what = description or f"errno {_errno.errorcode.get(want, want)}"
    shown = errno_name(got) if got is not None else (f"no errno in {_excerpt(str(observed), 120)!r}"
                                                     if observed else "no error")
    return check(what, got == want, errno_name(want), shown)
