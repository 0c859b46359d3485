"""§3.4.1 figure 3-8: both ends close at once, and each passes through CLOSING.

Over the book-lan WAN (the router–isp link delayed, as in lab.experiments.book.wan), kongming20 and
far-host close their connection at the same moment, so their FINs cross on the way. ss on both ends
while the FINs are in flight, and again after, gives the states; the capture at kongming20 the FINs.
"""

from __future__ import annotations

import time

from lab.capture.records import FIN
from lab.errors import InputError
from lab.experiments import expect
from lab.experiments.book import flows, sstext
from lab.experiments.book.wan import CLIENT, FAR, make_wan
from lab.experiments.context import Run
from lab.experiments.engine import experiment
from lab.experiments.params import Duration

SERVER = "ernest-laptop"


def state_on(run: Run, node: str, port: int) -> str:
    socks = sstext.parse(run.sh(node, ["ss", "-tanH", f"( sport = :{port} or dport = :{port} )"]).stdout)
    return socks[0].state if socks else "none"


@experiment(
    id="simultaneous-close",
    title="Simultaneous close: the FINs cross, both ends pass through CLOSING, and both end in TIME-WAIT",
    section="§3.4.1",
    topology="book-lan.yaml",
    lasts=9,
    book="""\\
(§3.4.1, 图3-8 的注: 客户端和服务器同时关闭连接 — "同时关闭"，双方都由 FIN_WAIT_1 进入 CLOSING 状态，
 收到对方对自己FIN的确认后进入 TIME_WAIT. The book draws the state; it shows no capture.)""",
    modern="""As RFC 793 and the book: each end sends its FIN before the other's arrives (neither FIN
    acknowledges the other), each answers the other's FIN with an ACK while its own is still
    unacknowledged (CLOSING), and once its FIN is acknowledged enters TIME-WAIT, so both ends hold
    a TIME-WAIT, where after an ordinary close only the active closer does. The WAN's delay (half
    of rtt on each end of the router–isp link, lab's emulator where the kernel has no netem) gives
    the FINs time to cross; ss is read on both ends halfway between the FINs' arrival and their
    ACKs'. A tail-loss probe may resend a FIN: the claims count each FIN once.""",
)
def simultaneous_close(run: Run, port: int = 12420, rtt: Duration = Duration("800ms")) -> None:
    client_ip, far_ip = run.ip(CLIENT), run.ip(FAR)
    make_wan(run, rtt.seconds)
    at = run.now() + 2.0 + 2 * rtt.seconds
    with run.capture([f"{CLIENT}:eth0"], f"tcp port {port}"):
        server = run.serve(FAR, "close_at", far_ip, str(port), "--listen", "--at", f"{at:.3f}")
        client = run.start(CLIENT, "close_at", far_ip, str(port), "--connect", "--at", f"{at:.3f}")
        run.sleep(max(0.0, at + 0.75 * rtt.seconds - time.time()))  # the FINs arrived (½ rtt); no ACK yet (1 rtt)
        during = {CLIENT: state_on(run, CLIENT, port), FAR: state_on(run, FAR, port)}
        run.sleep(max(0.0, at + 1.5 * rtt.seconds - time.time()))
        after = {CLIENT: state_on(run, CLIENT, port), FAR: state_on(run, FAR, port)}
        client.wait(10)
        server.wait(10)
    conn = flows.conversation(run.packets, client_ip, far_ip, port)
    fins = expect.once_each(expect.fins(conn))
    mine = [p for p in fins if p.src == client_ip]
    theirs = [p for p in fins if p.src == far_ip]
    if not mine or not theirs:
        run.expect(expect.error("both FINs", f"{len(mine)} from {CLIENT}, {len(theirs)} from {FAR} in the capture"))
        return
    a, b = flows.seg(mine[0]), flows.seg(theirs[0])
    run.expect(expect.check("the FINs crossed: neither acknowledges the other (FIN_A.ack = FIN_B.seq and "
                            "FIN_B.ack = FIN_A.seq)", a.ack == b.seq and b.ack == a.seq,
                            "ack = the other's seq, both ways", f"A seq {a.seq} ack {a.ack}; B seq {b.seq} ack {b.ack}",
                            [mine[0], theirs[0]]))
    acks = [p for p in conn if not flows.seg(p).flags & FIN and flows.seg(p).length == 0
            and p.no > max(mine[0].no, theirs[0].no)]
    acked = {(p.src, flows.seg(p).ack) for p in acks}
    run.expect(expect.check("each end then acknowledges the other's FIN (ack = FIN seq + 1)",
                            (client_ip, b.seq + 1) in acked and (far_ip, a.seq + 1) in acked,
                            "two bare ACKs", sorted(acked), acks))
    run.expect(expect.equals(f"ss while the FINs are acknowledged ({0.75 * rtt.milliseconds:g} ms after the close): "
                             "CLOSING on both ends", {CLIENT: "CLOSING", FAR: "CLOSING"}, during))
    run.expect(expect.equals("ss after: TIME-WAIT on both ends (only the active closer, after an ordinary close)",
                             {CLIENT: "TIME-WAIT", FAR: "TIME-WAIT"}, after))


@experiment(
    id="fin-wait-2-orphan-timeout",
    title="An orphaned FIN-WAIT-2 lasts tcp_fin_timeout; data that comes later is answered with an RST",
    section="§3.4.1",
    topology="book-lan.yaml",
    book="""\\
(§3.4.1: 连接停留在FIN_WAIT_2状态的情况可能发生在：客户端执行半关闭后，未等服务器关闭连接就强行退出了。此时
 客户端连接由内核来接管，可称之为孤儿连接 ... Linux为了防止孤儿连接长时间存留在内核中，定义了两个内核变量：
 /proc/sys/net/ipv4/tcp_max_orphans 和 /proc/sys/net/ipv4/tcp_fin_timeout.)""",
    modern="""Unchanged on 6.x; tcp_fin_timeout is per network namespace (60 s by default; set to
    fin_timeout on the client here). The client closes and exits while the server keeps the
    connection open: the client's socket, an orphan, sits in FIN-WAIT-2 with a timer counting down
    from fin_timeout (ss -o shows it as timewait, and prints 1-10 s as e.g. 4.700ms, meaning 4.7 s),
    then is gone. Data the server sends after that finds no socket: the client's kernel answers
    [R] (no ACK flag).""",
)
def fin_wait_2_orphan_timeout(run: Run, port: int = 12460, fin_timeout: int = 4) -> None:
    if not 2 <= fin_timeout <= 30:
        raise InputError(f"-p fin_timeout={fin_timeout}: from 2 to 30 s")
    server_ip, client_ip = run.ip(SERVER), run.ip(CLIENT)
    run.sysctl(CLIENT, "net.ipv4.tcp_fin_timeout", fin_timeout)
    with run.capture([f"{CLIENT}:eth0"], f"tcp port {port}"):
        server = run.serve(SERVER, "late_reply", server_ip, str(port), "--at", str(fin_timeout + 2.5))
        closed = run.now() + 0.5
        run.py(CLIENT, "close_at", server_ip, str(port), "--connect", "--at", f"{closed:.3f}")
        run.sleep(max(0.0, closed + 1.0 - time.time()))
        during = sstext.parse(run.sh(CLIENT, ["ss", "-tanoH", f"dport = :{port}"]).stdout)
        run.sleep(max(0.0, closed + fin_timeout + 1.0 - time.time()))
        after = sstext.parse(run.sh(CLIENT, ["ss", "-tanoH", f"dport = :{port}"]).stdout)
        server.wait(fin_timeout + 10)
    orphan = during[0] if during else None
    left = orphan.timer_left if orphan else None
    run.expect(expect.check(f"1 s after the close: FIN-WAIT-2, its timer below fin_timeout = {fin_timeout} s "
                            "(ss -o)", orphan is not None and orphan.state == "FIN-WAIT-2" and left is not None
                            and fin_timeout - 2 <= left <= fin_timeout, f"FIN-WAIT-2, timer ≤ {fin_timeout} s",
                            f"{orphan.state} timer {orphan.timer} {left}" if orphan else "no socket"))
    run.expect(expect.equals("after fin_timeout the socket is gone (ss)", [], [s.state for s in after]))
    conn = flows.conversation(run.packets, client_ip, server_ip, port)
    late = [p for p in expect.data(conn) if p.src == server_ip]
    answer = [flows.seg(p).flag_str for p in conn if p.src == client_ip and late and p.no > late[0].no]
    run.expect(expect.equals("the server's late data is answered with [R], no ACK flag: no socket is left",
                             ["R"], answer[:1]))
