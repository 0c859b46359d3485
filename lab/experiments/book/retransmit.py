"""§3.9: the server's cable pulled: retransmissions on a doubling RTO, ARP takes over, the connection gives up.

The schedule and the give-up time come from :mod:`tcp_rules` and the sysctls the run sets;
the shared helpers are in :mod:`tcp_states`. Over IPv6 (``-p family=6``) neighbour discovery
plays ARP's part: unicast solicitations to the cached MAC, then multicast ones to the
solicited-node group where ARP broadcasts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lab.capture.records import Packet
from lab.experiments import expect
from lab.experiments.book import tcp_rules
from lab.experiments.book.tcp_states import (
    CLIENT,
    SERVER,
    ss,
    sysctl_value,
)
from lab.experiments.context import Run
from lab.experiments.engine import experiment

# ---------------------------------------------------------------- 21 retransmit_cable_pull


@dataclass
class Resolution:
    """Address resolution in one family: ARP for IPv4, neighbour discovery (ICMPv6) for IPv6."""

    family: int
    target: str  # the address being resolved

    @property
    def name(self) -> str:
        return "ARP" if self.family == 4 else "neighbour discovery"

    @property
    def sysctls(self) -> str:
        return f"net.ipv{self.family}.neigh.eth0"

    @property
    def capture(self) -> str:
        return "arp" if self.family == 4 else "(icmp6 and (ip6[40] == 135 or ip6[40] == 136))"

    @property
    def everyone(self) -> str:
        if self.family == 4:
            return "broadcasts to ff:ff:ff:ff:ff:ff"
        return "goes to the solicited-node group (33:33:ff:…)"

    def message(self, p: Packet) -> bool:
        """An ARP frame, or a neighbour solicitation or advertisement."""
        if self.family == 4:
            return p.arp is not None
        return p.icmp is not None and p.icmp.version == 6 and p.icmp.type in (135, 136)

    def asks_for_target(self, p: Packet) -> bool:
        if self.family == 4:
            return p.arp is not None and p.arp.op == 1 and p.arp.tpa == self.target
        return p.icmp is not None and p.icmp.type == 135 and p.icmp.target == self.target

    def to_everyone(self, p: Packet) -> bool:
        return p.is_broadcast if self.family == 4 else p.eth_dst.startswith("33:33:")


@experiment(
    id="retransmit-cable-pull",
    title="The server's cable pulled: retransmissions on a doubling RTO, ARP takes over, the connection gives up",
    section="§3.9",
    topology="book-lan.yaml",
    lasts=15,
    topology6="book-lan6.yaml",
    params={"family": 4, "port": 5001, "retries2": 5, "first": "1234\\r\\n", "second": "12\\r\\n", "second_at": 1.0,
            "base_reachable_time_ms": 1000, "delay_first_probe_time": 1},
    book="""\
$ iperf -s                         # on ernest-laptop: a discard server on 5001
$ telnet 192.168.1.108 5001        # on Kongming20
1234                               # then pull the server's cable
12
Connection closed by foreign host
TCP segments 7-11 retransmit segment 6 ("12"): gaps 0.2, 0.4, 0.8, 1.6, 3.2 s;
then packets 12-23 are ARP (Kongming20 asking for ernest-laptop's MAC);
the connection gave up after about 15 minutes (tcp_retries1=3, tcp_retries2=15).""",
    modern="""6.x adds a tail loss probe (TLP, tcp_early_retrans=3) one RTO after the segment, then
    the RTO doubles from its 200 ms floor (plus the RTT, rounded up to a 4 ms jiffy here). The
    give-up rule is a time, not a count (tcp_model_timeout): (2^(retries2+1) - 1) x 200 ms from
    the first RTO retransmission, checked at each expiry; retries2=15 gives 924.6 s, 5 gives
    12.6 s, reached at about 13 s. ARP shows only when the neighbour entry goes REACHABLE →
    DELAY → PROBE (defaults: 15-45 s + 5 s), so this run lowers base_reachable_time_ms and
    delay_first_probe_time before any traffic: unicast probes (ucast_solicit) to the cached MAC,
    then the entry fails and each new resolution broadcasts (mcast_solicit). While the entry is
    INCOMPLETE the retransmissions wait in its queue and no longer reach the wire; each failed
    resolution reports host unreachable to the socket (and reverts one RTO backoff, RFC 6069),
    so the application gets EHOSTUNREACH rather than ETIMEDOUT. Over IPv6 (-p family=6, on
    book-lan6) neighbour discovery does the same under net.ipv6.neigh: unicast solicitations to
    the cached MAC, then multicast ones to the solicited-node group.""",
)
def retransmit_cable_pull(run: Run) -> None:
    server_ip, client_ip = run.ip(SERVER), run.ip(CLIENT)
    resolution = Resolution(run.p.family, server_ip)
    neigh = resolution.sysctls
    port = str(run.p.port)
    first = run.p.first.encode().decode("unicode_escape").encode("latin-1")
    second = run.p.second.encode().decode("unicode_escape").encode("latin-1")
    run.sysctl(CLIENT, "net.ipv4.tcp_retries2", run.p.retries2)
    run.sysctl(CLIENT, f"{neigh}.base_reachable_time_ms", run.p.base_reachable_time_ms)
    run.sysctl(CLIENT, f"{neigh}.delay_first_probe_time", run.p.delay_first_probe_time)
    ucast = int(sysctl_value(run, CLIENT, f"{neigh}.ucast_solicit"))
    retrans_time = int(sysctl_value(run, CLIENT, f"{neigh}.retrans_time_ms")) / 1000
    tlp = int(sysctl_value(run, CLIENT, "net.ipv4.tcp_early_retrans")) >= 3
    bound = tcp_rules.give_up_after(run.p.retries2)
    _, limit_guess = tcp_rules.retransmit_schedule(run.p.retries2)
    at = run.p.second_at
    run.serve(SERVER, "discard", server_ip, port)
    server_mac, client_mac = run.mac(SERVER), run.mac(CLIENT)
    with run.capture([f"{CLIENT}:eth0"], f"tcp port {port} or {resolution.capture}"):
        client = run.start(CLIENT, "rst_client", server_ip, port, "--step", f"0:send:{run.p.first}",
                           "--step", f"{at}:send:{run.p.second}",
                           "--step", f"{at + 0.01}:recv:{limit_guess * 3 + 30:.0f}")
        sent_first = client.wait_for(f"send {len(first)} bytes", 10)
        run.link(f"{SERVER}:eth0", up=False)
        _, sockets = ss(run, CLIENT, "state", "all", f"( dport = :{port} )",
                        title="ss -ti: the client's RTO")
        client.wait(limit_guess * 3 + 40)
        run.sleep(0.3)
    rto = next((s.rto for s in sockets if s.rto), tcp_rules.TCP_RTO_MIN)
    times, give_up = tcp_rules.retransmit_schedule(run.p.retries2, rto, tlp=tlp)
    out = client.stdout
    pk = run.packets
    run.expect(expect.check("the first message was sent before the cable was pulled", sent_first,
                            f"send {len(first)} bytes", "; ".join(out.strip().splitlines()[:2]) or "no output"))
    tx = expect.tcp(pk, src=client_ip, payload=second)
    ack1 = [p for p in pk if p.src == server_ip and p.tcp and p.tcp.rel_ack == len(first) + 1]
    run.expect(expect.count("the server acknowledged the first message", ack1, min=1))
    acked = [p for p in pk if p.src == server_ip and p.tcp and (p.tcp.rel_ack or 0) > len(first) + 1]
    run.expect(expect.count("nothing acknowledges the second message (the cable was out in time)", acked, 0))
    seq = len(first) + 1
    run.expect(expect.every(f"every transmission of the second message is seq {seq}:{seq + len(second)}", tx,
                            lambda p: p.tcp is not None and p.tcp.rel_seq == seq
                            and p.tcp.length == len(second)))
    arps = [p for p in pk if resolution.message(p) and p.eth_src == client_mac and tx and p.time > tx[0].time]
    first_bcast = expect.first(arps, resolution.to_everyone)
    on_wire = [p for p in tx if first_bcast is None or p.no < first_bcast.no]
    gaps = expect.gaps(on_wire)
    # The neighbour entry cannot fail sooner than DELAY plus the unicast probes after the send; what the
    # model sends before then (allowing timers 1/8 late) leaves with the cached MAC.
    earliest_fail = run.p.delay_first_probe_time + ucast * retrans_time
    must = sum(1 for t in times if t * 1.125 < earliest_fail)
    run.expect(expect.count(f"the {must} transmissions due in the first "
                            f"{earliest_fail:g} s (DELAY + {ucast} unicast probes) reach the wire", on_wire, min=must))
    if gaps:
        lo = rto * 0.95
        run.expect(expect.within(f"the first retransmission ({'tail loss probe' if tlp else 'RTO'}) waits about "
                                 f"one RTO ({rto * 1000:.0f} ms)", gaps[0], lo, rto * 1.3, on_wire[:2]))
    else:  # a missing packet is an error, not a claim left out
        run.expect(expect.error("the first retransmission waits about one RTO", "no retransmission in the capture"))
    ratios = [b / a for a, b in zip(gaps[1:], gaps[2:], strict=False) if a > 0]
    model_gaps = expect.gaps(times)
    wanted = [b / a for a, b in zip(model_gaps[1:], model_gaps[2:], strict=False)][:len(ratios)]
    run.expect(expect.check("after the first two gaps each gap is the RTO doubled (ratio ±10%)",
                            len(wanted) == len(ratios) > 0
                            and all(0.9 * w <= r <= 1.1 * w for r, w in zip(ratios, wanted, strict=False)),
                            ", ".join(f"{w * 0.9:.1f}-{w * 1.1:.1f}" for w in wanted) or "at least 4 gaps",
                            ", ".join(f"{r:.2f}" for r in ratios) or "too few gaps", on_wire))
    judge_resolution(run, resolution, arps, first_bcast, times, give_up, earliest_fail, (server_ip, server_mac), ucast)
    judge_give_up(run, out, second, give_up, rto, tlp, bound)
    run.note("model transmission times (s after the send): " + ", ".join(f"{t:.3f}" for t in times))


def judge_resolution(run: Run, resolution: Resolution, arps: list[Packet], first_bcast: Packet | None,
                     times: list[float], give_up: float, earliest_fail: float, server: tuple[str, str],
                     ucast: int) -> None:
    """The neighbour resolution while the cable is out: unicast probes to the cached MAC, then (if a
    transmission is due after the entry failed) the question to everyone. ``server``: its IP and MAC."""
    server_ip, server_mac = server
    run.expect(expect.every(f"every {resolution.name} message the client sends asks for {server_ip}", arps,
                            resolution.asks_for_target,
                            "who-has " + server_ip))
    # When can the entry have failed? REACHABLE lasts base/2..3·base/2 after the send confirmed it (or
    # is already over), then DELAY, then the unicast probes. A transmission due after the latest failure
    # starts a new resolution, which broadcasts; none due after the earliest failure means none does.
    latest_fail = 1.5 * run.p.base_reachable_time_ms / 1000 + earliest_fail
    due_after = [t for t in times if t > latest_fail]
    maybe_after = [t for t in times if t > earliest_fail]
    probes_from = 1.5 * run.p.base_reachable_time_ms / 1000 + run.p.delay_first_probe_time
    unicast = [p for p in arps if first_bcast is None or p.no < first_bcast.no]
    run.expect(expect.check(f"{resolution.name} starts with unicast probes to the cached MAC {server_mac}",
                            (bool(unicast) or give_up <= probes_from)
                            and all(p.eth_dst == server_mac for p in unicast),
                            f"who-has to {server_mac}" + (f" (probing starts by {probes_from:g} s)"
                                                           if give_up > probes_from else " or none"),
                            ", ".join(p.eth_dst for p in unicast) or f"no {resolution.name}", unicast))
    after = [p for p in arps if first_bcast is not None and p.no >= first_bcast.no]
    if due_after:
        run.expect(expect.check(f"exactly {ucast} unicast probes (ucast_solicit), then the entry fails",
                                len(unicast) == ucast, ucast, len(unicast), unicast))
        run.expect(expect.every(f"the retransmission due at {due_after[0]:.2f} s finds the entry failed: "
                                f"who-has {resolution.everyone}", after,
                                resolution.to_everyone))
    elif not maybe_after:
        run.expect(expect.count(f"none to everyone: the connection gives up ({give_up:.2f} s) before a "
                                f"transmission can find the entry failed (earliest {earliest_fail:g} s)", after, 0))
    else:
        run.expect(expect.every(f"any {resolution.name} after the unicast probes {resolution.everyone}", after,
                                resolution.to_everyone,
                                allow_empty=True))


def judge_give_up(run: Run, out: str, second: bytes, give_up: float, rto: float, tlp: bool, bound: float) -> None:
    """The connection gives up: recv fails ETIMEDOUT or EHOSTUNREACH, when the model says."""
    failed = re.search(r"step t=([\d.]+) recv (errno=\S+)", out)
    sent2 = re.search(rf"step t=([\d.]+) send {len(second)} bytes", out)
    errno_text = failed.group(2) if failed else out
    ok = expect.errno("", "ETIMEDOUT", errno_text).ok or expect.errno("", "EHOSTUNREACH", errno_text).ok
    run.expect(expect.check("recv() fails with ETIMEDOUT or EHOSTUNREACH", ok, "ETIMEDOUT or EHOSTUNREACH",
                            expect.errno_name(expect.errno_number(errno_text))))
    elapsed = float(failed.group(1)) - float(sent2.group(1)) if failed and sent2 else None
    run.expect(expect.within(
        f"it fails ≈ {give_up:.2f} s after the send (RTO {rto * 1000:.0f} ms, "
        f"{'TLP, ' if tlp else ''}tcp_retries2={run.p.retries2}: give up {bound:.1f} s after the first RTO) ±10%",
        elapsed, give_up * 0.9, give_up * 1.1))
