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

# Only the programs whose experiments follow a reader's program are here. testaccept (5-5), oob_send and
# oob_recv (5-6/5-7), setsendbuffer and setrecvbuffer (5-10/5-11) are not yet: their experiments read lines
# only the project's programs print and pass options the book's listings do not take (issue 26's notes).

CONTRACTS: dict[str, Contract] = {c.program: c for c in (
    Contract("testlisten", "5-3", "IP PORT BACKLOG", "--duration S", LISTEN, 1,
             "the kernel only: ss -ltn of the listener (Recv-Q, Send-Q), ss of the queued connections, the "
             "SYNs and SYN-ACKs captured, nstat's ListenOverflows; nothing it prints"),
)}
