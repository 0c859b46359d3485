"""§9.1.3 and §10.5.3: urgent data noticed by select()'s exceptfds (listing 9-1) or by SIGURG (10-3).

The sender is 5-6's (``123``, ``abc`` with MSG_OOB, ``123``); the receivers are the listings', traced:
strace shows what select returned, the SIGURG the kernel delivered and to which process, and each
recv's result; the capture shows the one urgent segment.
"""

from __future__ import annotations

import re

from lab.experiments import expect, syscalls
from lab.experiments.book import flows
from lab.experiments.context import Run
from lab.experiments.engine import experiment

CLIENT, SERVER = "kongming20", "ernest-laptop"
WAYS = ("select", "sigurg", "oobinline")


def received(calls: list[syscalls.Syscall], oob: bool) -> list[str]:
    """What the recvfrom calls with (or without) MSG_OOB returned: the data, or the errno."""
    out = []
    for c in syscalls.named(calls, "recvfrom"):
        if ("MSG_OOB" in c.args) == oob:
            data = re.match(r'\d+, "([^"]*)"', c.args)
            out.append(c.errno or (data.group(1) if data and (c.ret or 0) > 0 else ""))
    return [item for item in out if item]


@experiment(
    id="oob-select-and-sigurg",
    title="Urgent data noticed: select() puts the socket in exceptfds, F_SETOWN makes the kernel send SIGURG; "
          "with SO_OOBINLINE recv(MSG_OOB) fails EINVAL",
    section="§9.1.3, §10.5.3",
    topology="book-lan.yaml",
    needs={"strace"},
    book="""\\
$ ./select_oob 192.168.1.109 12345        (代码清单9-1: select( connfd + 1, &read_fds, NULL,
get 3 bytes of normal data: 123             &exception_fds, NULL ); … else if( FD_ISSET( connfd,
get 2 bytes of normal data: ab              &exception_fds ) ) ret = recv( connfd, buf, …, MSG_OOB );)
get 1 bytes of oob data: c
get 3 bytes of normal data: 123
$ ./sigurg 192.168.1.109 12345            (代码清单10-3: fcntl( connfd, F_SETOWN, getpid() );
                                            sig_urg: recv( connfd, buffer, BUF_SIZE-1, MSG_OOB ))""",
    modern="""As the book, on 6.x. 5-6's MSG_OOB send of "abc" makes one segment [P.U] with urg 3: only
    'c' is urgent. select() reports the socket in exceptfds once it arrives, and recv(MSG_OOB)
    returns 'c'; the normal reads stop at the urgent mark, so 123, ab and 123 never run together.
    With F_SETOWN naming the process, the kernel delivers SIGURG to that pid when the urgent segment
    arrives (strace: --- SIGURG ---) and the handler's recv(MSG_OOB) gets 'c'. One published copy of
    9-1 sets SO_OOBINLINE: then the urgent byte stays in the stream (the normal reads carry all nine
    bytes), SIGURG still comes, and recv(MSG_OOB) fails EINVAL (22).""",
)
def oob_select_and_sigurg(run: Run, port: int = 12530) -> None:
    server_ip, client_ip = run.ip(SERVER), run.ip(CLIENT)
    traces = {}
    with run.capture([f"{CLIENT}:eth0"], f"tcp portrange {port}-{port + 2}"):
        for offset, way in enumerate(WAYS):
            prefix, trace = run.strace(SERVER, ("recvfrom", "select", "pselect6", "fcntl"), signals=("SIGURG",))
            args = ["--via", "select"] if way == "select" else ["--via", "sigurg"]
            args += ["--oobinline"] if way == "oobinline" else []
            server = run.spawn(SERVER, [*prefix, run.python(SERVER), "-m", "lab.servers.oob_watch", server_ip,
                                        str(port + offset), *args],
                               title=f"oob_watch {server_ip} {port + offset} {' '.join(args)} (strace)",
                               ready="listening on")
            run.py(CLIENT, "oob_send", server_ip, str(port + offset), "--pause", "0.5")  # each read its own
            server.wait(15)
            traces[way] = run.syscalls(SERVER, trace)
    urgent = [p for p in expect.data([p for p in run.packets if p.src == client_ip]) if flows.seg(p).urg]
    run.expect(expect.check("each sender's MSG_OOB send is one [P.U] segment with urg 3 (only 'c' is urgent)",
                            len(urgent) == 3 and all(flows.seg(p).urg == 3 and flows.seg(p).payload == b"abc"
                                                     for p in urgent),
                            "3 segments (one per receiver): 'abc', urg 3",
                            [(flows.seg(p).payload, flows.seg(p).urg) for p in urgent], urgent))
    chosen = traces["select"]
    flagged = [c for c in syscalls.named(chosen, "select", "pselect6") if "except [" in c.after]
    run.expect(expect.check("select: the socket is reported in exceptfds (strace: `= 1 (except [fd])`)",
                            bool(flagged), "except [fd]", flagged[0].after if flagged else "never"))
    for way in ("select", "sigurg"):
        run.expect(expect.equals(f"{way}: recv(MSG_OOB) returns the urgent byte", ["c"], received(traces[way], True)))
        run.expect(expect.equals(f"{way}: the normal reads stop at the urgent mark: 123, ab, 123", ["123", "ab", "123"],
                                 received(traces[way], False)))
    owner = next((c for c in syscalls.named(traces["sigurg"], "fcntl") if "F_SETOWN" in c.args), None)
    sigurg = syscalls.named(traces["sigurg"], "SIGURG")
    run.expect(expect.check("sigurg: the kernel delivers SIGURG to the pid F_SETOWN named (strace)",
                            owner is not None and bool(sigurg) and all(str(s.pid) == owner.args.split(",")[-1].strip()
                                                                       for s in sigurg),
                            f"SIGURG to pid {owner.args.split(',')[-1].strip() if owner else '?'}",
                            [f"SIGURG to {s.pid}" for s in sigurg] or "no SIGURG"))
    inline = traces["oobinline"]
    run.expect(expect.check("SO_OOBINLINE: SIGURG still comes, and recv(MSG_OOB) fails EINVAL (22)",
                            bool(syscalls.named(inline, "SIGURG")) and received(inline, True) == ["EINVAL"],
                            "SIGURG, then EINVAL", f"{len(syscalls.named(inline, 'SIGURG'))} SIGURG, "
                            f"MSG_OOB gave {received(inline, True)}"))
    run.expect(expect.equals("SO_OOBINLINE: the urgent byte stays in the stream: the normal reads carry all nine bytes",
                             "123abc123", "".join(received(inline, False))))
