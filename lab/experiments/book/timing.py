"""Kernel timing models the expectations are computed from (no I/O: unit-tested)."""

from __future__ import annotations


def syn_schedule(syn_retries: int, linear_timeouts: int) -> tuple[list[float], float]:
    """When the SYNs of a connect to a silent peer leave, and when connect() fails with ETIMEDOUT.

    The RTO is 1 s for the first ``linear_timeouts + 1`` intervals, then doubles
    (``tcp_syn_linear_timeouts``, Linux 6.5+). connect fails at the first RTO
    expiry where the retransmissions reach ``syn_retries + linear_timeouts``, or
    where the time since the first SYN reaches 2^(syn_retries+1) - 1 seconds.
    """
    bound = 2 ** (syn_retries + 1) - 1
    times = [0.0]
    t, rto, retransmits = 0.0, 1.0, 0
    while True:
        expiry = t + rto
        if retransmits >= syn_retries + linear_timeouts or expiry >= bound:
            return times, expiry
        retransmits += 1
        times.append(expiry)
        t = expiry
        if retransmits > linear_timeouts:
            rto *= 2

