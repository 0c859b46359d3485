"""The units a link impairment is written in, as tc writes them: ``40ms``, ``1.5%``, ``10mbit``.

One parser each, shared by the topology file's ``impair:`` and ``lab fault add``, so a value
means the same wherever it is written; each raises ValueError with what to write instead.
"""

from __future__ import annotations

import re

TIME = re.compile(r"^(\d+(?:\.\d+)?)(us|ms|s)$")
PERCENT = re.compile(r"^(\d+(?:\.\d+)?)%$")
RATE = re.compile(r"^(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit|bps|kbps|mbps|gbps)$")
TIME_SCALE = {"us": 0.001, "ms": 1.0, "s": 1000.0}
RATE_SCALE = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "bps": 8, "kbps": 8e3, "mbps": 8e6, "gbps": 8e9}
MAX_DELAY_MS = 60_000.0


def milliseconds(text: str) -> float:
    """``40ms`` → 40.0; ``1.5s`` → 1500.0; ``500us`` → 0.5 (at most a minute)."""
    m = TIME.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a time: write e.g. 40ms, 1.5s or 500us")
    value = float(m.group(1)) * TIME_SCALE[m.group(2)]
    if value > MAX_DELAY_MS:
        raise ValueError(f"{text!r} is longer than a minute")
    return value


def percent(text: str) -> float:
    """``1%`` → 1.0; the % is required, so 1 and 100 cannot be confused; 0 < value ≤ 100."""
    m = PERCENT.match(text.strip())
    if not m:
        raise ValueError(f"{text!r} is not a percentage: write e.g. 1% or 0.1%")
    value = float(m.group(1))
    if not 0 < value <= 100:
        raise ValueError(f"{text!r}: a percentage above 0 and at most 100%")
    return value


def bits_per_second(text: str) -> float:
    """``10mbit`` → 10e6 (tc's units: bit, kbit, mbit, gbit per second; bps, kbps, mbps are bytes)."""
    m = RATE.match(text.strip())
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a rate: write e.g. 10mbit, 500kbit or 1gbit")
    return float(m.group(1)) * RATE_SCALE[m.group(2)]
