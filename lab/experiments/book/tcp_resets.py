"""§3.5: resets: SO_LINGER's abortive close, and a half-open connection met by its peer's RST.

The shared helpers (reading sysctls and ``ss``) are in :mod:`tcp_states`; every expected
number comes from the run's parameters or from what the node's kernel reports.
"""

from __future__ import annotations

import re

from lab.capture.records import Packet
from lab.experiments import expect
from lab.experiments.book import sstext
from lab.experiments.book.tcp_states import (
    CLIENT,
    SERVER,
    field,
    first_line,
    last_line,
    ss,
)
from lab.experiments.context import Run
from lab.experiments.engine import experiment

# ---------------------------------------------------------------- 14 rst_linger_abort


@experiment(
    id="rst-linger-abort",
    title="SO_LINGER {1, 0}: close() aborts with an RST and drops the data; {1, T}: waits T s, returns 0",
    section="§3.5.2, §5.11.4",
    topology="book-lan.yaml",
    topology6="book-lan6.yaml",
    params={"family": 4, "port": 6000, "bytes": 100000, "rcvbuf": 2048, "linger": 0},
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
    doubled by the kernel and, set before connect, also drops the window scale to 0.
    Over IPv6 (-p family=6, on book-lan6) the same.""",
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
    run.expect(expect.count("exactly one RST", rsts, 1))
    run.expect(expect.count("no FIN from the server", [p for p in from_server if p.tcp and p.tcp.is_fin], 0))
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
    else:  # a missing packet is an error, not a claim left out
        run.expect(expect.error("the RST's fields", "no RST in the capture"))
    run.expect(expect.errno("the reader's recv() fails with ECONNRESET", "ECONNRESET", out))
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
    run.expect(expect.count("no RST: nothing is discarded", rsts, 0))
    fins = [p for p in from_server if p.tcp and p.tcp.is_fin]
    run.expect(expect.count("the server's FIN follows its data once the reader reads", fins, 1))
    run.expect(expect.output_contains(f"the reader gets all {written} bytes written, then EOF", out,
                                      f"received {written} bytes eof"))


# ---------------------------------------------------------------- 15 rst_half_open


@experiment(
    id="rst-half-open",
    title="A half-open connection: data to a rebooted peer is answered with a bare RST",
    section="§3.5.3",
    topology="book-lan.yaml",
    topology6="book-lan6.yaml",
    params={"family": 4, "port": 12345, "message": "a\\r\\n", "send_at": 2.5},
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
    the emulation, each a command through a machine's engine when the lab is spread over a cluster.
    Over IPv6 (-p family=6, on book-lan6) the same.""",
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
        t0 = run.clock()
        run.link(f"{CLIENT}:eth0", up=False)
        server.stop()
        _, before = ss(run, SERVER, "state", "all", f"( sport = :{port} )", title="ss: the server's socket after kill")
        kill = run.sh(SERVER, ["ss", "-K", "-tan", f"( sport = :{port} )"], title="ss -K: the server 'reboots'")
        _, after = ss(run, SERVER, "state", "all", f"( sport = :{port} )", title="ss: after ss -K")
        run.link(f"{CLIENT}:eth0", up=True)
        ready_in = run.clock() - t0
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
    run.expect(expect.count("the server's FIN never reached the client",
                            [p for p in expect.fins(pk) if p.src == server_ip], 0))
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
    run.expect(expect.errno("the next recv() fails with ECONNRESET", "ECONNRESET", recv))
    run.expect(expect.errno("the send() after it fails with EPIPE", "EPIPE", send_after[0] if send_after else None))
