"""§3.2–§3.6 and §5.11: SYN options, half-close, TIME_WAIT and SO_REUSEADDR (resets: tcp_resets; retransmission:
retransmit), and the helpers the TCP experiments share.

Every expected number comes from the run's parameters or from what the node's
kernel reports (sysctls, ``ss``), through the rules in :mod:`tcp_rules`, so
a user who changes a parameter gets expectations that follow.
"""

from __future__ import annotations

import re

from lab.capture.records import Packet, TcpInfo
from lab.experiments import expect
from lab.experiments.book import sstext, tcp_rules
from lab.experiments.context import Run
from lab.experiments.engine import experiment
from lab.experiments.programs import Result

CLIENT, SERVER = "kongming20", "ernest-laptop"


def sysctl_value(run: Run, node: str, key: str) -> str:
    """A sysctl's current value in a node (read, not recorded as a step)."""
    r = run.sh(node, ["sysctl", "-n", key], record=False)
    if r.rc != 0:
        raise RuntimeError(f"{node}: cannot read sysctl {key}: {r.stderr.strip()}")
    return r.stdout.strip()


def device_mtu(run: Run, node: str, ifname: str) -> int:
    r = run.sh(node, ["cat", f"/sys/class/net/{ifname}/mtu"], record=False)
    return int(r.stdout.strip())


def ss(run: Run, node: str, *filters: str, title: str | None = None) -> tuple[Result, list[sstext.SsSocket]]:
    """``ss -tanoiH FILTER`` in a node: the raw result (recorded as a step) and the parsed sockets."""
    r = run.sh(node, ["ss", "-tanoiH", *filters], title=title)
    return r, sstext.parse(r.stdout)


def field(text: str, pattern: str) -> str | None:
    found = re.search(pattern, text, re.MULTILINE)
    return found.group(1) if found else None


def first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else "no output"


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "no output"


def options_hex(t: TcpInfo) -> str:
    """The option bytes as tcpdump -X groups them ("0204 05b4 0402 080a ...")."""
    raw = b"".join(bytes([k]) if k in (0, 1) else bytes([k, len(v) + 2]) + v for k, v in t.options)
    text = raw.hex()
    return " ".join(text[i:i + 4] for i in range(0, len(text), 4))


# ---------------------------------------------------------------- 7 tcp_syn_options


OPTION_NAMES = {tcp_rules.NOP: "nop", tcp_rules.MSS: "mss", tcp_rules.WSCALE: "wscale",
                tcp_rules.SACK_PERM: "sackOK", tcp_rules.TIMESTAMP: "TS"}
KNOBS = (("net.ipv4.tcp_sack", "sack"), ("net.ipv4.tcp_timestamps", "timestamps"),
         ("net.ipv4.tcp_window_scaling", "window_scaling"))


def kind_names(kinds: list[int]) -> str:
    return ",".join(OPTION_NAMES.get(k, str(k)) for k in kinds)


def connect_each(run: Run, variants: list[tuple[str, dict[str, bool]]], wanted: dict[str, bool], server_ip: str,
                 port: int) -> list[int]:
    """One connection per variant of the SYN knobs (each set for its connection, then set back); the
    client ports, so each SYN is found in the capture (-1 where the connect printed none)."""
    ports: list[int] = []
    for label, knobs in variants:
        for key, name in KNOBS:
            if knobs[name] != wanted[name]:
                run.sysctl(CLIENT, key, int(knobs[name]))
        r = run.py(CLIENT, "connect_timer", server_ip, str(port), title=f"connect ({label})")
        local = field(r.stdout, r"local=\S+:(\d+)")
        ports.append(int(local) if local else -1)
        for key, name in KNOBS:
            if knobs[name] != wanted[name]:
                run.sysctl(CLIENT, key, int(wanted[name]))
    return ports


@experiment(
    id="tcp-syn-options",
    title="The options of a SYN: MSS, SACK-permitted, timestamps, window scale — and the sysctls behind them",
    section="§3.2.3",
    topology="book-lan.yaml",
    topology6="book-lan6.yaml",
    params={"family": 4, "port": 23, "loopback": False, "mtu": 0, "rmem_default": 0, "sack": True, "timestamps": True,
            "window_scaling": True},
    book="""\
IP 127.0.0.1.41621 > 127.0.0.1.23: Flags [S], seq 3499745539, win 32792,
options [mss 16396,sackOK,TS val 40781017 ecr 0,nop,wscale 6], length 0
0x0000: 4510 003c a5da 4000 4006 96cf 7f00 0001
0x0010: 7f00 0001 a295 0017 d099 e103 0000 0000
0x0020: a002 8018 fe30 0000 0204 400c 0402 080a
0x0030: 026e 44d9 0000 0000 0103 0306
(on lo, MTU 16436: mss = 16436 - 40 = 16396)""",
    modern="""The option layout is the book's (tcp_options_write: mss; sackOK sharing a word with TS;
    nop,wscale; data offset 10). What changed is the numbers. The SYN's window is the largest
    multiple of the MSS in half the default receive buffer (tcp_rmem[1]/2 = 64 KiB, the 6.x
    scaling_ratio), cut to 16 bits: 64240 for MSS 1460, 65495 on a 65536-MTU lo, 49188 for the
    book's MSS 16396, where the book's 2.6 kernel offered 2 MSS (32792). The SYN-ACK's uses
    MSS - 12 when timestamps are on (65160 = 45 x 1448), so a 16384-byte unit offers 65535.
    The window scale is sized for the largest buffer the socket could grow to:
    clamp(ilog2(max(tcp_rmem[2], net.core.rmem_max)) - 15, 0, 14); tcp_rmem is per namespace
    (copied from the host's) and rmem_max global, so a host tuned for fast links
    shows 9 or 10 where vanilla defaults give 7 and the book 6. tcp_sack, tcp_timestamps and
    tcp_window_scaling remove their option, and the kernel pads what is left with NOPs.
    Run with -p loopback=true -p mtu=16436 to get the book's own MSS.
    Over IPv6 (-p family=6, on book-lan6) the options are the same and MSS = MTU − 60 (::1 with -p loopback=true).""",
)
def syn_options(run: Run) -> None:
    port = run.p.port
    ifname = "lo" if run.p.loopback else "eth0"
    server_node = CLIENT if run.p.loopback else SERVER
    family = run.p.family
    loopback_ip = "::1" if family == 6 else "127.0.0.1"
    server_ip = loopback_ip if run.p.loopback else run.ip(SERVER)
    old_mtu = device_mtu(run, CLIENT, ifname)
    mtu = run.p.mtu or old_mtu
    if run.p.mtu and run.p.mtu != old_mtu:
        run.change(CLIENT, ["ip", "link", "set", "dev", ifname, "mtu", str(run.p.mtu)],
                   undo=[["ip", "link", "set", "dev", ifname, "mtu", str(old_mtu)]], title=f"{ifname} mtu {run.p.mtu}")
    wanted = {"sack": run.p.sack, "timestamps": run.p.timestamps, "window_scaling": run.p.window_scaling}
    for key, name in KNOBS:
        run.sysctl(CLIENT, key, int(wanted[name]))
    tcp_rmem = [int(v) for v in sysctl_value(run, CLIENT, "net.ipv4.tcp_rmem").split()]
    if run.p.rmem_default:
        tcp_rmem[1] = run.p.rmem_default
        run.sysctl(CLIENT, "net.ipv4.tcp_rmem", " ".join(map(str, tcp_rmem)))
    rmem_max = int(sysctl_value(run, CLIENT, "net.core.rmem_max"))
    server_rcvbuf = int(sysctl_value(run, server_node, "net.ipv4.tcp_rmem").split()[1])
    server_ts = sysctl_value(run, server_node, "net.ipv4.tcp_timestamps") != "0"
    server_mtu = mtu if run.p.loopback else device_mtu(run, SERVER, "eth0")
    run.serve(server_node, "echo", server_ip, str(port))
    variants: list[tuple[str, dict[str, bool]]] = [("as the parameters say", dict(wanted))]
    for key, name in KNOBS:
        variants.append((f"{key}={int(not wanted[name])}", {**wanted, name: not wanted[name]}))
    with run.capture([f"{CLIENT}:{ifname}"], f"tcp port {port}"):
        ports = connect_each(run, variants, wanted, server_ip, port)
        run.sleep(0.3)

    pk = run.packets
    mss = tcp_rules.mss_for_mtu(mtu, family)
    headers = tcp_rules.IPV6_TCP_HEADERS if family == 6 else tcp_rules.IPV4_TCP_HEADERS
    for (label, knobs), sport in zip(variants, ports, strict=True):
        syn = next((p for p in expect.syns(pk) if p.tcp is not None and p.tcp.sport == sport), None)
        if syn is None or syn.tcp is None:
            run.expect(expect.check(f"a SYN for the connection {label}", False, f"a SYN from port {sport}",
                                    "none captured"))
            continue
        t = syn.tcp
        kinds = tcp_rules.syn_option_kinds(knobs["sack"], knobs["timestamps"], knobs["window_scaling"])
        run.expect(expect.equals(f"SYN ({label}): option kinds in order [{kind_names(kinds)}]", kinds,
                                 t.option_kinds, [syn]))
        run.expect(expect.equals(f"SYN ({label}): data offset (header words)", tcp_rules.data_offset(kinds),
                                 t.data_offset, [syn]))
        if label != variants[0][0]:
            continue
        run.note(f"SYN options as bytes: {options_hex(t)}")
        cap = tcp_rules.IPV6_MAX_PMTU if family == 6 else tcp_rules.IPV4_MAX_PMTU
        run.expect(expect.equals(f"SYN: MSS = min(MTU {mtu}, {cap}) - {headers}", mss, t.mss, [syn]))
        run.expect(expect.equals(f"SYN: window = min(floor(tcp_rmem[1]/2 = {tcp_rmem[1] // 2} / {mss}) x {mss}, "
                                 "65535)", tcp_rules.syn_window(mss, tcp_rmem[1]), t.window, [syn]))
        if knobs["window_scaling"]:
            ws = tcp_rules.window_scale(tcp_rmem[2], rmem_max)
            run.expect(expect.equals(
                f"SYN: wscale = clamp(ilog2(max(tcp_rmem[2]={tcp_rmem[2]}, rmem_max={rmem_max})) - 15, 0, 14)",
                ws, t.wscale, [syn]))
        if knobs["timestamps"]:
            run.expect(expect.equals("SYN: TS ecr = 0 (nothing to echo yet)", 0, t.ts_ecr, [syn]))
        synack = next((p for p in expect.synacks(pk) if p.tcp is not None and p.tcp.dport == sport), None)
        if synack is not None and synack.tcp is not None:
            server_mss = tcp_rules.mss_for_mtu(server_mtu, family)
            ts_on = knobs["timestamps"] and server_ts
            unit = server_mss - (tcp_rules.TCPOLEN_TSTAMP_ALIGNED if ts_on else 0)
            run.expect(expect.equals(f"SYN-ACK: window = min(floor({server_rcvbuf // 2} / {unit}) x {unit}, 65535)"
                                     + (" (MSS less the 12-byte timestamp option)" if ts_on else ""),
                                     tcp_rules.synack_window(server_mss, ts_on, server_rcvbuf), synack.tcp.window,
                                     [synack]))
        else:
            run.expect(expect.check("a SYN-ACK answers the SYN", False, "a SYN-ACK", "none captured"))


# ---------------------------------------------------------------- 9 tcp_half_close


@experiment(
    id="tcp-half-close",
    title="Half-close: the client's FIN first, then the server's data still flows, then the server's FIN",
    section="§3.3.2",
    topology="book-lan.yaml",
    topology6="book-lan6.yaml",
    params={"family": 4, "port": 9000, "message": "hello", "prefix": "bye:"},
    book="""\
通信的一端可以发送结束报文段给对方，告诉它本端已经完成了数据的发送，但允许继续接收来自对方的数据，
直到对方也发送结束报文段以关闭连接。服务器和客户端应用程序判断对方是否已经关闭连接的方法是：read系统调用返回0。
(The book gives no capture for §3.3.2; the expected listing:)
IP client > server: Flags [P.], seq 1:6, length 5          hello
IP client > server: Flags [F.], seq 6                       shutdown(SHUT_WR)
IP server > client: Flags [P.], seq 1:10, length 9          bye:hello
IP client > server: Flags [.], ack 10
IP server > client: Flags [F.], seq 10
IP client > server: Flags [.], ack 11""",
    modern="""Identical on 6.x: after shutdown(SHUT_WR) the client sits in FIN_WAIT_2 and still
    receives and ACKs data; the server's read() returns 0 at the FIN, it answers, then closes.
    The ACK of the client's FIN usually rides on the server's data (delayed ACK), so no bare
    ACK appears between the client's FIN and the server's reply.
    Over IPv6 (-p family=6, on book-lan6) the same.""",
)
def half_close(run: Run) -> None:
    server_ip, client_ip = run.ip(SERVER), run.ip(CLIENT)
    message, reply = run.p.message.encode(), (run.p.prefix + run.p.message).encode()
    server = run.serve(SERVER, "halfclose_server", server_ip, str(run.p.port), "--prefix", run.p.prefix)
    with run.capture([f"{CLIENT}:eth0"], f"tcp port {run.p.port}"):
        r = run.py(CLIENT, "halfclose_client", server_ip, str(run.p.port), "--message", run.p.message)
        server.wait(5)
        run.sleep(0.3)
    pk = expect.tcp(run.packets)
    fin_seq = len(message) + 1  # the client's FIN takes the sequence number after its data

    def client_fin(p: Packet) -> bool:
        t = p.tcp
        return t is not None and p.src == client_ip and t.is_fin and t.rel_seq is not None \
            and t.rel_seq + t.length == fin_seq

    def server_data(p: Packet) -> bool:
        return p.src == server_ip and p.tcp is not None and p.tcp.payload == reply and p.tcp.rel_seq == 1

    def acks_data(p: Packet) -> bool:
        return p.src == client_ip and p.tcp is not None and (p.tcp.rel_ack or 0) >= 1 + len(reply)

    def server_fin(p: Packet) -> bool:
        t = p.tcp
        return t is not None and p.src == server_ip and t.is_fin and (t.rel_seq or 0) + t.length == 1 + len(reply)

    def last_ack(p: Packet) -> bool:
        return p.src == client_ip and p.tcp is not None and p.tcp.rel_ack == 2 + len(reply)

    run.expect(expect.sequence("half-close: client FIN, then server data, its ACK, server FIN, final ACK", pk, [
        (f"the client's FIN (seq {fin_seq})", client_fin),
        (f"the server's data 1:{1 + len(reply)} ({len(reply)} bytes)", server_data),
        (f"the client's ACK of it (ack {1 + len(reply)})", acks_data),
        (f"the server's FIN (seq {1 + len(reply)})", server_fin),
        (f"the client's final ACK (ack {2 + len(reply)})", last_ack),
    ]))
    run.expect(expect.count("one FIN each way", expect.fins(pk), 2))
    run.expect(expect.count("no reset", expect.rsts(pk), 0))
    run.expect(expect.output_contains("the client reads the reply after its own shutdown", r.stdout,
                                      f"received {len(reply)} bytes '{reply.decode()}'"))
    run.expect(expect.output_contains("the server's read() returns 0 (EOF) after the message", server.stdout,
                                      f"eof after {len(message)} bytes"))


# ---------------------------------------------------------------- 11 time_wait_client_bind


@experiment(
    id="time-wait-client-bind",
    title="TIME_WAIT holds a client's fixed port: bind() fails with EADDRINUSE until it expires (60 s)",
    section="§3.4.2",
    topology="book-lan.yaml",
    lasts=61,
    topology6="book-lan6.yaml",
    params={"family": 4, "port": 80, "local_port": 12345, "wait_expiry": True},
    book="""\
$ nc -p 12345 192.168.1.108 80
ctrl+C                               # 中断客户端程序
$ nc -p 12345 192.168.1.108 80       # 重启客户端程序，重新建立连接
nc: bind failed: Address already in use
$ netstat -nat
Proto Recv-Q Send-Q Local Address        Foreign Address      State
tcp        0      0 192.168.1.108:12345  192.168.1.108:80     TIME_WAIT""",
    modern="""Identical on 6.x: the active closer holds TIME_WAIT for TCP_TIMEWAIT_LEN = 60 s, a
    constant (tcp_fin_timeout governs FIN_WAIT_2, not TIME_WAIT), and OpenBSD nc prints the
    book's message. A new socket that sets SO_REUSEADDR fails too: the TIME_WAIT socket keeps
    the old socket's sk_reuse, which was off, and the bind conflict check wants it on both.
    tcp_tw_reuse only helps connect() with an ephemeral port (and its 2 = loopback-only default
    does nothing here); tcp_tw_reuse_delay (6.13+) sets how old the timestamp must be.
    Over IPv6 (-p family=6, on book-lan6) the same: TIME_WAIT is TCP's, not IPv4's.""",
)
def time_wait_client_bind(run: Run) -> None:
    server_ip, client_ip = run.ip(SERVER), run.ip(CLIENT)
    port, lport = str(run.p.port), str(run.p.local_port)
    run.serve(SERVER, "echo", server_ip, port)
    with run.capture([f"{CLIENT}:eth0"], f"tcp port {port}"):
        first = run.py(CLIENT, "bind_client", server_ip, port, "--local-port", lport, "--hold", "0.1",
                       title=f"bind_client --local-port {lport} (closes first)")
        run.sleep(0.3)
    # Until the first connection sits in TIME-WAIT (the server's FIN may come late on a busy machine):
    # bounded, each look a step, so the report shows what nc met.
    for _ in range(20):
        _, held = ss(run, CLIENT, "state", "all", f"( sport = :{lport} )",
                     title=f"ss: is :{lport} in TIME-WAIT yet?")
        if any(sock.state == "TIME-WAIT" for sock in held):
            break
        run.sleep(0.1)
    again = run.sh(CLIENT, ["nc", "-w", "2", "-p", lport, server_ip, port], input="",
                   title=f"nc -p {lport} {server_ip} {port} (again, at once)")
    reuse = run.py(CLIENT, "bind_client", server_ip, port, "--local-port", lport, "--reuseaddr",
                   title=f"bind_client --local-port {lport} --reuseaddr")
    _, sockets = ss(run, CLIENT, "state", "all", f"( sport = :{lport} )", title=f"ss: what holds :{lport}")

    run.expect(expect.output_contains("the first client connected and closed first", first.stdout, "closed"))
    fins = expect.fins(run.packets)
    run.expect(expect.check("the client's FIN is the first (it is the active closer)",
                            bool(fins) and fins[0].src == client_ip, f"first FIN from {client_ip}",
                            f"first FIN from {fins[0].src}" if fins else "no FIN", fins[:1]))
    run.expect(expect.exit_code("nc exits 1", again.rc, 1))
    run.expect(expect.output_contains("nc says the book's words", again.stderr,
                                      "bind failed: Address already in use"))
    run.expect(expect.errno("SO_REUSEADDR on the new socket does not help", "EADDRINUSE", reuse.stdout))
    tw = sstext.in_state(sockets, "TIME-WAIT", run.p.local_port)
    run.expect(expect.check(f"ss shows TIME-WAIT on :{lport} with at most {tcp_rules.TCP_TIMEWAIT_LEN:g} s left",
                            len(tw) == 1 and (tw[0].timer_left or 0) <= tcp_rules.TCP_TIMEWAIT_LEN,
                            f"one TIME-WAIT socket {client_ip}:{lport}",
                            "; ".join(f"{s.state} {s.local} {s.timer}:{s.timer_left}" for s in sockets) or "none"))
    if not run.p.wait_expiry:
        run.note("wait_expiry=false: the 60 s wait for the port to come free was skipped")
        return
    server_fin = expect.first(fins, lambda p: p.src == server_ip)
    if server_fin is None:
        run.expect(expect.check("TIME_WAIT starts at the server's FIN", False, "a FIN from the server",
                                "none captured"))
        return
    freed_at, last_failure = wait_for_bind(run, server_ip, port, lport, server_fin.time)
    limit = tcp_rules.TCP_TIMEWAIT_LEN
    late = expect.timer_tolerance(limit)[1]  # a 60 s timer sits on a coarse timer-wheel level: fires late
    run.expect(expect.check(
        f"bind() works again only after TIME_WAIT's {limit:g} s (timed from the server's FIN)",
        freed_at is not None and freed_at >= limit and (last_failure or 0) <= late,
        f"first success ≥ {limit:g} s, last failure ≤ {late:g} s",
        f"last failure at {last_failure or 0:.2f} s, first success at "
        + (f"{freed_at:.2f} s" if freed_at is not None else "never"), [server_fin]))


def wait_for_bind(run: Run, server_ip: str, port: str, lport: str, since: float) -> tuple[float | None, float | None]:
    """Retry the bind until it works: (end of the first successful try, start of the last failed one).

    Both in seconds after ``since`` (wall clock, like capture times). Tries
    start two seconds before the earliest the kernel should free the port.
    """
    deadline = since + expect.timer_tolerance(tcp_rules.TCP_TIMEWAIT_LEN)[1] + 2
    run.sleep(max(0.0, since + tcp_rules.TCP_TIMEWAIT_LEN - 2 - run.now()))
    last_failure: float | None = None
    while run.now() < deadline:
        started = run.now()
        r = run.py(CLIENT, "bind_client", server_ip, port, "--local-port", lport,
                   title=f"bind_client --local-port {lport} (t={started - since:.1f} s)")
        if r.rc == 0:
            return run.now() - since, last_failure
        last_failure = started - since
        run.sleep(0.25)
    return None, last_failure


# ---------------------------------------------------------------- 12 so_reuseaddr_restart

REUSE_MATRIX = ((False, False), (False, True), (True, False), (True, True))


@experiment(
    id="so-reuseaddr-restart",
    title="Restarting a server whose connection is in TIME_WAIT: SO_REUSEADDR must be on, old and new",
    section="§5.11.1",
    topology="book-lan.yaml",
    topology6="book-lan6.yaml",
    params={"family": 4, "port": 8000},
    book="""\
但如果是服务器主动关闭连接后异常终止，则因为它总是使用同一个知名服务端口号，所以连接的TIME_WAIT状态将导致它不能立即重启。
不过，我们可以通过socket选项SO_REUSEADDR来强制进程立即使用处于TIME_WAIT状态的连接占用的端口。
    int reuse = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof(reuse));
(the book's alternative, sysctl tcp_tw_recycle, was removed in Linux 4.12)""",
    modern="""On 6.x SO_REUSEADDR on the new listener is not enough: the connection in TIME_WAIT
    keeps the sk_reuse of the socket it came from (the old listener's accepted socket), and
    inet_csk_bind_conflict allows the bind only if both have it. So the 4-row matrix has one
    OK row, old and new both with SO_REUSEADDR. tcp_tw_recycle, the book's other way out,
    was removed in 4.12 (it broke clients behind NAT).
    Over IPv6 (-p family=6, on book-lan6) the same.""",
)
def so_reuseaddr_restart(run: Run) -> None:
    server_ip = run.ip(SERVER)
    rows = []
    with run.capture([f"{SERVER}:eth0"], f"tcp portrange {run.p.port}-{run.p.port + len(REUSE_MATRIX) - 1}"):
        for i, (old, new) in enumerate(REUSE_MATRIX):
            port = str(run.p.port + i)
            flag = (["--reuseaddr"] if old else [])
            server = run.serve(SERVER, "reuse_server", server_ip, port, *flag,
                               title=f"reuse_server :{port}{' --reuseaddr' if old else ''} (old)")
            run.py(CLIENT, "connect_timer", server_ip, port, "--hold", "0.2", title=f"client of :{port}")
            server.wait(5)
            _, sockets = ss(run, SERVER, "state", "all", f"( sport = :{port} )", title=f"ss :{port} after close")
            restart = run.py(SERVER, "reuse_server", server_ip, port, "--bind-only",
                             *(["--reuseaddr"] if new else []),
                             title=f"reuse_server :{port}{' --reuseaddr' if new else ''} --bind-only (restart)")
            rows.append((old, new, int(port), server.stdout, sockets, restart))
        run.sleep(0.3)
    yes = {True: "SO_REUSEADDR", False: "no SO_REUSEADDR"}
    for old, new, number, served, sockets, restart in rows:
        row = f"old {yes[old]}, new {yes[new]}"
        fins = [p for p in expect.fins(run.packets) if p.tcp and number in (p.tcp.sport, p.tcp.dport)]
        run.expect(expect.check(f"{row}: the server closed first", "closed first" in served and bool(fins)
                                and fins[0].src == server_ip, f"first FIN from {server_ip}:{number}",
                                f"first FIN from {fins[0].src}" if fins else "no FIN", fins[:1]))
        tw = sstext.in_state(sockets, "TIME-WAIT", number)
        run.expect(expect.check(f"{row}: the server's end is in TIME-WAIT on :{number}", len(tw) == 1,
                                "one TIME-WAIT socket",
                                "; ".join(f"{s.state} {s.local} {s.peer}" for s in sockets) or "none"))
        if tcp_rules.reuseaddr_restart_ok(old, new):
            run.expect(expect.output_contains(f"{row}: the restart binds", restart.stdout, "listening on"))
        else:
            run.expect(expect.errno(f"{row}: the restart fails with EADDRINUSE", "EADDRINUSE", restart.stdout))
