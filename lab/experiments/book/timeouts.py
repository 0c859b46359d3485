"""§3.3.3: connect() to a peer that drops SYNs — the SYN retransmission schedule and ETIMEDOUT."""

from __future__ import annotations

import re

from lab.experiments import expect
from lab.experiments.book.timing import syn_schedule
from lab.experiments.context import Run
from lab.experiments.engine import experiment
from lab.experiments.expect import timer_tolerance

CLIENT, SERVER = "kongming20", "ernest-laptop"


@experiment(
    id="tcp-connect-timeout",
    title="SYNs dropped by the server's firewall: retransmitted on a doubling timer, then ETIMEDOUT",
    section="§3.3.3",
    topology="book-lan.yaml",
    lasts=16,
    topology6="book-lan6.yaml",
    params={"family": 4, "syn_retries": 3, "linear_timeouts": 0, "port": 8080},
    book="""\
Mon Jun 11 21:21:34 CST 2012
Trying 192.168.1.108...
telnet: connect to address 192.168.1.108: Connection timed out
Mon Jun 11 21:22:37 CST 2012
IP 192.168.1.109.39385 > 192.168.1.108.8080: Flags [S], seq 2106166212 ...      (0 s)
IP 192.168.1.109.39385 > 192.168.1.108.8080: Flags [S], seq 2106166212 ...      (+1 s)
IP 192.168.1.109.39385 > 192.168.1.108.8080: Flags [S], seq 2106166212 ...      (+2 s)
IP 192.168.1.109.39385 > 192.168.1.108.8080: Flags [S], seq 2106166212 ...      (+4 s)
IP 192.168.1.109.39385 > 192.168.1.108.8080: Flags [S], seq 2106166212 ...      (+8 s)
IP 192.168.1.109.39385 > 192.168.1.108.8080: Flags [S], seq 2106166212 ...      (+16 s)
(6 SYNs at 0, 1, 3, 7, 15, 31 s; connection timed out after 63 s with tcp_syn_retries=5)""",
    modern="""Linux 6.18 defaults are tcp_syn_retries=6 and tcp_syn_linear_timeouts=4 (new in 6.5):
    11 SYNs at 0,1,2,3,4,5,7,11,19,35,67 s and ETIMEDOUT at about 131 s. The first
    linear_timeouts+1 retransmissions keep a 1 s RTO, then it doubles; connect fails when the
    retransmissions reach syn_retries+linear_timeouts or the time reaches 2^(syn_retries+1)-1 s.
    This run scales time down with the per-namespace sysctls (the book's own schedule is
    syn_retries=5, linear_timeouts=0).
    Over IPv6 (-p family=6, on book-lan6) the same schedule: the tcp_syn_* sysctls, under
    net.ipv4, are TCP's for both families.""",
)
def connect_timeout(run: Run) -> None:
    server_ip = run.ip(SERVER)
    run.sysctl(CLIENT, "net.ipv4.tcp_syn_retries", run.p.syn_retries)
    run.sysctl(CLIENT, "net.ipv4.tcp_syn_linear_timeouts", run.p.linear_timeouts)
    run.drop(f"{SERVER}:eth0", f"tcp syn dport {run.p.port}")
    times, fail_at = syn_schedule(run.p.syn_retries, run.p.linear_timeouts)
    with run.capture([f"{CLIENT}:eth0"], f"tcp port {run.p.port}"):
        r = run.py(CLIENT, "connect_timer", server_ip, str(run.p.port), "--timeout", str(fail_at * 1.5 + 5),
                   timeout=fail_at * 1.5 + 15)
    syns = expect.syns(run.packets)
    expected_gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    run.expect(expect.count(f"{len(times)} SYNs (1 + retransmissions)", syns, len(times)))
    seqs = {p.tcp.seq for p in syns if p.tcp}
    run.expect(expect.check("every SYN carries the same sequence number", len(seqs) == 1, "one seq",
                            f"{len(seqs)} distinct", [p.no for p in syns]))
    run.expect(expect.count("no SYN-ACK comes back", expect.synacks(run.packets), 0))
    run.expect(expect.gaps_match(f"gaps between SYNs ≈ {', '.join(f'{g:g}' for g in expected_gaps)} s", syns,
                                 expected_gaps, tolerance=timer_tolerance))
    run.expect(expect.errno("", "ETIMEDOUT", r.stdout))
    found = re.search(r"elapsed=([\d.]+)", r.stdout)
    elapsed = float(found.group(1)) if found else -1.0
    run.expect(expect.check(f"connect() fails after ≈ {fail_at:g} s", abs(elapsed - fail_at) <= fail_at * 0.1 + 0.5,
                            f"{fail_at:g} s ±10%", f"{elapsed:g} s"))
