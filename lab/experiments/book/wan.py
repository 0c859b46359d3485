"""§3.6, §3.7, §3.9 over a WAN: experiments that need a real round-trip time.

The book runs these on a LAN or over lo, where the RTT is a fraction of a millisecond and
the timers' floors hide what follows the RTT. Here the link between ``router`` and ``isp``
becomes a WAN: half of ``-p rtt`` of delay on each end's egress (lab.net.impair: netem, or
lab's own emulator where the kernel has none), so the client kongming20 and the far host
talk across a real RTT while a capture at the client still sees every segment as it
leaves and arrives.
"""

from __future__ import annotations

import re
import statistics

from lab.capture.records import SYN
from lab.errors import InputError
from lab.experiments import expect
from lab.experiments.book import flows, sstext, tcp_rules
from lab.experiments.context import Run
from lab.experiments.engine import experiment
from lab.experiments.params import Duration
from lab.net import faults

CLIENT, FAR = "kongming20", "far-host"
WAN_ENDS = ("router:eth1", "isp:eth0")


def make_wan(run: Run, rtt: float) -> list[faults.Fault]:
    """Half the RTT on what leaves each end of the router–isp link: a WAN between the LAN and the far net."""
    half = f"{rtt * 1000 / 2:g}ms"
    return [run.impair(end, delay=half) for end in WAN_ENDS] if rtt > 0 else []


# ---------------------------------------------------------------- rtt-rto


@experiment(
    id="rtt-rto",
    title="The retransmission timer follows the RTT: RTO = SRTT + max(4·RTTVAR, 200 ms)",
    section="§3.9",
    topology="book-lan.yaml",
    lasts=12,
    book="""\
TCP服务必须能够重传超时时间内未收到确认的TCP报文段。为此，TCP模块为每个TCP报文段都维护一个重传定时器，
该定时器在TCP报文段第一次被发送时启动。如果超时时间内未收到接收方的应答，TCP模块将重传TCP报文段并重置定时器。
(On the book's LAN the retransmissions of segment 6 are 0.2, 0.4, 0.8, 1.6 and 3.2 s apart: the first
RTO is the 200 ms floor, and nothing shows that it follows the RTT.)""",
    modern="""The kernel samples the RTT from every ACK (the echo server's replies carry them, so no
    delayed-ACK timer inflates the samples) and keeps SRTT and the mean deviation; its RTO is
    SRTT + max(4·mdev, tcp_rto_min) (tcp_set_rto: rttvar is floored at the 200 ms minimum, not
    the RTO as in RFC 6298), rounded up to a jiffy. With a steady RTT the deviation is small,
    so RTO ≈ RTT + 200 ms: 280 ms at -p rtt=80ms, 200 ms on a LAN. After the warm-up the far
    host's firewall drops the next message; with one segment in flight the tail loss probe
    (tcp_early_retrans=3) fires one RTO after it, then the RTO itself, then the timer doubles.""",
)
def rtt_rto(run: Run, port: int = 5011, rtt: Duration = Duration("80ms"), warmup: int = 10,
            recv_timeout: float = 3.0) -> None:
    delay = rtt.seconds  # the RTT in seconds; rtt itself is the text asked for (-p rtt=)
    server_ip, client_ip = run.ip(FAR), run.ip(CLIENT)
    make_wan(run, delay)
    tlp = int(run.sh(CLIENT, ["sysctl", "-n", "net.ipv4.tcp_early_retrans"], record=False).stdout) >= 3
    run.serve(FAR, "echo", server_ip, str(port))
    spacing = max(0.05, 3 * delay)  # each message echoed (and so acknowledged) before the next
    steps = []
    for i in range(run.p.warmup):
        text = "ready!!" if i == run.p.warmup - 1 else "ping!!"  # the last one, 7 bytes, marks the end
        steps += [f"{i * spacing:.3f}:send:{text}", f"{i * spacing + 0.001:.3f}:recv:5"]
    lost_at = run.p.warmup * spacing + 2.5  # time for the drop to be in place (seconds on a busy cluster)
    steps += [f"{lost_at:.3f}:send:lost!!!!", f"{lost_at + 0.001:.3f}:recv:{run.p.recv_timeout}"]
    with run.capture([f"{CLIENT}:eth0"], f"tcp port {port}"):
        client = run.start(CLIENT, "rst_client", server_ip, str(port), *[a for s in steps for a in ("--step", s)],
                           "--timeout", "10")
        warmed = client.wait_for("recv 7 bytes", lost_at + 10)
        run.drop(f"{FAR}:eth0", f"tcp dport {port}", "in")
        _, sockets = _ss(run, port)
        client.wait(lost_at + run.p.recv_timeout + 15)
        run.sleep(0.2)
    lines = client.stdout.strip().splitlines()
    tail = "; ".join(lines[-3:]) or "no output"
    echoed = next((line for line in lines if "recv 7 bytes" in line), "no echo of the last warm-up message")
    run.expect(expect.check("the warm-up messages were echoed before the drop", warmed, "recv 7 bytes", echoed))
    run.expect(expect.check("the far host's firewall dropped the last message (never echoed)",
                            "recv 8 bytes" not in client.stdout, "recv timeout", tail))
    sock = next((s for s in sockets if s.state == "ESTAB" and s.rto), None)
    if sock is None or sock.rtt is None or sock.rto is None:
        run.expect(expect.error("the client's RTT and RTO (ss -ti)", "ss showed no RTO for the connection"))
        return
    rto, srtt, mdev = sock.rto, sock.rtt / 1000, (sock.rttvar or 0) / 1000
    run.expect(expect.within(f"the kernel's SRTT is the path's RTT ({delay * 1000:g} ms ±10 % ±1 ms)",
                             srtt * 1000, delay * 900 - 1, delay * 1100 + 1))
    formula = srtt + max(4 * mdev, tcp_rules.TCP_RTO_MIN)
    run.expect(expect.within(f"RTO = SRTT + max(4·RTTVAR, 200 ms) = {formula * 1000:.0f} ms from ss's own SRTT "
                             f"{srtt * 1000:.1f} ms and RTTVAR {mdev * 1000:.1f} ms (up to a 4 ms jiffy above)",
                             rto * 1000, formula * 1000 - 1, formula * 1000 + 9))
    asked = delay + tcp_rules.TCP_RTO_MIN
    run.expect(expect.within(f"so the RTO follows -p rtt: ≈ {delay * 1000:g} + 200 = {asked * 1000:.0f} ms (±5 %)",
                             rto * 1000, asked * 950, asked * 1050))
    pk = flows.conversation(run.packets, client_ip, server_ip, run.p.port)
    sent = expect.tcp(pk, src=client_ip, payload=b"lost!!!!")
    times, _ = tcp_rules.retransmit_schedule(15, rto, tlp=tlp)
    due = [t for t in times if t < run.p.recv_timeout - 0.05]
    run.expect(expect.gaps_match(f"the lost message goes out at {', '.join(f'{t:.2f}' for t in due)} s "
                                 f"({'a tail loss probe one RTO after it, then ' if tlp else ''}the RTO, doubling)",
                                 sent[:len(due)], expect.gaps(due), rel_tol=0.1, abs_tol=0.01))


def _ss(run: Run, port: int) -> tuple[object, list[sstext.SsSocket]]:
    r = run.sh(CLIENT, ["ss", "-tanoiH", f"( dport = :{port} )"],
               title="ss -ti: the client's RTT and RTO just before the lost message")
    return r, sstext.parse(r.stdout)


# ---------------------------------------------------------------- nagle-rtt


@experiment(
    id="nagle-rtt",
    title="Nagle over a WAN: one small segment per RTT carries what was written meanwhile; TCP_NODELAY sends each",
    section="§3.6",
    topology="book-lan.yaml",
    book="""\
广域网上的交互数据流可能经受很大的延迟，并且，携带交互数据的微小TCP报文段数量一般很多 ……
Nagle算法要求一个TCP连接的通信双方在任意时刻都最多只能发送一个未被确认的TCP报文段，在该TCP报文段的确认
到达之前不能发送其他TCP报文段。另一方面，发送方在等待确认的同时收集本端需要发送的微量数据，并在确认到来时以一个
TCP报文段将它们全部发出。 …… 该算法的另一个优点在于其自适应性：确认到达得越快，数据也就发送得越快。""",
    modern="""The client writes one byte every -p interval_ms to an echo server across -p rtt (the echo
    carries the ACK at once, so only the RTT paces Nagle). With Nagle on, a small segment may
    leave only when nothing small is unacknowledged: one segment per RTT, each carrying the
    bytes written meanwhile (about rtt / interval of them), so about count · interval / rtt
    segments. With TCP_NODELAY every write leaves at once as its own one-byte segment,
    interval_ms apart, once the congestion window allows it: the initial cwnd of 10 segments
    is less than the writes of one RTT when rtt / interval > 10, and those first writes merge.
    tcp_autocorking does not merge them here: it holds a write only while
    an earlier one is still in the qdisc or device.""",
)
def nagle_rtt(run: Run, port: int = 5012, rtt: Duration = Duration("40ms"), count: int = 200,
              interval_ms: float = 5.0) -> None:
    delay = rtt.seconds  # the RTT in seconds; rtt itself is the text asked for (-p rtt=)
    interval = run.p.interval_ms / 1000
    if delay <= 2 * interval:
        raise InputError(f"-p rtt={run.p.rtt}: Nagle shows when the RTT is several write intervals long",
                         f"use -p rtt above {2 * run.p.interval_ms:g}ms or a smaller -p interval_ms")
    server_ip, client_ip = run.ip(FAR), run.ip(CLIENT)
    make_wan(run, delay)
    run.serve(FAR, "echo", server_ip, str(port))
    outputs = {}
    with run.capture([f"{CLIENT}:eth0"], f"tcp port {port}"):
        for mode in ("nagle", "nodelay"):
            outputs[mode] = run.py(CLIENT, "trickle_client", server_ip, str(port), "--count", str(run.p.count),
                                   "--interval-ms", str(run.p.interval_ms), "--linger", f"{3 * delay + 0.3:.3f}",
                                   *(["--nodelay"] if mode == "nodelay" else []),
                                   timeout=run.p.count * interval + 30)
    pk = flows.conversation(run.packets, client_ip, server_ip, run.p.port)
    duration = (run.p.count - 1) * interval
    for mode, r in outputs.items():
        local = re.search(r"^connected nodelay=\d local=\S+:(\d+)", r.stdout, re.MULTILINE)
        run.expect(expect.exit_code(f"{mode}: the client wrote its {run.p.count} bytes and exited 0", r.rc, 0))
        if local is None:
            run.expect(expect.error(f"{mode}: the client's segments", "the client printed no local port"))
            continue
        mine = [p for p in expect.data(pk) if p.src == client_ip and flows.seg(p).sport == int(local.group(1))]
        total = sum(flows.seg(p).length for p in mine)
        run.expect(expect.equals(f"{mode}: the segments carry all {run.p.count} bytes", run.p.count, total, mine[:3]))
        gaps = [g * 1000 for g in expect.gaps(mine)]
        median = statistics.median(gaps) if gaps else None
        if mode == "nagle":
            expected = duration / delay + 1
            run.expect(expect.within(f"nagle: about one segment per RTT: {duration:.2f} s / {delay * 1000:g} ms + 1 ≈ "
                                     f"{expected:.0f} segments (±25 %)", len(mine), expected * 0.75,
                                     expected * 1.25, mine[:3]))
            run.expect(expect.within(f"nagle: segments leave one RTT apart (median gap {delay * 1000:g} ms ±15 %)",
                                     median, delay * 850, delay * 1150, mine[:3]))
            per = delay / interval
            sizes = [flows.seg(p).length for p in mine[1:-1]]
            run.expect(expect.within(f"nagle: each carries what was written meanwhile (median ≈ rtt / interval = "
                                     f"{per:.0f} bytes ±25 %)", statistics.median(sizes) if sizes else None,
                                     per * 0.75, per * 1.25, mine[1:4]))
        else:
            # the first RTTs may hold more writes than the initial cwnd (10) lets out at once: those merge;
            # later a write may still find the one before it in the device queue (autocorking): rare
            settled = [p for p in mine if p.time - mine[0].time > 2 * delay] if mine else []
            alone = [p for p in settled if flows.seg(p).length == 1]
            run.expect(expect.check("nodelay: once the cwnd has grown (after 2 RTTs), the writes leave as one-byte "
                                    "segments (at least 95 %)", bool(settled) and len(alone) >= 0.95 * len(settled),
                                    "≥ 95 % of one byte", f"{len(alone)} of {len(settled)}",
                                    [p for p in settled if flows.seg(p).length != 1][:5] or settled[:3]))
            run.expect(expect.within(f"nodelay: segments leave a write apart (median gap {run.p.interval_ms:g} ms "
                                     "±20 %)", median, run.p.interval_ms * 0.8, run.p.interval_ms * 1.2, mine[:3]))


# ---------------------------------------------------------------- window-bdp


@experiment(
    id="window-bdp",
    title="Bulk throughput is bounded by window / RTT: double the RTT and it halves; the window is the receiver's",
    section="§3.7",
    topology="book-lan.yaml",
    lasts=13,
    book="""\
那么发送方在收到上一次确认后，能连续发送多少个TCP报文段呢？这是由接收通告窗口（还需要考虑拥塞窗口，见后文）
的大小决定的。 (The book's bulk transfer runs over lo, where no RTT bounds anything.)""",
    modern="""The far host sends -p bytes to the client, whose SO_RCVBUF (-p rcvbuf, set before
    connect, so window scaling is off and the buffer locked) caps the window it advertises.
    At most a window can be in flight, and an ACK takes one RTT to open the next, so the
    throughput is window / RTT. The kernel doubles SO_RCVBUF (the rest is overhead it counts)
    and advertises the part its skb truesize ratio leaves for data: with -p rcvbuf=65536 about
    81 KB here (window scale 1, since the doubled buffer passes 64 KB), so about 16 Mbit/s at
    40 ms. The transfer runs twice, across -p rtt and across twice that: the throughput
    halves, each close to the median advertised window over its RTT.""",
)
def window_bdp(run: Run, port: int = 5013, rtt: Duration = Duration("40ms"), rcvbuf: int = 65536,
               bytes: int = 2_000_000) -> None:  # noqa: A002 (the parameter's name in -p bytes=)
    delay = rtt.seconds  # the RTT in seconds; rtt itself is the text asked for (-p rtt=)
    if delay <= 0:
        raise InputError("-p rtt=0ms: this experiment needs an RTT", "use e.g. -p rtt=40ms")
    server_ip, client_ip = run.ip(FAR), run.ip(CLIENT)
    rates = {}
    for path_rtt in (delay, 2 * delay):
        wan = make_wan(run, path_rtt)
        sender = run.serve(FAR, "bulk_send", server_ip, str(port), "--listen", "--bytes", str(run.p.bytes), "--info")
        with run.capture([f"{CLIENT}:eth0"], f"tcp port {port}"):
            r = run.py(CLIENT, "bulk_recv", server_ip, str(port), "--connect", "--rcvbuf", str(run.p.rcvbuf),
                       timeout=120)
            sender.wait(60)
        run.clear(*wan)
        label = f"rtt {path_rtt * 1000:g} ms"
        run.expect(expect.output_contains(f"{label}: every byte arrived", r.stdout, f"received {run.p.bytes} bytes"))
        pk = flows.conversation(run.packets, client_ip, server_ip, run.p.port)
        data = expect.data([p for p in pk if p.src == server_ip])
        syn = expect.first(p for p in expect.syns(pk) if p.src == client_ip)
        scale = (flows.seg(syn).wscale or 0) if syn is not None else 0
        if len(data) < 2:
            run.expect(expect.error(f"{label}: the transfer in the capture", "too few segments captured"))
            continue
        # the steady part: from the first tenth of the bytes on (slow start is over) to the end
        start = next(p for p in data if (flows.seg(p).rel_seq or 0) >= run.p.bytes // 10)
        windows = [flows.seg(p).window << scale for p in pk if p.src == client_ip and p.no > start.no
                   and not flows.seg(p).flags & SYN]
        secs = data[-1].time - start.time
        if not windows or secs <= 0:
            run.expect(expect.error(f"{label}: the receiver's windows", "no ACKs after slow start"))
            continue
        rate = ((flows.seg(data[-1]).rel_seq or 0) - (flows.seg(start).rel_seq or 0)) * 8 / secs
        rates[path_rtt] = rate
        window = statistics.median(windows)
        found = re.search(r"^tcp_info when=sent .*?rtt_ms=([\d.]+)/", sender.stdout, re.MULTILINE)
        srtt = float(found.group(1)) / 1000 if found else None
        run.expect(expect.within(f"{label}: the sender's SRTT is the path's RTT (±15 % ±2 ms)",
                                 srtt * 1000 if srtt else None, path_rtt * 850 - 2, path_rtt * 1150 + 2))
        bound = window * 8 / (srtt or path_rtt)
        run.note(f"{label}: median advertised window {window:.0f} bytes (scale {scale}), SRTT "
                 f"{(srtt or 0) * 1000:.1f} ms, throughput {rate / 1e6:.2f} Mbit/s, bound window / SRTT = "
                 f"{bound / 1e6:.2f} Mbit/s")
        run.expect(expect.within(f"{label}: the window comes from the receiver's buffer (between rcvbuf / 2 and the "
                                 f"doubled SO_RCVBUF, 2 × {run.p.rcvbuf})", window, run.p.rcvbuf / 2,
                                 2 * run.p.rcvbuf))
        run.expect(expect.within(f"{label}: throughput ≈ window / SRTT = {bound / 1e6:.2f} Mbit/s (75–105 %)",
                                 rate / 1e6, bound * 0.75 / 1e6, bound * 1.05 / 1e6, [start, data[-1]]))
    if len(rates) == 2 and rates[delay]:
        run.expect(expect.within("doubling the RTT halves the throughput (ratio 0.5 ±20 %)",
                                 rates[2 * delay] / rates[delay], 0.4, 0.6))
