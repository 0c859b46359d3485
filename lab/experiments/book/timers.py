"""Ch.11 timers: TCP keepalive (the kernel's own timer on an idle connection, §11.2.2), socket timeouts (§11.1)
and the book's own timers that kick idle connections (§11.2-§11.4)."""

from __future__ import annotations

import re

from lab.capture.records import Packet
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


ROLES = ("silent", "steady", "once")
KINDS = ("list", "wheel", "heap")


def kick_window(kind: str, timeslot: int) -> tuple[float, float, str]:
    """When each timer closes a connection idle since t (seconds after t), and why.

    The list keeps whole-second deadlines (``time(NULL) + 3T``) and looks at them on each
    ``alarm(T)``: [3T - 1, 4T]. The wheel turns once per slot of SI = T: [3T, 4T]. The heap
    sleeps until the deadline itself: 3T and a few milliseconds (50 ms allowed for a busy machine).
    """
    timeout = 3 * timeslot
    if kind == "list":
        return timeout - 1, timeout + timeslot + 0.1, f"[3T-1, 4T] = [{timeout - 1}, {timeout + timeslot}] s"
    if kind == "wheel":
        return timeout, timeout + timeslot + 0.1, f"[3T, 3T+SI] = [{timeout}, {timeout + timeslot}] s"
    return timeout, timeout + 0.05, f"3T = {timeout} s, ≤ 50 ms late"


def by_role(packets: list[Packet], port: int) -> dict[str, list[Packet]]:
    """The clients' three connections to ``port``, named by the order of their SYNs (silent, steady, once:
    the order idle_clients opens them in)."""
    return dict(zip(ROLES, flows.opened_in_order(packets, port), strict=False))


@experiment(
    id="idle-connection-timers",
    title="Kicking idle connections with the book's timers: a sorted list on alarm(), a time wheel, a time heap",
    section="§11.2-§11.4",
    topology="book-lan.yaml",
    lasts=13,
    needs={"strace"},
    book="""\\
$ ./lst_timer_server 192.168.1.109 12345        (代码清单11-3: 定时器链表, alarm(TIMESLOT), TIMESLOT 5)
get 5 bytes of client data hello from 5
close fd 6                                      (cb_func: 3 * TIMESLOT after the last data)
(代码清单11-5 时间轮: N = 60 slots, SI = 1 s, "rotation" turns; 代码清单11-6 时间堆: the heap's top
 decides the next alarm, so "每次定时器到期... 精确".  The book: "定时任务的精度是TIMESLOT" for the list.)""",
    modern="""As the book, on 6.x, with each timer's own error: the list's deadline is whole seconds
    of time(NULL), checked once per alarm, so a silent connection is closed between 3T − 1 and 4T
    after its last data; the wheel turns once per slot of SI = T, so between 3T and 3T + SI; the heap
    sleeps exactly until the earliest deadline (epoll_wait's timeout, an hrtimer), so at 3T and a
    few milliseconds. Data moves the deadline (adjust_timer), so a connection speaking every 1.5 T
    is never closed, and one that spoke once is closed 3T after it spoke. The list's SIGALRM is
    installed with SA_RESTART, and still epoll_wait fails EINTR (select, poll and epoll are never
    restarted, signal(7)): the listing's `errno != EINTR` test is needed. Three servers run at once
    (ports port, port+1, port+2); decided from the capture at the clients and strace of the list's.""",
)
def idle_connection_timers(run: Run, port: int = 12470, timeslot: int = 1) -> None:
    if not 1 <= timeslot <= 4:
        raise InputError(f"-p timeslot={timeslot}: from 1 to 4 s (alarm() takes whole seconds; a run takes 8T)")
    server_ip = run.ip(SERVER)
    lasting = 8 * timeslot
    with run.capture([f"{CLIENT}:eth0"], f"tcp portrange {port}-{port + 2}"):
        prefix, trace = run.strace(SERVER, ("epoll_wait", "rt_sigaction"))
        servers = []
        for offset, kind in enumerate(KINDS):
            argv = [run.python(SERVER), "-m", "lab.servers.idle_timers", server_ip, str(port + offset),
                    "--timer", kind, "--timeslot", str(timeslot), "--duration", str(lasting + 4)]
            traced = kind == "list"
            servers.append(run.spawn(SERVER, [*prefix, *argv] if traced else argv, ready="listening on",
                                     title=f"idle_timers {server_ip} {port + offset} --timer {kind} --timeslot "
                                           f"{timeslot}" + (" (strace)" if traced else "")))
        clients = [run.start(CLIENT, "idle_clients", server_ip, str(port + offset), "--every", f"{1.5 * timeslot:g}",
                             "--once-at", f"{1.5 * timeslot:g}", "--for", str(lasting)) for offset in range(3)]
        for proc in clients:
            proc.wait(lasting + 10)
        for proc in servers:
            proc.wait(20)
    for offset, kind in enumerate(KINDS):
        judge_timer(run, kind, timeslot, by_role(run.packets, port + offset), server_ip)
    conns = [p for p in run.packets if p.tcp is not None]
    run.expect(expect.count("no connection is reset: every close is a FIN", expect.rsts(conns), 0))
    calls = run.syscalls(SERVER, trace)
    alarm = [act for c in syscalls.named(calls, "rt_sigaction")
             if (act := installed(c, "SIGALRM")) and "sa_handler=0x" in act]
    interrupted = [c for c in syscalls.named(calls, "epoll_wait") if c.errno == "EINTR"]
    run.expect(expect.check("list: SIGALRM is installed with SA_RESTART (strace rt_sigaction)",
                            bool(alarm) and "SA_RESTART" in alarm[-1], "SA_RESTART in sa_flags",
                            alarm[-1] if alarm else "no rt_sigaction(SIGALRM) installing a handler in the trace"))
    run.expect(expect.check("list: and still the alarm interrupts epoll_wait: -1 EINTR (never restarted)",
                            len(interrupted) >= 3, f"≥ 3 (one per alarm over {lasting} s)",
                            f"{len(interrupted)} epoll_wait = -1 EINTR"))


def installed(call: syscalls.Syscall, signal: str) -> str | None:
    """The action an ``rt_sigaction`` call installs for ``signal`` (its second argument), or None."""
    found = re.match(rf"{signal}, \{{([^}}]*)\}}", call.args)
    return found.group(1) if found else None


def judge_timer(run: Run, kind: str, timeslot: int, conns: dict[str, list[Packet]], server_ip: str) -> None:
    """The claims of one timer: the silent and once-speaking connections kicked in the timer's window
    after their last data, the steady one never, and each kicked client answering with its FIN."""
    if len(conns) != 3:
        run.expect(expect.error(f"{kind}: three connections", f"{len(conns)} in the capture"))
        return
    low, high, window = kick_window(kind, timeslot)
    for role, what in (("silent", "its handshake"), ("once-speaking", "its one line")):
        conn = conns[role.split("-")[0]]
        server_fins = [p for p in expect.fins(conn) if p.src == server_ip]
        spoke = [p for p in conn if p.src != server_ip and (flows.seg(p).length > 0 or flows.seg(p).flag_str == ".")]
        last = [p for p in spoke if not server_fins or p.no < server_fins[0].no]
        if role != "silent":
            last = expect.data(last) or last
        idle = server_fins[0].time - last[-1].time if server_fins and last else None
        run.expect(expect.within(f"{kind}: the {role} connection gets the server's FIN {window} after {what}",
                                 idle, low=low, high=high, packets=[*last[-1:], *server_fins[:1]]))
        answer = [p for p in expect.fins(conn) if p.src != server_ip and server_fins and p.no > server_fins[0].no]
        if role == "silent":
            run.expect(expect.count(f"{kind}: the silent client reads EOF and closes: its FIN follows", answer, 1))
    steady = conns["steady"]
    fins = expect.fins(steady)
    run.expect(expect.check(f"{kind}: the steady connection (a line every 1.5 T) is never kicked: the first FIN is "
                            "the client's, at its end", bool(fins) and fins[0].src != server_ip,
                            "the client's FIN first",
                            f"first FIN from {fins[0].src}" if fins else "no FIN", fins[:2]))
