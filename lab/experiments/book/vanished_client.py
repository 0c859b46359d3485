"""§5.5 accept(): it takes whatever is queued, a client whose cable was pulled or one that already exited.

The experiment follows the program that accepts. The project's ``testaccept`` sleeps ``-p sleep``
seconds and then holds the accepted socket, so ss shows its state. A reader's program (``--use
testaccept=…``) does what it does: the book as printed sleeps 20 s before accept() and closes at once; the
author's published 5-5 has no sleep at all. So for a reader's program lab sees its accept() in the
kernel (the listener's accept queue empties), reads the queued connection's state *before* that (the
socket accept() returns), and when the program accepted before the client could vanish, says that
those claims cannot be judged instead of failing them.
"""

from __future__ import annotations

import re

from lab.errors import InputError
from lab.experiments import expect
from lab.experiments.book import flows, sockstate
from lab.experiments.book.socket_api import CLIENT, SERVER, queue_reaches, queued_on, show, ss
from lab.experiments.book.sockstate import port_of
from lab.experiments.book.sstext import SsSocket as Sock
from lab.experiments.context import Run
from lab.experiments.engine import experiment

YOURS_ACCEPT_WAIT = 30.0  # the printed book sleeps 20 s before accept(); a reader's program gets that and more


def accepted_by_kernel(run: Run, port: int, timeout: float) -> bool:
    """Whether the accept queue on ``port`` emptied (the program called accept()) within ``timeout``."""
    return queue_reaches(run, port, 0, timeout) == 0


@experiment(
    id="accept-vanished-client",
    title="accept() takes whatever is queued: a client whose cable was pulled, or one that already exited",
    section="§5.5",
    topology="book-lan.yaml",
    topology6="book-lan6.yaml",
    params={"family": 4, "port": 54321, "sleep": 2.0, "hold": 5.0},
    programs=("testaccept",),
    book="""\
$ ./testaccept 192.168.1.109 54321      (sleeps 20 s, then accepts)
$ telnet 192.168.1.109 54321            (from another host; then pull its network cable at once)
connected with ip:192.168.1.108 and port:38545
$ netstat -nt | grep 54321
tcp 0 0 192.168.1.109:54321 192.168.1.108:38545 ESTABLISHED
(and when the client exits instead of losing its network, accept still succeeds and the
 connection is in CLOSE_WAIT)""",
    modern="""Unchanged on 6.x: accept() only takes a completed connection off the queue and does not
    look at its state. A client that lost its cable says nothing, so the accepted socket is
    ESTABLISHED; a client that exited sent a FIN, which the queued socket already acknowledged,
    so it is CLOSE-WAIT, and ss shows Recv-Q 1 (the FIN occupies one sequence number not yet
    read). The book's 20 s sleep is scaled down; the cable is pulled at the switch port, so the
    client's own NIC stays up. With a reader's testaccept (--use), its own sleep decides: lab reads
    the queued connection before its accept() and sees the accept() as the queue emptying; the
    author's published 5-5 accepts at once, before any client can vanish, so those claims are
    not judged.
    Over IPv6 (-p family=6, on book-lan6) the same.""",
)
def accept_vanished_client(run: Run) -> None:
    if run.p.sleep < 1.0:
        raise InputError(f"-p sleep={run.p.sleep}: the client must connect and vanish before accept()",
                         "use -p sleep=1 or more")
    yours = "testaccept" in run.uses
    server_ip, client_ip = run.ip(SERVER), run.ip(CLIENT)
    ports = {"pulled": run.p.port, "exited": run.p.port + 1}
    seen: dict[str, tuple[str, list[Sock], int | None, bool]] = {}
    with run.capture([f"{SERVER}:eth0"], f"tcp portrange {min(ports.values())}-{max(ports.values())}"):
        for case, port in ports.items():
            server = run.serve(SERVER, "testaccept", server_ip, str(port), "--sleep", str(run.p.sleep),
                               "--hold", str(run.p.hold))
            client = run.start(CLIENT, "connect_many", server_ip, str(port), "--count", "1", "--settle", "0.2",
                               "--hold", "60")
            if not client.wait_for("summary", 10):
                raise RuntimeError(f"the client did not connect: {client.stdout[-300:]}")
            found = re.search(r"local=\S+:(\d+) state=connected", client.stdout)
            if case == "pulled":
                run.link(f"{CLIENT}:eth0", up=False)
            else:
                client.stop()
                run.sleep(0.3)  # its FIN reaches the queued socket
            if yours:  # the connection accept() will take, as the kernel holds it; then the accept() itself
                in_time = queued_on(run, port) > 0
                socks = sockstate.on_port(ss(run, SERVER), port)
                accepted_by_kernel(run, port, YOURS_ACCEPT_WAIT)
                server.wait_for("connected with ip", 2)
            else:
                in_time = True
                accepted = server.wait_for("connected with ip", run.p.sleep + 10)
                socks = sockstate.on_port(ss(run, SERVER), port) if accepted else []
            if case == "pulled":
                run.link(f"{CLIENT}:eth0", up=True)
                client.stop()
            seen[case] = (server.stdout, socks, int(found.group(1)) if found else None, in_time)
            server.stop()
    for case, port in ports.items():
        out, socks, local, in_time = seen[case]
        if local is None:
            run.expect(expect.error(f"{case}: the client's connection", "connect_many did not connect"))
            continue
        claim = f"{case}: accept() succeeds and prints the client's address (its printf: a weak claim)"
        state, recv_q = ("ESTAB", 0) if case == "pulled" else ("CLOSE-WAIT", 1)
        held = (f"{case}: ss shows the connection accept() takes {state} with Recv-Q {recv_q}"
                + (" (queued, before its accept)" if yours else ""))
        if not in_time:
            why = ("your testaccept accepted before the client vanished (the published 5-5 has no sleep before "
                   "accept(); the printed book's sleep(20) is what these claims need)")
            run.expect(expect.unjudged(claim, why))
            run.expect(expect.unjudged(held, why))
        else:
            line = re.search(r"connected with ip: ?(\S+) and port: ?(\d+)", out)
            run.expect(expect.equals(claim, f"{client_ip}:{local}", f"{line.group(1)}:{line.group(2)}" if line else
                                     (out.strip().splitlines() or ["no output"])[-1]))
            mine = [s for s in socks if port_of(s.peer) == local]
            run.expect(expect.equals(held, f"{state} Recv-Q {recv_q}",
                                     f"{mine[0].state} Recv-Q {mine[0].recv_q}" if mine else show(socks)))
        conn = flows.conversation(run.packets, client_ip, server_ip, port)
        fins = [p for p in expect.fins(conn) if p.src == client_ip]
        if case == "exited":  # the pulled client said nothing; the capture shows its handshake only
            acked = [p for p in conn if fins and p.src == server_ip and p.no > fins[0].no
                     and flows.seg(p).ack == flows.seg(fins[0]).next_seq]
            run.expect(expect.check(f"{case}: the client's FIN arrived and the queued socket acknowledged it",
                                    bool(fins) and bool(acked), "FIN, then its ACK",
                                    f"{len(fins)} FIN, {len(acked)} ACK", fins[:1] + acked[:1]))
