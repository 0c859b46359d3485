"""Ch.11 timers: TCP keepalive, the kernel's own timer on an idle connection (§11.2.2)."""

from __future__ import annotations

from lab.errors import InputError
from lab.experiments import expect, syscalls
from lab.experiments.book import flows
from lab.experiments.context import Run
from lab.experiments.engine import experiment

CLIENT, SERVER = "kongming20", "ernest-laptop"


@experiment(
    id="keepalive-heartbeat",
    title="TCP keepalive: probes after idle seconds, then every interval; count unanswered probes reset the "
          "connection and recv fails ETIMEDOUT",
    section="§11.2.2, §5.11",
    topology="book-lan.yaml",
    needs={"strace"},
    book="""\\
SO_KEEPALIVE: 发送周期性保活报文以维持连接 (§5.11, table 5-4)
(§11.2.2 weighs the kernel's keepalive against an application heartbeat: "定期检测" — after a time of
 silence the socket sends probes; a peer that does not answer is declared dead.)""",
    modern="""Unchanged on 6.x; the per-socket options override the per-namespace defaults
    (net.ipv4.tcp_keepalive_time 7200, _intvl 75, _probes 9). A probe is a bare ACK with seq =
    snd_una - 1 (one byte before what the peer has acknowledged), so the peer must answer with an
    ACK; an answer restarts the idle time. Here the server answers the first two probes, then its
    input is dropped: after count unanswered probes, interval seconds apart, the client's kernel
    sends RST and the blocked recv fails ETIMEDOUT (110), idle + count × interval after the last
    answered probe. Decided from the capture at the client and strace of its recvfrom.""",
)
def keepalive_heartbeat(run: Run, port: int = 12380, idle: int = 2, interval: int = 1, count: int = 3) -> None:
    if not (1 <= idle <= 30 and 1 <= interval <= 10 and 1 <= count <= 10):
        raise InputError(f"-p idle={idle} interval={interval} count={count}: idle 1..30 s, interval 1..10 s, "
                         "count 1..10 probes (a run waits 2 idle + idle + count × interval seconds)")
    server_ip, client_ip = run.ip(SERVER), run.ip(CLIENT)
    server = run.serve(SERVER, "discard", server_ip, str(port), "--idle-timeout", "600", "--duration", "600")
    prefix, trace = run.strace(CLIENT, ("recvfrom",))
    with run.capture([f"{CLIENT}:eth0"], f"tcp port {port}"):
        client = run.spawn(CLIENT, [*prefix, run.python(CLIENT), "-m", "lab.servers.keepalive_client", server_ip,
                                    str(port), "--idle", str(idle), "--interval", str(interval), "--count", str(count)],
                           title=f"keepalive_client --idle {idle} --interval {interval} --count {count} (strace)",
                           ready="connected")
        run.sleep(2.5 * idle)  # two probes answered
        run.drop(f"{SERVER}:eth0", f"tcp dport {port}", "in")  # then the server hears nothing more
        client.wait(idle + count * interval + 15)
    server.stop()
    calls = syscalls.named(run.syscalls(CLIENT, trace), "recvfrom")
    conn = flows.conversation(run.packets, client_ip, server_ip, port)
    probes = [p for p in conn if p.src == client_ip and flows.seg(p).flag_str == "." and flows.seg(p).length == 0
              and flows.seg(p).rel_seq == 0]
    answered = [p for p in probes if any(q.src == server_ip and q.time > p.time and flows.seg(q).flag_str == "."
                                         and q.time - p.time < 0.5 for q in conn)]
    rst = [p for p in conn if p.src == client_ip and "R" in flows.seg(p).flag_str]
    handshake = [p for p in conn if p.src == client_ip and flows.seg(p).flag_str == "." and flows.seg(p).rel_seq == 1]
    run.expect(expect.check("each probe is a bare ACK with seq = snd_una - 1 (relative seq 0, where the handshake's "
                            "ACK had 1)", len(probes) == 2 + count and bool(handshake), f"{2 + count} probes",
                            f"{len(probes)} probes", probes))
    run.expect(expect.count("the server's kernel answers the probes until its input is dropped", answered, 2))
    if handshake and len(probes) == 2 + count:
        times = [handshake[0].time, *[p.time for p in probes]]
        run.expect(expect.gaps_match(f"probes {idle} s after the last answer, then {interval} s apart when "
                                     "unanswered", times, [idle, idle, idle] + [interval] * (count - 1),
                                     tolerance=expect.timer_tolerance))
    if answered and rst:
        run.expect(expect.gaps_match(f"the RST comes idle + count × interval = {idle + count * interval} s after the "
                                     "last answered probe", [answered[-1], rst[0]], [idle + count * interval],
                                     tolerance=expect.timer_tolerance))
    else:
        run.expect(expect.count("the client's kernel resets the connection", rst, 1))
    run.expect(expect.equals("the blocked recv fails ETIMEDOUT (strace of the client)", "ETIMEDOUT",
                             calls[-1].errno if calls else "no recvfrom in the trace"))


def late_by_the_wheel(seconds: float) -> tuple[float, float]:
    """A socket timeout waits in schedule_timeout on the timer wheel: never early, up to ~1/8 late."""
    return seconds * 0.98, seconds * 1.13 + 0.05


@experiment(
    id="socket-timeouts",
    title="SO_SNDTIMEO on connect: EINPROGRESS after the timeout; SO_RCVTIMEO on recv: EAGAIN after it",
    section="§11.1",
    topology="book-lan.yaml",
    needs={"strace"},
    book="""\\
int timeout_connect( const char* ip, int port, int time )      (代码清单11-1)
    ...
    ret = setsockopt( sockfd, SOL_SOCKET, SO_SNDTIMEO, &timeout, len );
    ret = connect( sockfd, ( struct sockaddr* )&address, sizeof( address ) );
    if ( ret == -1 )
    {
        /*超时对应的错误号是EINPROGRESS。下面这个条件如果成立，我们就可以处理定时任务了*/
        if( errno == EINPROGRESS )
        {
            printf( "connecting timeout, process timeout logic \\n" );""",
    modern="""Unchanged on 6.x: a blocking connect with SO_SNDTIMEO gives up after the timeout with
    EINPROGRESS, not ETIMEDOUT (the handshake goes on in the kernel: the SYN is still
    retransmitted, 1 s apart on 6.5+, until the socket is closed), and a recv with SO_RCVTIMEO
    and nothing to read fails EAGAIN after its timeout. Both waits are schedule_timeout on the
    timer wheel, so they may end up to about an eighth late, never early. Decided from strace -T
    of the client (the time spent in each call) and the capture.""",
)
def socket_timeouts(run: Run, port: int = 12430, sndtimeo: float = 2.0, rcvtimeo: float = 1.0) -> None:
    if not (0.2 <= sndtimeo <= 10 and 0.2 <= rcvtimeo <= 10):
        raise InputError(f"-p sndtimeo={sndtimeo} -p rcvtimeo={rcvtimeo}: each from 0.2 to 10 s")
    server_ip, client_ip = run.ip(SERVER), run.ip(CLIENT)
    server = run.serve(SERVER, "discard", server_ip, str(port + 1), "--duration", "60")
    run.drop(f"{SERVER}:eth0", f"tcp syn dport {port}")
    calls = {}
    with run.capture([f"{CLIENT}:eth0"], f"tcp portrange {port}-{port + 1}"):
        for offset, (what, option, value) in enumerate((("connect", "--connect-timeout", sndtimeo),
                                                        ("recv", "--recv-timeout", rcvtimeo))):
            prefix, trace = run.strace(CLIENT, ("connect", "recvfrom"))
            run.sh(CLIENT, [*prefix, run.python(CLIENT), "-m", "lab.servers.timeo_client", server_ip,
                            str(port + offset), option, f"{value:g}"],
                   title=f"timeo_client {option} {value:g} (strace)", timeout=value + 20)
            calls[what] = syscalls.named(run.syscalls(CLIENT, trace), what if what == "connect" else "recvfrom")
    server.stop()
    for what, value, errno in (("connect", sndtimeo, "EINPROGRESS"), ("recv", rcvtimeo, "EAGAIN")):
        call = calls[what][-1] if calls[what] else None
        option = "SO_SNDTIMEO" if what == "connect" else "SO_RCVTIMEO"
        run.expect(expect.equals(f"{what} with {option} {value:g} s fails {errno}", errno,
                                 call.errno if call else f"no {what} in the trace"))
        low, high = late_by_the_wheel(value)
        spent = call.seconds if call and call.seconds is not None else None
        run.expect(expect.within(f"{what} returned after {value:g} s (strace -T; the timer wheel: up to 1/8 late)",
                                 spent, low=low, high=high))
    conn = [p for p in run.packets if p.src == client_ip and p.dport == port]
    syns = expect.syns(conn)
    run.expect(expect.check("the SYN is retransmitted while connect waits (same seq), and no answer comes",
                            len(syns) >= 2 and len({flows.seg(p).seq for p in syns}) == 1, "≥ 2 SYNs, one seq",
                            f"{len(syns)} SYNs", syns))
