"""§3.3: the three-way handshake and the close, TIME_WAIT, and a connect to a closed port (RST)."""

from __future__ import annotations

import re

from lab.experiments import expect
from lab.experiments.context import Run
from lab.experiments.engine import experiment

CLIENT, SERVER = "kongming20", "ernest-laptop"


@experiment(
    id="tcp-handshake-close",
    title="Three-way handshake and close; the active closer holds TIME_WAIT",
    section="§3.3.1",
    topology="book-lan.yaml",
    topology6="book-lan6.yaml",
    params={"family": 4, "port": 7},
    book="""\
IP 192.168.1.109.58210 > 192.168.1.108.7: Flags [S], seq 3499889100, win 14600, length 0
IP 192.168.1.108.7 > 192.168.1.109.58210: Flags [S.], seq 2484101219, ack 3499889101, win 14480, length 0
IP 192.168.1.109.58210 > 192.168.1.108.7: Flags [.], ack 1, win 229, length 0
IP 192.168.1.109.58210 > 192.168.1.108.7: Flags [F.], seq 1, ack 1, win 229, length 0
IP 192.168.1.108.7 > 192.168.1.109.58210: Flags [.], ack 2, win 227, length 0
IP 192.168.1.108.7 > 192.168.1.109.58210: Flags [F.], seq 1, ack 2, win 227, length 0
IP 192.168.1.109.58210 > 192.168.1.108.7: Flags [.], ack 2, win 229, length 0""",
    modern="""The handshake is the book's. The close takes 3 segments, not 4, when the server
    closes as soon as it reads EOF: its ACK of the client's FIN is delayed (delayed ACK) and
    rides on its own FIN. TIME_WAIT lasts TCP_TIMEWAIT_LEN = 60 s, fixed in the kernel;
    tcp_fin_timeout governs FIN_WAIT_2, not TIME_WAIT.
    Over IPv6 (-p family=6, on book-lan6) the exchange and TIME_WAIT are the same.""",
)
def handshake_close(run: Run) -> None:
    server_ip = run.ip(SERVER)
    run.serve(SERVER, "echo", server_ip, str(run.p.port))
    with run.capture([f"{CLIENT}:eth0"], f"tcp port {run.p.port}"):
        r = run.py(CLIENT, "connect_timer", server_ip, str(run.p.port), "--hold", "0.2")
        run.sleep(0.5)
    host = f"[{server_ip}]" if ":" in server_ip else server_ip  # ss reads an IPv6 host in brackets
    tw = run.sh(CLIENT, ["ss", "-tanoH", "state", "time-wait", "dst", host])
    run.expect(expect.output_contains("the client connected", r.stdout, "connected"))

    pk = run.packets
    syn, synack = expect.syns(pk), expect.synacks(pk)
    server_isn = synack[0].tcp.seq if synack and synack[0].tcp else None
    acks = [p for p in expect.tcp(pk, flags=".")
            if p.tcp and not p.tcp.payload and server_isn is not None and p.tcp.ack == server_isn + 1]
    run.expect(expect.count("exactly one SYN", syn, 1))
    run.expect(expect.count("exactly one SYN-ACK", synack, 1))
    if syn and synack:
        s, sa = syn[0].tcp, synack[0].tcp
        assert s is not None and sa is not None
        run.expect(expect.equals("the SYN-ACK acknowledges the client's ISN + 1", s.seq + 1, sa.ack,
                                 [syn[0].no, synack[0].no]))
        run.expect(expect.check("the third segment is a bare ACK of the server's ISN + 1", bool(acks),
                                f"ack {sa.seq + 1}", f"{len(acks)} such ACKs", [p.no for p in acks[:1]]))
    else:  # a missing packet is an error, not a claim left out
        run.expect(expect.error("the handshake's sequence numbers", "no SYN and SYN-ACK pair in the capture"))
    fins = expect.once_each(expect.fins(pk))  # a FIN sent again (its ACK lost or late) is still one FIN
    first_fin = fins[0].no if fins else None
    closing = expect.once_each([p for p in pk if first_fin is not None and p.no >= first_fin])
    run.expect(expect.count("the close takes 3 or 4 segments (FIN, [ACK,] FIN, ACK), a retransmission counted "
                            "once", closing, range(3, 5)))
    run.expect(expect.count("one FIN from each side", fins, 2))
    timers = [int(m) for m in re.findall(r"timewait,(\d+)(?:sec|ms)", tw.stdout)]
    run.expect(expect.check("the client (active closer) is in TIME-WAIT with a timer of at most 60 s",
                            bool(timers) and max(timers) <= 60, "TIME-WAIT, timer <= 60 s",
                            tw.stdout.strip() or "no TIME-WAIT socket"))


@experiment(
    id="rst-closed-port",
    title="A SYN to a port nobody listens on is answered with RST",
    section="§3.5.1",
    topology="book-lan.yaml",
    topology6="book-lan6.yaml",
    params={"family": 4, "port": 54321},
    book="""\
IP 127.0.0.1.41450 > 127.0.0.1.54321: Flags [S], seq 1355179469, win 32792, length 0
IP 127.0.0.1.54321 > 127.0.0.1.41450: Flags [R.], seq 0, ack 1355179470, win 0, length 0
Trying 127.0.0.1...
telnet: Unable to connect to remote host: Connection refused""",
    modern="""Identical on 6.x: one RST|ACK, seq 0, ack = ISN + 1, window 0, no options; ECONNREFUSED.
    Over IPv6 (-p family=6, on book-lan6) the reset is the same.""",
)
def rst_closed_port(run: Run) -> None:
    server_ip = run.ip(SERVER)
    with run.capture([f"{CLIENT}:eth0"], f"tcp port {run.p.port}"):
        r = run.py(CLIENT, "connect_timer", server_ip, str(run.p.port))
    pk = run.packets
    syn, rst = expect.syns(pk), expect.rsts(pk)
    run.expect(expect.count("exactly one SYN", syn, 1))
    run.expect(expect.count("exactly one RST", rst, 1))
    if syn and rst:
        s, rs = syn[0].tcp, rst[0].tcp
        assert s is not None and rs is not None
        nos = [syn[0].no, rst[0].no]
        run.expect(expect.equals("the reset's flags are RST|ACK", "R.", rs.flag_str, nos))
        run.expect(expect.equals("the reset's seq is 0", 0, rs.seq, nos))
        run.expect(expect.equals("the reset acknowledges ISN + 1", s.seq + 1, rs.ack, nos))
        run.expect(expect.equals("the reset's window is 0", 0, rs.window, nos))
        run.expect(expect.equals("the reset carries no options", [], rs.options, nos))
    else:  # a missing packet is an error, not a claim left out
        run.expect(expect.error("the reset answers the SYN", "no SYN and RST pair in the capture"))
    run.expect(expect.errno("", "ECONNREFUSED", r.stdout))
