"""§3.6–3.10: interactive data and delayed ACK, Nagle, bulk data and the window, urgent data, congestion."""

from __future__ import annotations

import re
import statistics

from lab.capture.records import SYN, URG, Packet
from lab.errors import InputError
from lab.experiments import expect
from lab.experiments.book import flows, sockmodel, sockstate
from lab.experiments.context import Run
from lab.experiments.engine import experiment
from lab.net import faults

CLIENT, SERVER = "kongming20", "ernest-laptop"


def complete_capture(pk: list[Packet], sender: str, total: int) -> expect.Verdict:
    """The capture at the sender holds every byte it sent (else the claims below read a lossy capture)."""
    holes = flows.stream_holes(pk, sender)
    data = expect.data([p for p in pk if p.src == sender])
    top = max((flows.seg(p).rel_seq or 0) + flows.seg(p).length for p in data) - 1 if data else 0
    return expect.check("the capture holds every byte sent (tcpdump lost nothing)", not holes and top == total,
                        f"bytes 1..{total} with no hole",
                        f"bytes up to {top}" + (f"; holes {holes[:3]}" if holes else ""))


@experiment(
    id="interactive-delack",
    title="Interactive data: each keystroke is data, echo with the delayed ACK, and the client's ACK",
    section="§3.6",
    topology="book-lan.yaml",
    topology6="book-lan6.yaml",
    params={"family": 4, "port": 7, "keystrokes": 25, "interval_ms": 100, "ack_within_ms": 20.0, "ack_median_ms": 5.0},
    book="""\
1.IP 127.0.0.1.58130 > 127.0.0.1.23: Flags [P.], seq 1408334812:1408334813, ack 1415955507, win 613, length 1
2.IP 127.0.0.1.23 > 127.0.0.1.58130: Flags [P.], seq 1:2, ack 1, win 512, length 1
3.IP 127.0.0.1.58130 > 127.0.0.1.23: Flags [.], ack 2, win 613, length 0
4.IP 127.0.0.1.58130 > 127.0.0.1.23: Flags [P.], seq 1:2, ack 2, win 613, length 1
5.IP 127.0.0.1.23 > 127.0.0.1.58130: Flags [P.], seq 2:3, ack 2, win 512, length 1
6.IP 127.0.0.1.58130 > 127.0.0.1.23: Flags [.], ack 3, win 613, length 0
(telnet to the local telnetd, typing "ls": data, echo carrying the delayed ACK, the client's ACK)""",
    modern="""The book's three segments per keystroke hold from the second keystroke on. The first
    takes four: a new connection starts in quickack mode and is not yet in "pingpong"
    (interactive) mode, so the server ACKs the first byte at once and echoes it a moment later.
    Sending data right after receiving puts the server into pingpong mode (tcp_pingpong_thresh=1
    since 5.x; inet_csk_enter_pingpong_mode), and from then on its ACK waits for the echo. The
    client types every 100 ms, far longer than the ACK timeout, so it never enters pingpong mode:
    for its first 16 received segments (TCP_MAX_QUICKACKS) it is in quickack mode and ACKs in
    the receive path (~10 µs); after that its ACK leaves when the program reads the echo (the
    echo carried PSH, so tcp_cleanup_rbuf sends the pending ACK), tens of µs later, or a few ms
    when the machine is busy — still far below the 40 ms delayed-ACK timer.
    Over IPv6 (-p family=6, on book-lan6) the same.""",
)
def interactive_delack(run: Run) -> None:
    if run.p.keystrokes < 2:
        raise InputError(f"-p keystrokes={run.p.keystrokes}: the claims are about keystrokes after the first",
                         "use -p keystrokes=2 or more")
    server_ip, client_ip = run.ip(SERVER), run.ip(CLIENT)
    run.serve(SERVER, "echo", server_ip, str(run.p.port))
    with run.capture([f"{CLIENT}:eth0"], f"tcp port {run.p.port}"):
        r = run.py(CLIENT, "keystroke_client", server_ip, str(run.p.port), "--count", str(run.p.keystrokes),
                   "--interval-ms", str(run.p.interval_ms), timeout=run.p.keystrokes * run.p.interval_ms / 1000 + 30)
        run.sleep(0.2)
    run.expect(expect.output_matches(f"the client typed {run.p.keystrokes} keystrokes and got every echo back",
                                     r.stdout, rf"^summary keys={run.p.keystrokes}\b"))
    pk = flows.conversation(run.packets, client_ip, server_ip, run.p.port)
    keys = flows.exchanges(pk, client_ip)
    run.expect(expect.count("one one-byte data segment per keystroke", [k.request for k in keys],
                            run.p.keystrokes))
    later = keys[1:]

    def echo_of(k: flows.Exchange) -> Packet | None:
        return next((p for p in k.after if p.src == server_ip), None)

    bad_first = [k.request for k in later if (e := echo_of(k)) is None or flows.seg(e).length == 0]
    run.expect(expect.check(
        "from keystroke 2 on, the server's first segment after the data is the echo (no bare ACK first)",
        not bad_first, "the echo, carrying data", f"{len(later) - len(bad_first)} of {len(later)} keystrokes"
        + (f"; not after {expect.cite(bad_first)}" if bad_first else ""), bad_first or [k.request for k in later]))
    wrong_ack = [k.request for k in later if (e := echo_of(k)) is not None
                 and flows.seg(e).ack != flows.seg(k.request).next_seq]
    run.expect(expect.check("the echo acknowledges the keystroke (echo.ack = data end seq)", not wrong_ack,
                            "ack = data seq + 1", "all do" if not wrong_ack else f"not for {expect.cite(wrong_ack)}",
                            wrong_ack))
    limit = run.p.ack_within_ms / 1000
    slow: list[Packet] = []
    gaps: list[float] = []
    for k in later:
        e = echo_of(k)
        if e is None:
            continue
        ack = next((p for p in k.after if p.src == client_ip and p.no > e.no and flows.is_bare_ack(p)
                    and flows.seg(p).ack == flows.seg(e).next_seq), None)
        if ack is None or ack.time - e.time > limit:
            slow.append(e)
        else:
            gaps.append(ack.time - e.time)
    run.expect(expect.check(
        f"the client's bare ACK follows each echo within {run.p.ack_within_ms:g} ms (no delayed ACK)", not slow,
        f"≤ {run.p.ack_within_ms:g} ms", (f"max {max(gaps) * 1000:.3f} ms" if gaps else "none")
        + (f"; late or missing after {expect.cite(slow)}" if slow else ""), slow))
    median = statistics.median(gaps) * 1000 if gaps else None
    run.expect(expect.within("median time from echo to the client's ACK (ms)", median, high=run.p.ack_median_ms))
    three = [k for k in later if len(k.after) == 2]
    run.expect(expect.check("from keystroke 2 on, each keystroke takes 3 segments (data, echo, ACK)",
                            len(three) == len(later), f"{len(later)} keystrokes of 3 segments",
                            f"{len(three)} of {len(later)}"
                            + "".join(f"; #{k.request.no} took {1 + len(k.after)}" for k in later
                                      if len(k.after) != 2)[:300],
                            [k.request for k in later if len(k.after) != 2]))
    bare = [p for k in keys for p in k.after if p.src == server_ip and flows.is_bare_ack(p)]
    run.expect(expect.count("the server sends at most one bare ACK in all (keystroke 1)", bare, max=1))
    first = keys[0]
    run.note(f"keystroke 1 took {1 + len(first.after)} segments "
             f"({', '.join(f'#{p.no} {flows.seg(p).flag_str} len {flows.seg(p).length}' for p in first.after)})")
    found = re.search(r"median_rtt_ms=([\d.]+)", r.stdout)
    if found:
        run.note(f"median echo time {found.group(1)} ms")


@experiment(
    id="nagle-delack-nodelay",
    title="Nagle meets delayed ACK: two small writes cost a 40 ms ACK timer; TCP_NODELAY sends both at once",
    section="§3.6 (ext)",
    topology="book-lan.yaml",
    topology6="book-lan6.yaml",
    params={"family": 4, "port": 5002, "rounds": 20, "size": 10, "nagle_min_ms": 30.0, "nodelay_max_ms": 5.0},
    book="""\
(The book describes the Nagle algorithm in §3.6 and lists TCP_NODELAY among the socket options in
§5.11, but runs no experiment. Its words: "Nagle算法要求一个TCP连接的通信双方在任意时刻都最多只能发送一个
未被确认的TCP报文段，在该TCP报文段的确认到达之前不能发送其他TCP报文段" — at most one unacknowledged
small segment at a time; more data waits for the ACK.)""",
    modern="""Each round is write(10 B), write(10 B), read(1 B); the server answers after 20 B. With
    Nagle on, the second write may not leave while the first small segment is unacknowledged,
    and the server delays that ACK because it has nothing to send yet: the round costs one
    delayed-ACK timer, about 40-44 ms (TCP_DELACK_MIN = HZ/25 = 40 ms, a kernel constant; the
    per-route "quickack 1" or TCP_QUICKACK on the server would remove it). With TCP_NODELAY on
    the client both segments leave back to back and a round costs about one LAN round trip
    (~0.05-0.2 ms here). tcp_autocorking can merge the two writes when the first is still queued
    in the device; on this veth it rarely does, and a merged round is reported, not hidden.
    Over IPv6 (-p family=6, on book-lan6) the same.""",
)
def nagle_delack_nodelay(run: Run) -> None:
    server_ip, client_ip = run.ip(SERVER), run.ip(CLIENT)
    run.serve(SERVER, "nagle_server", server_ip, str(run.p.port), "--every", str(2 * run.p.size))
    with run.capture([f"{CLIENT}:eth0"], f"tcp port {run.p.port}"):
        r = run.py(CLIENT, "nagle_client", server_ip, str(run.p.port), "--rounds", str(run.p.rounds),
                   "--size", str(run.p.size), "--mode", "both", timeout=run.p.rounds * 0.2 + 30)
        run.sleep(0.2)
    run.expect(expect.exit_code("the client finished both modes", r.rc, 0))
    pk = flows.conversation(run.packets, client_ip, server_ip, run.p.port)
    limits = {"nagle": (run.p.nagle_min_ms, None), "nodelay": (None, run.p.nodelay_max_ms)}
    for mode, (low, high) in limits.items():
        found = re.search(rf"^median mode={mode} ms=([\d.]+)", r.stdout, re.MULTILINE)
        run.expect(expect.within(f"{mode}: the program's median round time (ms)",
                                 float(found.group(1)) if found else None, low, high))
        local = re.search(rf"^connected mode={mode} local=\S+:(\d+)", r.stdout, re.MULTILINE)
        if local is None:
            run.expect(expect.error(f"{mode}: the capture's rounds", "the client printed no local port"))
            continue
        conn = [p for p in pk if int(local.group(1)) in (flows.seg(p).sport, flows.seg(p).dport)]
        groups = flows.rounds(conn, client_ip, server_ip)
        run.expect(expect.count(f"{mode}: one round per reply in the capture", [g[0] for g in groups], run.p.rounds))
        pairs = [g for g in groups if len(g) == 2]
        merged = [g[0] for g in groups if len(g) != 2]
        if merged:
            run.note(f"{mode}: {len(merged)} rounds were not two segments ({expect.cite(merged)})")
        gaps = [(g[1].time - g[0].time) * 1000 for g in pairs]
        median = statistics.median(gaps) if gaps else None
        run.expect(expect.within(f"{mode}: median gap between the round's two segments in the capture (ms)",
                                 median, low, high, [p for g in pairs[:3] for p in g]))
        if mode == "nagle":
            waited = []
            for first, second in pairs:
                ack = next((p for p in conn if first.no < p.no < second.no and p.src == server_ip
                            and flows.is_bare_ack(p) and flows.seg(p).ack == flows.seg(first).next_seq), None)
                if ack is not None:
                    waited.append(second)
            run.expect(expect.check(
                "nagle: in every round a bare (delayed) ACK from the server comes before segment 2",
                bool(pairs) and len(waited) == len(pairs), f"{len(pairs) or run.p.rounds} rounds",
                f"{len(waited)} of {len(pairs)} rounds", [p for g in pairs[:2] for p in g]))


@experiment(
    id="bulk-small-window",
    title="Bulk data into a small receive window: half-window segments, at most a window in flight",
    section="§3.7",
    topology="book-lan.yaml",
    topology6="book-lan6.yaml",
    params={"family": 4, "port": 5003, "rcvbuf": 2048, "bytes": 100_000},
    book="""\
(tcp_rmem and tcp_wmem set to 4096; ftp get of a big file over lo)
1.IP 127.0.0.1.20 > 127.0.0.1.45227: Flags [.], seq 5195777:5197313, ack 1, win 3072, length 1536
2.IP 127.0.0.1.20 > 127.0.0.1.45227: Flags [.], seq 5197313:5198849, ack 1, win 3072, length 1536
3.IP 127.0.0.1.45227 > 127.0.0.1.20: Flags [.], ack 5198849, win 3072, length 0
4.IP 127.0.0.1.20 > 127.0.0.1.45227: Flags [P.], seq 5198849:5200385, ack 1, win 3072, length 1536
5.IP 127.0.0.1.45227 > 127.0.0.1.20: Flags [.], ack 5200385, win 3072, length 0
(both window scale factors 0; 3072-byte windows, so at most two 1536-byte segments unacknowledged)""",
    modern="""Setting tcp_rmem to 4096 in the namespace is no longer enough for the book's picture: the
    window scale is computed from max(tcp_rmem[2], net.core.rmem_max), and rmem_max is global
    (4 MiB here), so the SYN still offers wscale 9-10 and windows like "win 3" (x512). Setting
    SO_RCVBUF on the receiver before connect() locks the buffer and gives wscale 0, as in the
    book: 2048 becomes 4096 and the SYN offers win 1460. The sender then cuts its segments to
    half the largest window the peer ever offered (tcp_bound_to_half_wnd), 730 bytes here —
    the same rule that made the book's 3072-byte window carry 1536-byte segments — and never has
    more than one window unacknowledged. The receiver ACKs about every second full-sized
    segment (tcp_rcv_established: more than one rcv_mss unacknowledged), plus window updates
    when the program reads. PSH placement depends on the send path (tcp_push after each
    write); it is not asserted.
    Over IPv6 (-p family=6, on book-lan6) the same.""",
)
def bulk_small_window(run: Run) -> None:
    server_ip, client_ip = run.ip(SERVER), run.ip(CLIENT)
    wmem = int(run.sh(SERVER, ["sysctl", "-n", "net.ipv4.tcp_wmem"], record=False).stdout.split()[1])
    if run.p.rcvbuf > wmem:
        # With a window larger than the sender's send buffer the program, not the window, limits the
        # sender: it runs dry between writes and sends short segments, which is not this experiment.
        raise InputError(f"-p rcvbuf={run.p.rcvbuf}: this experiment needs a window smaller than the sender's "
                         f"initial send buffer (tcp_wmem[1] = {wmem})", f"use -p rcvbuf ≤ {wmem}")
    sender = run.serve(SERVER, "bulk_send", server_ip, str(run.p.port), "--listen", "--bytes", str(run.p.bytes),
                       "--info")
    with run.capture([f"{SERVER}:eth0"], f"tcp port {run.p.port}"):
        r = run.py(CLIENT, "bulk_recv", server_ip, str(run.p.port), "--connect", "--rcvbuf", str(run.p.rcvbuf),
                   "--info", timeout=60)
        sender.wait(30)
    run.expect(expect.output_contains("the receiver got every byte", r.stdout,
                                      f"received {run.p.bytes} bytes"))
    pk = flows.conversation(run.packets, client_ip, server_ip, run.p.port)
    syn = expect.first(expect.syns(pk))
    if syn is None:
        run.expect(expect.error("the receiver's SYN", "no SYN in the capture"))
        return
    s = flows.seg(syn)
    kept = re.search(r"^rcvbuf=(\d+)", r.stdout, re.MULTILINE)
    scale = sockmodel.locked_wscale(int(kept.group(1))) if kept else None
    run.expect(expect.equals(f"the receiver's SYN offers window scale {scale} (SO_RCVBUF "
                             f"{kept.group(1) if kept else '?'} set before connect)", scale, s.wscale, [syn]))
    synack = expect.first(expect.synacks(pk))
    windows = [flows.seg(p).window << (s.wscale or 0) for p in pk if p.src == client_ip and not flows.seg(p).flags
               & SYN] + [s.window]
    maxwin = max(windows)
    mss = sockmodel.effective_mss(s.mss or sockmodel.TCP_MSS_DEFAULT,
                                  s.ts_val is not None and synack is not None and synack.tcp is not None
                                  and synack.tcp.ts_val is not None)
    size = sockmodel.segment_size(maxwin, mss)
    run.note(f"the receiver's SYN offered win {s.window} and mss {s.mss}; the largest window it advertised "
             f"was {maxwin}, so full segments carry min({mss}, {maxwin}//2) = {size} bytes")
    segments = expect.data([p for p in pk if p.src == server_ip])
    run.expect(complete_capture(pk, server_ip, run.p.bytes))
    body = segments[:-1]
    run.expect(expect.every(f"every data segment but the last is min(MSS, ⌊max window / 2⌋) = {size} bytes", body,
                            lambda p: flows.seg(p).length == size,
                            f"length {size} (max window {maxwin}, MSS {mss})"))
    if segments:
        run.expect(expect.within(f"the last data segment is at most {size} bytes", flows.seg(segments[-1]).length,
                                 1, size, [segments[-1]]))
    else:  # a missing packet is an error, not a claim left out
        run.expect(expect.error("the last data segment's size", "no data segment in the capture"))
    found = re.search(r"tcp_info when=start .*? mss=(\d+)", sender.stdout)
    run.expect(expect.equals("the sender's own MSS (TCP_INFO) is that segment size", size,
                             int(found.group(1)) if found else None))
    fl = flows.flights(pk, server_ip, s.wscale or 0)
    over = [f.packet for f in fl if not f.fits]
    worst = max(fl, key=lambda f: f.in_flight - f.window) if fl else None
    run.expect(expect.check(
        "bytes in flight never exceed the advertised window", bool(fl) and not over,
        "in flight ≤ window for every segment",
        (f"{len(fl) - len(over)} of {len(fl)} segments fit; closest: #{worst.packet.no} "
         f"{worst.in_flight} in flight of {worst.window}" if worst else "no data segments")
        + (f"; over: {expect.cite(over)}" if over else ""), over or ([worst.packet] if worst else [])))
    first_data = segments[0] if segments else None
    acks = [p for p in pk if p.src == client_ip and flows.is_bare_ack(p) and first_data is not None
            and p.no > first_data.no]
    per_window = maxwin // size if size else 0
    least = sockmodel.min_window_acks(len(segments), per_window)
    run.expect(expect.count(f"the receiver ACKs at least once per window of {per_window} segments "
                            f"(≈ one ACK per {per_window}): {least} to {len(segments)} ACKs for {len(segments)} "
                            "segments", acks, min=least, max=len(segments)))


def sent_around_urgent(packets: list[Packet], sender: str) -> tuple[str, str, str]:
    """What a sender wrote before its urgent segment, in it, and after it, as the capture shows."""
    data = [p for p in packets if p.src == sender and flows.seg(p).length]
    marks = [i for i, p in enumerate(data) if flows.seg(p).flags & URG]
    if not marks:
        return "", "", ""
    text = [flows.seg(p).payload.decode(errors="replace") for p in data]
    return "".join(text[:marks[0]]), text[marks[0]], "".join(text[marks[0] + 1:])


@experiment(
    id="oob-urg",
    title="Urgent data: only the last byte sent with MSG_OOB is out-of-band; normal reads stop at the mark",
    section="§3.8, §5.8",
    topology="book-lan.yaml",
    topology6="book-lan6.yaml",
    params={"family": 4, "port": 54321, "normal": "123", "oob": "abc", "wait": 0.5},
    programs=("oob_send", "oob_recv"),
    book="""\
$ ./testoobrecv 192.168.1.109 54321
$ ./testoobsend 192.168.1.109 54321
got 5 bytes of normal data '123ab'
got 1 bytes of oob data 'c'
got 3 bytes of normal data '123'
IP 192.168.1.108.60460 > 192.168.1.109.54321: Flags [P.U], seq 4:7, ack 1, win 92, urg 3,
   options [nop,nop,TS val 102794322 ecr 154703423], length 3""",
    modern="""Identical on 6.x: one segment carries URG with urg 3 pointing just past 'c' (tcp_stdurg=0,
    the BSD reading of the urgent pointer), the receiver's normal read stops at the urgent mark,
    and MSG_OOB returns the single urgent byte because SO_OOBINLINE is off. The book's receiver
    calls recv() straight after accept(), which races the sender: if only "123" has arrived the
    lines become '123' / 'c' / 'ab'. Our receiver waits before its first read so all three sends
    are in; a reader's receiver (--use oob_recv, the book's 5-7 unchanged) is paused in its sandbox
    until the sender is done, and a reader's sender's data is read from the capture.
    Over IPv6 (-p family=6, on book-lan6) the same.""",
)
def oob_urg(run: Run) -> None:
    server_ip, client_ip = run.ip(SERVER), run.ip(CLIENT)
    normal, oob = run.p.normal, run.p.oob
    stdurg = run.sh(SERVER, ["sysctl", "-n", "net.ipv4.tcp_stdurg"], record=False).stdout.strip()
    run.expect(expect.equals("tcp_stdurg is 0 on the receiver (BSD urgent pointer)", "0", stdurg))
    receiver = run.serve(SERVER, "oob_recv", server_ip, str(run.p.port), "--wait", str(run.p.wait))
    if "oob_recv" in run.uses:  # the book's 5-7 reads as soon as it accepts: held until the sender is done
        receiver.pause()
    with run.capture([f"{CLIENT}:eth0"], f"tcp port {run.p.port}"):
        r = run.py(CLIENT, "oob_send", server_ip, str(run.p.port), "--normal", normal, "--oob", oob)
        if "oob_recv" in run.uses:
            receiver.resume()
        receiver.wait(10 + run.p.wait)
    run.expect(expect.exit_code("the sender sent its three writes", r.rc, 0))
    pk = flows.conversation(run.packets, client_ip, server_ip, run.p.port)
    if "oob_send" in run.uses:  # its data is its own: read what it sent from the capture
        normal, oob, after = sent_around_urgent(pk, client_ip)
    else:
        after = normal
    lines = [line for line in receiver.stdout.splitlines() if line.startswith("got ")]
    want = [f"got {len(normal) + len(oob) - 1} bytes of normal data '{normal}{oob[:-1]}'",
            f"got 1 bytes of oob data '{oob[-1:]}'",
            f"got {len(after)} bytes of normal data '{after}'"]
    run.expect(expect.equals("the receiver prints the book's three lines (its printf: a weak claim; the packets "
                             "decide the rest)", " / ".join(want), " / ".join(lines)))
    urgent = [p for p in pk if flows.seg(p).flags & URG]
    run.expect(expect.count("exactly one segment carries URG", urgent, 1))
    if len(urgent) != 1:
        return
    u = urgent[0]
    t = flows.seg(u)
    run.expect(expect.equals("the urgent segment's flags", "P.U", t.flag_str, [u]))
    run.expect(expect.equals("its payload is the MSG_OOB data", oob, t.payload.decode(errors="replace"), [u]))
    first = len(normal) + 1
    run.expect(expect.equals("its place in the stream (relative seq)", f"{first}:{first + len(oob)}",
                             f"{t.rel_seq}:{(t.rel_seq or 0) + t.length}", [u]))
    run.expect(expect.equals("urg points just past the urgent byte (urg = payload length)", len(oob), t.urg, [u]))
    byte = t.payload[t.urg - 1:t.urg].decode(errors="replace") if 0 < t.urg <= len(t.payload) else None
    run.expect(expect.equals("the urgent byte (payload[urg - 1]) is the last byte sent with MSG_OOB", oob[-1],
                             byte, [u]))


@experiment(
    id="congestion-cwnd",
    title="Congestion control under random loss: initial window, fast retransmit on SACKed duplicate ACKs",
    section="§3.10 (ext)",
    topology="book-lan.yaml",
    params={"port": 5001, "bytes": 2_000_000, "loss_percent": 2.0, "cc": "cubic", "initcwnd": 10,
            "rate": "100mbit"},
    book="""\
(The book has no capture here. §3.10: "TCP拥塞控制的标准文档是RFC 5681，其中详细介绍了拥塞控制的四个部分：
慢启动（slow start）、拥塞避免（congestion avoidance）、快速重传（fast retransmit）和快速恢复（fast recovery）。
拥塞控制算法在Linux下有多种实现，比如reno算法、vegas算法和cubic算法等 ...
/proc/sys/net/ipv4/tcp_congestion_control文件指示机器当前所使用的拥塞控制算法。")""",
    modern="""The default algorithm in this kernel build is bbr (CONFIG_DEFAULT_TCP_CONG), and a network
    namespace may only switch its default to an algorithm in the machine's
    tcp_allowed_congestion_control (EPERM otherwise), so the sender picks cubic per socket with
    TCP_CONGESTION (vegas is not built). A connection starts with cwnd 10 (RFC 6928,
    TCP_INIT_CWND; here set explicitly with the route's initcwnd). netem is missing, so loss
    comes from an iptables statistic rule on the receiver's input, and the sender's link is
    held to a 100 Mbit/s tbf (a real bottleneck, and a pace tcpdump can follow: at veth
    speed, 2 GB/s, it dropped a third of the packets). Each loss shows up as
    duplicate ACKs carrying SACK blocks for the data beyond the hole; the sender resends the
    hole long before its 200 ms minimum RTO (RACK-TLP loss detection, tcp_recovery=1, rather
    than RFC 5681's three duplicate ACKs), and cubic cuts ssthresh. Losses of retransmissions
    or tails can still need an RTO.""",
)
def congestion_cwnd(run: Run) -> None:
    server_ip, client_ip = run.ip(SERVER), run.ip(CLIENT)
    receiver = run.serve(SERVER, "bulk_recv", server_ip, str(run.p.port), "--timeout", "30")
    run.loss(f"{SERVER}:eth0", run.p.loss_percent, direction="in")
    run.fault(faults.rate(run.endpoint(f"{CLIENT}:eth0"), run.p.rate, "out"))
    route = [f"{server_ip}/32", "dev", "eth0"]
    run.change(CLIENT, ["ip", "route", "add", *route, "initcwnd", str(run.p.initcwnd)],
               undo=[["ip", "route", "del", *route]], title=f"a route to the server with initcwnd {run.p.initcwnd}")
    with run.capture([f"{CLIENT}:eth0"], f"tcp port {run.p.port}"):
        sender = run.py(CLIENT, "bulk_send", server_ip, str(run.p.port), "--bytes", str(run.p.bytes),
                        "--cc", run.p.cc, "--info", "--timeout", "30", timeout=120)
        receiver.wait(30)
    out = sender.stdout
    run.expect(expect.output_contains("the receiver got every byte", receiver.stdout, f"received {run.p.bytes} bytes"))
    run.expect(expect.output_contains(f"TCP_CONGESTION reads back {run.p.cc}", out, f"cc={run.p.cc}"))
    start, end = sockstate.parse_tcp_info(out, "start"), sockstate.parse_tcp_info(out, "end")
    if start is None or end is None:
        run.expect(expect.error("TCP_INFO", "the sender printed no tcp_info start/end lines"))
        return
    run.expect(expect.equals("the connection starts with cwnd = initcwnd (TCP_INFO right after connect)",
                             str(run.p.initcwnd), start.get("cwnd")))
    run.expect(expect.check("afterwards ssthresh is set (loss was met)", end.get("ssthresh", "inf") != "inf",
                            "a number, not inf", f"ssthresh={end.get('ssthresh')} cwnd={end.get('cwnd')}"))
    total = sockstate.retrans_total(end)
    run.expect(expect.within("the sender retransmitted (TCP_INFO total retrans)", total, low=1))
    pk = flows.conversation(run.packets, client_ip, server_ip, run.p.port)
    run.expect(complete_capture(pk, client_ip, run.p.bytes))
    dups = [p for p in flows.duplicate_acks(pk, server_ip) if flows.seg(p).sack_blocks]
    run.expect(expect.count("duplicate ACKs carrying SACK blocks", dups, min=1))
    rto = float(start.get("rto_ms", "200")) / 1000
    fast = flows.fast_retransmits(pk, client_ip, server_ip, rto)
    resent = flows.retransmissions(pk, client_ip)
    run.expect(expect.count(f"retransmissions sooner than the RTO ({rto * 1000:g} ms) after a "
                            "duplicate ACK with SACK for the hole (fast retransmit)",
                            [again for _, _, again in fast], min=1))
    if fast:
        original, hint, again = fast[0]
        run.note(f"fast retransmit: #{original.no} sent, #{hint.no} duplicate ACK with SACK, #{again.no} resent "
                 f"{(again.time - original.time) * 1000:.2f} ms after the original")
    run.note(f"{len(resent)} retransmitted segments in the capture, {len(fast)} of them fast; "
             f"TCP_INFO at the end: cwnd={end.get('cwnd')} ssthresh={end.get('ssthresh')} "
             f"retrans={end.get('retrans')} bytes_retrans={end.get('bytes_retrans')}")
