"""§3.2–§3.9 and §5.11: SYN options, half-close, TIME_WAIT and SO_REUSEADDR, resets, retransmission.

Every expected number comes from the run's parameters or from what the node's
kernel reports (sysctls, ``ss``), through the rules in :mod:`tcp_rules`, so
a user who changes a parameter gets expectations that follow.
"""

from __future__ import annotations

import re
import time

from lab.capture.records import Packet, TcpInfo
from lab.experiments import expect
from lab.experiments.book import sstext, tcp_rules
from lab.experiments.context import Result, Run
from lab.experiments.engine import experiment

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


@experiment(
    id="tcp-syn-options",
    title="The options of a SYN: MSS, SACK-permitted, timestamps, window scale — and the sysctls behind them",
    section="§3.2.3",
    topology="book-lan.yaml",
    params={"port": 23, "loopback": False, "mtu": 0, "rmem_default": 0, "sack": True, "timestamps": True,
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
    Run with -p loopback=true -p mtu=16436 to get the book's own MSS.""",
)
def syn_options(run: Run) -> None:
    port = run.p.port
    ifname = "lo" if run.p.loopback else "eth0"
    server_node = CLIENT if run.p.loopback else SERVER
    server_ip = "127.0.0.1" if run.p.loopback else run.ip(SERVER)
    old_mtu = device_mtu(run, CLIENT, ifname)
    mtu = run.p.mtu or old_mtu
    if run.p.mtu and run.p.mtu != old_mtu:
        r = run.sh(CLIENT, ["ip", "link", "set", "dev", ifname, "mtu", str(run.p.mtu)])
        if r.rc != 0:
            raise RuntimeError(f"cannot set the MTU of {ifname} to {run.p.mtu}: {r.stderr.strip()}")
    try:
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
        ports: list[int] = []
        with run.capture([f"{CLIENT}:{ifname}"], f"tcp port {port}"):
            for label, knobs in variants:
                for key, name in KNOBS:
                    if knobs[name] != wanted[name]:
                        run.sysctl(CLIENT, key, int(knobs[name]))
                r = run.py(CLIENT, "connect_timer", server_ip, str(port), title=f"connect ({label})")
                local = field(r.stdout, r"local=[\d.]+:(\d+)")
                ports.append(int(local) if local else -1)
                for key, name in KNOBS:
                    if knobs[name] != wanted[name]:
                        run.sysctl(CLIENT, key, int(wanted[name]))
            run.sleep(0.3)
    finally:
        if run.p.mtu and run.p.mtu != old_mtu:
            run.sh(CLIENT, ["ip", "link", "set", "dev", ifname, "mtu", str(old_mtu)], record=False)

    pk = run.packets
    mss = tcp_rules.mss_for_mtu(mtu)
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
        run.expect(expect.equals(f"SYN: MSS = min(MTU {mtu}, 65535) - 40", mss, t.mss, [syn]))
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
            server_mss = tcp_rules.mss_for_mtu(server_mtu)
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
    params={"port": 9000, "message": "hello", "prefix": "bye:"},
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
    ACK appears between the client's FIN and the server's reply.""",
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

    run.expect(expect.sequence(pk, [
        (f"the client's FIN (seq {fin_seq})", client_fin),
        (f"the server's data 1:{1 + len(reply)} ({len(reply)} bytes)", server_data),
        (f"the client's ACK of it (ack {1 + len(reply)})", acks_data),
        (f"the server's FIN (seq {1 + len(reply)})", server_fin),
        (f"the client's final ACK (ack {2 + len(reply)})", last_ack),
    ], "half-close: client FIN, then server data, its ACK, server FIN, final ACK"))
    run.expect(expect.count(expect.fins(pk), 2, "one FIN each way"))
    run.expect(expect.count(expect.rsts(pk), 0, "no reset"))
    run.expect(expect.output_contains(r.stdout, f"received {len(reply)} bytes '{reply.decode()}'",
                                      "the client reads the reply after its own shutdown"))
    run.expect(expect.output_contains(server.stdout, f"eof after {len(message)} bytes",
                                      "the server's read() returns 0 (EOF) after the message"))


# ---------------------------------------------------------------- 11 time_wait_client_bind


@experiment(
    id="time-wait-client-bind",
    title="TIME_WAIT holds a client's fixed port: bind() fails with EADDRINUSE until it expires (60 s)",
    section="§3.4.2",
    topology="book-lan.yaml",
    params={"port": 80, "local_port": 12345, "wait_expiry": True},
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
    does nothing here); tcp_tw_reuse_delay (6.13+) sets how old the timestamp must be.""",
)
def time_wait_client_bind(run: Run) -> None:
    server_ip, client_ip = run.ip(SERVER), run.ip(CLIENT)
    port, lport = str(run.p.port), str(run.p.local_port)
    run.serve(SERVER, "echo", server_ip, port)
    with run.capture([f"{CLIENT}:eth0"], f"tcp port {port}"):
        first = run.py(CLIENT, "bind_client", server_ip, port, "--local-port", lport, "--hold", "0.1",
                       title=f"bind_client --local-port {lport} (closes first)")
        run.sleep(0.3)
    again = run.sh(CLIENT, ["nc", "-w", "2", "-p", lport, server_ip, port], input="",
                   title=f"nc -p {lport} {server_ip} {port} (again, at once)")
    reuse = run.py(CLIENT, "bind_client", server_ip, port, "--local-port", lport, "--reuseaddr",
                   title=f"bind_client --local-port {lport} --reuseaddr")
    _, sockets = ss(run, CLIENT, "state", "all", f"( sport = :{lport} )", title=f"ss: what holds :{lport}")

    run.expect(expect.output_contains(first.stdout, "closed", "the first client connected and closed first"))
    fins = expect.fins(run.packets)
    run.expect(expect.check("the client's FIN is the first (it is the active closer)",
                            bool(fins) and fins[0].src == client_ip, f"first FIN from {client_ip}",
                            f"first FIN from {fins[0].src}" if fins else "no FIN", fins[:1]))
    run.expect(expect.exit_code(again.rc, 1, "nc exits 1"))
    run.expect(expect.output_contains(again.stderr, "bind failed: Address already in use",
                                      "nc says the book's words"))
    run.expect(expect.errno("EADDRINUSE", reuse.stdout, "SO_REUSEADDR on the new socket does not help"))
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
    time.sleep(max(0.0, since + tcp_rules.TCP_TIMEWAIT_LEN - 2 - time.time()))
    last_failure: float | None = None
    while time.time() < deadline:
        started = time.time()
        r = run.py(CLIENT, "bind_client", server_ip, port, "--local-port", lport,
                   title=f"bind_client --local-port {lport} (t={started - since:.1f} s)")
        if r.rc == 0:
            return time.time() - since, last_failure
        last_failure = started - since
        time.sleep(0.25)
    return None, last_failure


# ---------------------------------------------------------------- 12 so_reuseaddr_restart

REUSE_MATRIX = ((False, False), (False, True), (True, False), (True, True))


@experiment(
    id="so-reuseaddr-restart",
    title="Restarting a server whose connection is in TIME_WAIT: SO_REUSEADDR must be on, old and new",
    section="§5.11.1",
    topology="book-lan.yaml",
    params={"port": 8000},
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
    was removed in 4.12 (it broke clients behind NAT).""",
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
            run.expect(expect.output_contains(restart.stdout, "listening on", f"{row}: the restart binds"))
        else:
            run.expect(expect.errno("EADDRINUSE", restart.stdout, f"{row}: the restart fails with EADDRINUSE"))


# ---------------------------------------------------------------- 14 rst_linger_abort


@experiment(
    id="rst-linger-abort",
    title="SO_LINGER {1, 0}: close() aborts with an RST and drops the data; {1, T}: waits T s, returns 0",
    section="§3.5.2, §5.11.4",
    topology="book-lan.yaml",
    params={"port": 6000, "bytes": 100000, "rcvbuf": 2048, "linger": 0},
    book="""\
TCP提供了异常终止一个连接的方法，即给对方发送一个复位报文段。一旦发送了复位报文段，发送端所有排队等待发送的数据都将被丢弃。
应用程序可以使用socket选项SO_LINGER来发送复位报文段，以异常终止一个连接。
    struct linger { int l_onoff; int l_linger; };
l_onoff != 0, l_linger == 0: close() returns at once, discards what is left in the send buffer
    and sends the peer a reset.
l_onoff != 0, l_linger > 0 (§5.11.4): a blocking close() waits up to l_linger seconds for the data
    to be sent and acknowledged; if it is not, close() returns -1 with errno EWOULDBLOCK.
(the book runs no capture for this)""",
    modern="""With linger=0, as the book says: close() sends one RST and no FIN, and the peer's next
    read, after the bytes already in its receive buffer, fails with ECONNRESET; what the server
    had queued is discarded. The RST carries the ACK flag and the connection's real numbers
    (seq = snd_nxt, ack = rcv_nxt), the timestamp option and a non-zero window, unlike the
    RST to a closed port (seq 0, win 0). With linger > 0 (-p linger=2) Linux differs from the
    book: when the time runs out close() returns 0, not -1/EWOULDBLOCK (tcp_close ignores the
    timeout's result), and nothing is discarded: the orphaned socket sits in FIN-WAIT-1 with
    its data queued, and sends it and a FIN once the reader reads. The reader's SO_RCVBUF is
    doubled by the kernel and, set before connect, also drops the window scale to 0.""",
)
def rst_linger_abort(run: Run) -> None:
    server_ip, client_ip = run.ip(SERVER), run.ip(CLIENT)
    port, linger = str(run.p.port), run.p.linger
    stall, delay = 1.0, 0.2
    server = run.serve(SERVER, "linger_abort_server", server_ip, port, "--bytes", str(run.p.bytes),
                       "--linger", str(linger), "--write-stall", str(stall), "--delay", str(delay))
    with run.capture([f"{CLIENT}:eth0"], f"tcp port {port}"):
        # The reader sleeps past the server's writing (until it stalls) and its close.
        reader = run.start(CLIENT, "slow_reader", server_ip, port, "--rcvbuf", str(run.p.rcvbuf),
                           "--sleep", str(stall + delay + linger + 1.5))
        closed = server.wait_for("close returned", 10 + linger)
        _, orphan = ss(run, SERVER, "state", "all", f"( sport = :{port} )",
                       title="ss: the server's socket after close()")
        reader.wait(15 + linger)
        run.sleep(0.2)
    out = reader.stdout
    written = int(field(server.stdout, r"wrote (\d+) of") or -1)
    received = int(field(out, r"received (\d+) bytes") or -1)
    pk = expect.tcp(run.packets)
    from_server = [p for p in pk if p.src == server_ip]
    rsts = expect.rsts(pk)
    run.expect(expect.check("the server's close() came before the reader's first read", closed,
                            "'close returned' while the reader sleeps", last_line(server.stdout)))
    if linger > 0:
        lingered(run, linger, server.stdout, orphan, from_server, rsts, out, written, received)
        return
    run.expect(expect.count(rsts, 1, "exactly one RST"))
    run.expect(expect.count([p for p in from_server if p.tcp and p.tcp.is_fin], 0, "no FIN from the server"))
    if rsts and rsts[0].tcp:
        rst = rsts[0].tcp
        snd_nxt = max((p.tcp.next_seq for p in from_server if p.tcp and p is not rsts[0]), default=None)
        sent = [p for p in pk if p.src == client_ip and p.tcp]
        rcv_nxt = max((p.tcp.next_seq for p in sent if p.tcp), default=None)
        run.expect(expect.equals("the RST comes from the server", server_ip, rsts[0].src, rsts[:1]))
        run.expect(expect.equals("the RST's flags are RST|ACK", "R.", rst.flag_str, rsts[:1]))
        run.expect(expect.equals("the RST's seq is the server's snd_nxt", snd_nxt, rst.seq, rsts[:1]))
        run.expect(expect.equals("the RST's ack is the server's rcv_nxt", rcv_nxt, rst.ack, rsts[:1]))
        run.expect(expect.check("the RST advertises a window (it is not a closed port's win 0)", rst.window > 0,
                                "win > 0", f"win {rst.window}", rsts[:1]))
    run.expect(expect.errno("ECONNRESET", out, "the reader's recv() fails with ECONNRESET"))
    run.expect(expect.check("the reader got fewer bytes than the server wrote (the rest was discarded)",
                            0 <= received < written, f"< {written}", received))
    client_acks = [p.tcp.rel_ack for p in pk if p.src == client_ip and p.tcp and p.tcp.rel_ack is not None]
    acked = max(client_acks, default=1) - 1
    run.expect(expect.equals("the reader got exactly the bytes it had acknowledged before the RST",
                             acked, received))


def lingered(run: Run, linger: int, served: str, orphan: list[sstext.SsSocket], from_server: list[Packet],
             rsts: list[Packet], out: str, written: int, received: int) -> None:
    """SO_LINGER {1, T > 0} while the reader does not read: Linux's close() times out and returns 0."""
    after = field(served, r"close returned 0 after=([\d.]+)")
    blocked = float(after) if after is not None else None
    lo, hi = expect.timer_tolerance(float(linger))
    run.expect(expect.within(f"close() blocks for the linger time ({linger} s) and returns 0, not -1/EWOULDBLOCK",
                             blocked, lo, hi))
    queued = [s for s in orphan if s.state == "FIN-WAIT-1" and s.send_q > 0]
    run.expect(expect.check("after close() the socket sits in FIN-WAIT-1 with its data still queued", bool(queued),
                            "FIN-WAIT-1, Send-Q > 0",
                            "; ".join(f"{s.state} Send-Q {s.send_q}" for s in orphan) or "no socket"))
    run.expect(expect.count(rsts, 0, "no RST: nothing is discarded"))
    fins = [p for p in from_server if p.tcp and p.tcp.is_fin]
    run.expect(expect.count(fins, 1, "the server's FIN follows its data once the reader reads"))
    run.expect(expect.output_contains(out, f"received {written} bytes eof",
                                      f"the reader gets all {written} bytes written, then EOF"))


# ---------------------------------------------------------------- 15 rst_half_open


@experiment(
    id="rst-half-open",
    title="A half-open connection: data to a rebooted peer is answered with a bare RST",
    section="§3.5.3",
    topology="book-lan.yaml",
    params={"port": 12345, "message": "a\\r\\n", "send_at": 2.5},
    book="""\
$ nc -l 12345                      # on Kongming20
$ telnet 192.168.1.109 12345       # on ernest-laptop; then pull its cable, restart the server
a (Enter)
Connection closed by foreign host.
1. IP 192.168.1.108.55100 > 192.168.1.109.12345: Flags [S], seq 3093809365, length 0
2. IP 192.168.1.109.12345 > 192.168.1.108.55100: Flags [S.], seq 1495337791, ack 3093809366, length 0
3. IP 192.168.1.108.55100 > 192.168.1.109.12345: Flags [.], ack 1, length 0
4. IP 192.168.1.108.55100 > 192.168.1.109.12345: Flags [P.], seq 1:4, ack 1, length 3
5. IP 192.168.1.109.12345 > 192.168.1.108.55100: Flags [R], seq 1495337792, length 0""",
    modern="""Identical on 6.x: the peer with no socket answers with RST alone, seq = the incoming
    segment's ack (RFC 793: no ACK flag when the segment carried one), window 0. The reboot is
    emulated by killing the server while the client's cable is out (its FIN is lost and its
    socket sits in FIN-WAIT-1) and then destroying that socket with ss -K (INET_DIAG_DESTROY).
    The client's next recv() fails with ECONNRESET and the send() after it with EPIPE (SIGPIPE
    unless ignored). The client sends at send_at (2.5 s) after connecting: time for the six steps of
    the emulation, each a command through a machine's engine when the lab is spread over a cluster.""",
)
def rst_half_open(run: Run) -> None:
    server_ip, client_ip = run.ip(SERVER), run.ip(CLIENT)
    port = str(run.p.port)
    message = run.p.message.encode().decode("unicode_escape").encode("latin-1")
    at = run.p.send_at
    server = run.serve(SERVER, "echo", server_ip, port)
    with run.capture([f"{CLIENT}:eth0"], f"tcp port {port}"):
        client = run.start(CLIENT, "rst_client", server_ip, port, "--step", f"{at}:send:{run.p.message}",
                           "--step", f"{at + 0.5}:recv:2", "--step", f"{at + 1.0}:send:{run.p.message}")
        connected = client.wait_for("connected", 10)
        t0 = time.monotonic()
        run.link(f"{CLIENT}:eth0", up=False)
        server.stop()
        _, before = ss(run, SERVER, "state", "all", f"( sport = :{port} )", title="ss: the server's socket after kill")
        kill = run.sh(SERVER, ["ss", "-K", "-tan", f"( sport = :{port} )"], title="ss -K: the server 'reboots'")
        _, after = ss(run, SERVER, "state", "all", f"( sport = :{port} )", title="ss: after ss -K")
        run.link(f"{CLIENT}:eth0", up=True)
        ready_in = time.monotonic() - t0
        client.wait(at + 10)
        run.sleep(0.3)
    out = client.stdout
    run.expect(expect.check("the client connected", connected, "connected", first_line(out)))
    run.expect(expect.check(f"the reboot was emulated before the client's send at {at:g} s", ready_in < at - 0.2,
                            f"< {at - 0.2:g} s", f"{ready_in:.2f} s"))
    run.expect(expect.check("the killed server's socket was left in FIN-WAIT-1 (its FIN lost)",
                            bool(sstext.in_state(before, "FIN-WAIT-1")), "FIN-WAIT-1",
                            ", ".join(s.state for s in before) or "no socket"))
    run.expect(expect.check("ss -K destroyed it: the server holds no socket for the connection",
                            kill.rc == 0 and not [s for s in after if s.state != "LISTEN"], "none",
                            ", ".join(s.state for s in after) or "none"))
    pk = expect.tcp(run.packets)
    run.expect(expect.count([p for p in expect.fins(pk) if p.src == server_ip], 0,
                            "the server's FIN never reached the client"))
    sent = [p for p in pk if p.src == client_ip and p.tcp and p.tcp.length > 0]
    reply = expect.first(expect.rsts(pk))
    if not sent or reply is None or reply.tcp is None:
        run.expect(expect.check("the client's data is answered by a reset", False, "data, then RST",
                                f"{len(sent)} data segments, {'an' if reply else 'no'} RST"))
    else:
        last = [p for p in sent if p.no < reply.no][-1:] or sent[:1]
        data_seg = last[0]
        assert data_seg.tcp is not None
        nos = [data_seg.no, reply.no]
        run.expect(expect.equals("the client's segment carries the message", message, data_seg.tcp.payload, nos))
        run.expect(expect.equals("the reply's flags are RST alone", "R", reply.tcp.flag_str, nos))
        run.expect(expect.equals("the RST's seq is the client's ack", data_seg.tcp.ack, reply.tcp.seq, nos))
        run.expect(expect.equals("the RST's window is 0", 0, reply.tcp.window, nos))
    recv = field(out, r"recv (errno=\S+)")
    send_after = re.findall(r"send (errno=\S+)", out)
    run.expect(expect.errno("ECONNRESET", recv, "the next recv() fails with ECONNRESET"))
    run.expect(expect.errno("EPIPE", send_after[0] if send_after else None, "the send() after it fails with EPIPE"))


# ---------------------------------------------------------------- 21 retransmit_cable_pull


@experiment(
    id="retransmit-cable-pull",
    title="The server's cable pulled: retransmissions on a doubling RTO, ARP takes over, the connection gives up",
    section="§3.9",
    topology="book-lan.yaml",
    params={"port": 5001, "retries2": 5, "first": "1234\\r\\n", "second": "12\\r\\n", "second_at": 1.0,
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
    so the application gets EHOSTUNREACH rather than ETIMEDOUT.""",
)
def retransmit_cable_pull(run: Run) -> None:
    server_ip, client_ip = run.ip(SERVER), run.ip(CLIENT)
    port = str(run.p.port)
    first = run.p.first.encode().decode("unicode_escape").encode("latin-1")
    second = run.p.second.encode().decode("unicode_escape").encode("latin-1")
    run.sysctl(CLIENT, "net.ipv4.tcp_retries2", run.p.retries2)
    run.sysctl(CLIENT, "net.ipv4.neigh.eth0.base_reachable_time_ms", run.p.base_reachable_time_ms)
    run.sysctl(CLIENT, "net.ipv4.neigh.eth0.delay_first_probe_time", run.p.delay_first_probe_time)
    ucast = int(sysctl_value(run, CLIENT, "net.ipv4.neigh.eth0.ucast_solicit"))
    retrans_time = int(sysctl_value(run, CLIENT, "net.ipv4.neigh.eth0.retrans_time_ms")) / 1000
    tlp = int(sysctl_value(run, CLIENT, "net.ipv4.tcp_early_retrans")) >= 3
    bound = tcp_rules.give_up_after(run.p.retries2)
    _, limit_guess = tcp_rules.retransmit_schedule(run.p.retries2)
    at = run.p.second_at
    run.serve(SERVER, "discard", server_ip, port)
    server_mac = run.mac(SERVER)
    with run.capture([f"{CLIENT}:eth0"], f"tcp port {port} or arp"):
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
    run.expect(expect.count(ack1, min=1, description="the server acknowledged the first message"))
    acked = [p for p in pk if p.src == server_ip and p.tcp and (p.tcp.rel_ack or 0) > len(first) + 1]
    run.expect(expect.count(acked, 0, "nothing acknowledges the second message (the cable was out in time)"))
    seq = len(first) + 1
    run.expect(expect.every(tx, lambda p: p.tcp is not None and p.tcp.rel_seq == seq
                            and p.tcp.length == len(second),
                            f"every transmission of the second message is seq {seq}:{seq + len(second)}"))
    arps = [p for p in expect.arp(pk) if p.src == client_ip and tx and p.time > tx[0].time]
    first_bcast = expect.first(arps, lambda p: p.is_broadcast)
    on_wire = [p for p in tx if first_bcast is None or p.no < first_bcast.no]
    gaps = expect.gaps(on_wire)
    # The neighbour entry cannot fail sooner than DELAY plus the unicast probes after the send; what the
    # model sends before then (allowing timers 1/8 late) leaves with the cached MAC.
    earliest_fail = run.p.delay_first_probe_time + ucast * retrans_time
    must = sum(1 for t in times if t * 1.125 < earliest_fail)
    run.expect(expect.count(on_wire, min=must, description=f"the {must} transmissions due in the first "
                            f"{earliest_fail:g} s (DELAY + {ucast} unicast probes) reach the wire"))
    if gaps:
        lo = rto * 0.95
        run.expect(expect.within(f"the first retransmission ({'tail loss probe' if tlp else 'RTO'}) waits about "
                                 f"one RTO ({rto * 1000:.0f} ms)", gaps[0], lo, rto * 1.3, on_wire[:2]))
    ratios = [b / a for a, b in zip(gaps[1:], gaps[2:], strict=False) if a > 0]
    model_gaps = expect.gaps(times)
    wanted = [b / a for a, b in zip(model_gaps[1:], model_gaps[2:], strict=False)][:len(ratios)]
    run.expect(expect.check("after the first two gaps each gap is the RTO doubled (ratio ±10%)",
                            len(wanted) == len(ratios) > 0
                            and all(0.9 * w <= r <= 1.1 * w for r, w in zip(ratios, wanted, strict=False)),
                            ", ".join(f"{w * 0.9:.1f}-{w * 1.1:.1f}" for w in wanted) or "at least 4 gaps",
                            ", ".join(f"{r:.2f}" for r in ratios) or "too few gaps", on_wire))
    run.expect(expect.every(arps, lambda p: p.arp is not None and p.arp.op == 1 and p.arp.tpa == server_ip,
                            f"every ARP the client sends asks for {server_ip}", "op=1 who-has " + server_ip))
    # When can the entry have failed? REACHABLE lasts base/2..3·base/2 after the send confirmed it (or
    # is already over), then DELAY, then the unicast probes. A transmission due after the latest failure
    # starts a new resolution, which broadcasts; none due after the earliest failure means none does.
    latest_fail = 1.5 * run.p.base_reachable_time_ms / 1000 + earliest_fail
    due_after = [t for t in times if t > latest_fail]
    maybe_after = [t for t in times if t > earliest_fail]
    probes_from = 1.5 * run.p.base_reachable_time_ms / 1000 + run.p.delay_first_probe_time
    unicast = [p for p in arps if first_bcast is None or p.no < first_bcast.no]
    run.expect(expect.check(f"ARP starts with unicast probes to the cached MAC {server_mac}",
                            (bool(unicast) or give_up <= probes_from)
                            and all(p.eth_dst == server_mac for p in unicast),
                            f"who-has to {server_mac}" + (f" (probing starts by {probes_from:g} s)"
                                                           if give_up > probes_from else " or none"),
                            ", ".join(p.eth_dst for p in unicast) or "no ARP", unicast))
    after = [p for p in arps if first_bcast is not None and p.no >= first_bcast.no]
    if due_after:
        run.expect(expect.check(f"exactly {ucast} unicast probes (ucast_solicit), then the entry fails",
                                len(unicast) == ucast, ucast, len(unicast), unicast))
        run.expect(expect.every(after, lambda p: p.is_broadcast,
                                f"the retransmission due at {due_after[0]:.2f} s finds the entry failed: "
                                "who-has broadcasts to ff:ff:ff:ff:ff:ff"))
    elif not maybe_after:
        run.expect(expect.count(after, 0, f"no broadcast: the connection gives up ({give_up:.2f} s) before a "
                                f"transmission can find the entry failed (earliest {earliest_fail:g} s)"))
    else:
        run.expect(expect.every(after, lambda p: p.is_broadcast, "any ARP after the unicast probes is broadcast",
                                allow_empty=True))
    failed = re.search(r"step t=([\d.]+) recv (errno=\S+)", out)
    sent2 = re.search(rf"step t=([\d.]+) send {len(second)} bytes", out)
    errno_text = failed.group(2) if failed else out
    ok = expect.errno("ETIMEDOUT", errno_text).ok or expect.errno("EHOSTUNREACH", errno_text).ok
    run.expect(expect.check("recv() fails with ETIMEDOUT or EHOSTUNREACH", ok, "ETIMEDOUT or EHOSTUNREACH",
                            expect.errno_name(expect.errno_number(errno_text))))
    elapsed = float(failed.group(1)) - float(sent2.group(1)) if failed and sent2 else None
    run.expect(expect.within(
        f"it fails ≈ {give_up:.2f} s after the send (RTO {rto * 1000:.0f} ms, "
        f"{'TLP, ' if tlp else ''}tcp_retries2={run.p.retries2}: give up {bound:.1f} s after the first RTO) ±10%",
        elapsed, give_up * 0.9, give_up * 1.1))
    run.note("model transmission times (s after the send): " + ", ".join(f"{t:.3f}" for t in times))
