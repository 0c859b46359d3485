"""What an experiment asks of a program it runs, so that a reader's own program can stand in for it.

``lab run ID --use testlisten=./testlisten.c`` runs the reader's program wherever the experiment
runs the project's ``testlisten``. The contract says what argv it gets (the book listing's, as the book
runs it: ``./testlisten 192.168.1.109 12345 5``; the options the project's own program also gets are not
passed, so a book-faithful ``if (argc != 4)`` holds), how lab sees that the
program is ready (a LISTEN socket in the kernel, never a printed line), and what the checks read from
it: facts the kernel shows by default; a line of its stdout only where named here (the book's own
printf), and a claim that reads one is weak and says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Contract:
    program: str
    listing: str
    argv: str  # the book listing's argv, as the experiments pass it
    options: str  # what follows it for the project's own program; a reader's program gets the book's argv only
    ready: str  # how lab sees that the program is ready
    listen_port_arg: int | None  # index (0-based, after the program's name) of the port it listens on
    reads: str  # what the checks read from it
    stdout: tuple[str, ...] = ()  # stdout lines a check reads (the book's printf)

    def to_dict(self) -> dict[str, object]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


LISTEN = "a LISTEN socket on PORT in the node's namespace (ss), not a printed line"


CONTRACTS: dict[str, Contract] = {c.program: c for c in (
    Contract("testlisten", "5-3", "IP PORT BACKLOG", "--duration S", LISTEN, 1,
             "the kernel only: ss -ltn of the listener (Recv-Q, Send-Q), ss of the queued connections, the "
             "SYNs and SYN-ACKs captured, nstat's ListenOverflows; nothing it prints"),
    Contract("testaccept", "5-5", "IP PORT", "--sleep S --hold S", LISTEN, 1,
             "the kernel: the queued connection's state before its accept() (ss), the accept() as the listener's "
             "queue emptying (ss -ltn Recv-Q), the client's FIN and its ACK; and its stdout line naming the peer "
             "(a weak claim). When it accepts before the client vanished (the published 5-5 has no sleep), those "
             "claims are not judged", ("connected with ip: IP and port: PORT",)),
    Contract("oob_send", "5-6", "IP PORT", "--normal TEXT --oob TEXT", "none: a client; it runs to its end", None,
             "the packets it sent: its data before, in and after the one segment with URG, the urgent pointer"),
    Contract("oob_recv", "5-7", "IP PORT", "--wait S", LISTEN, 1,
             "its three stdout lines, the book's printf (a weak claim; the packets decide the rest). The book's "
             "5-7 reads as soon as it accepts, which races the sender: lab pauses it (SIGSTOP in its sandbox) "
             "from listening until the sender is done",
             ("got N bytes of normal data 'DATA'", "got N bytes of oob data 'DATA'")),
    Contract("setsendbuffer", "5-10", "IP PORT SNDBUF", "--bytes N", "none: a client; it runs to its end", None,
             "its stdout line, the value it read back (a weak claim: the kernel decides it, the program reports "
             "it); the packets: its data segments' sizes against the receiver's window, every byte it sent "
             "acknowledged", ("the tcp send buffer size after setting is N",)),
    Contract("setrecvbuffer", "5-11", "IP PORT RCVBUF", "", LISTEN, 1,
             "its stdout line, the value it read back (a weak claim; the book's own says \"settting\"); the "
             "packets: its SYN-ACK's window and scale, every byte the sender sent acknowledged",
             ("the receive buffer size after set(t)ting is N",)),
)}
