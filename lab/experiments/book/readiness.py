"""Ch.9 I/O multiplexing: what epoll reports, and when, decided from the system calls the server made.

Each server runs under strace (``run.strace``): the number of ``epoll_wait`` returns that name a
connection, and what each ``recvfrom`` on it returned, are the kernel's answers; the lines the server
prints are the book's, shown beside them.
"""

from __future__ import annotations

import math

from lab.errors import InputError
from lab.experiments import expect, syscalls
from lab.experiments.book import flows
from lab.experiments.context import Run
from lab.experiments.engine import experiment

CLIENT, SERVER = "kongming20", "ernest-laptop"
TRACED = ("epoll_wait", "accept4", "recvfrom")


def on_fd(calls: list[syscalls.Syscall], fd: int) -> list[syscalls.Syscall]:
    """The ``recvfrom`` calls on ``fd``."""
    return [c for c in syscalls.named(calls, "recvfrom") if c.args.split(",")[0].strip() == str(fd)]


@experiment(
    id="epoll-lt-et",
    title="epoll: level-triggered reports unread data again and again; edge-triggered only when more arrives",
    section="§9.3.3",
    topology="book-lan.yaml",
    needs={"strace"},
    book="""\\
$ ./mtlt 192.168.1.109 12345          (LT: lt(); one recv of BUFFER_SIZE - 1 = 9 bytes per event)
event trigger once
get 9 bytes of content: 000000000
event trigger once
get 9 bytes of content: 000000000
...                                   (once per 9 bytes while data is left)
$ ./mtlt 192.168.1.109 12345          (ET: et(); the event is read to EAGAIN)
event trigger once
get 9 bytes of content: 000000000
get 9 bytes of content: 000000000
...
read later""",
    modern="""Unchanged on 6.x. In LT mode epoll_wait returns the connection as long as its receive
    queue holds data, so a server that reads one chunk per event gets ⌈size/chunk⌉ events for one
    segment, and one more for the FIN (recv returns 0). In ET mode the connection is reported
    when data arrives: the server must read until recv fails EAGAIN, and the FIN is a second
    event. Counted here from strace's epoll_wait and recvfrom records of the server, not from
    its printout. The book's listing registers the listening socket ET in both modes, as here.""",
)
def epoll_lt_et(run: Run, port: int = 12345, size: int = 100, chunk: int = 9) -> None:
    if not 1 <= size <= 1400 or chunk < 1:
        raise InputError(f"-p size={size} -p chunk={chunk}: size must fit one segment (1..1400), chunk ≥ 1")
    server_ip, client_ip = run.ip(SERVER), run.ip(CLIENT)
    reads = math.ceil(size / chunk)
    traces = {}
    with run.capture([f"{SERVER}:eth0"], f"tcp portrange {port}-{port + 1}"):
        for offset, mode in enumerate(("lt", "et")):
            prefix, trace = run.strace(SERVER, TRACED)
            server = run.spawn(SERVER, [*prefix, run.python(SERVER), "-m", "lab.servers.mtlt", server_ip,
                                        str(port + offset), "--mode", mode, "--chunk", str(chunk), "--duration", "30"],
                               title=f"mtlt {server_ip} {port + offset} --mode {mode} --chunk {chunk} (strace)",
                               ready="listening on")
            run.py(CLIENT, "send_once", server_ip, str(port + offset), "--bytes", str(size), "--hold", "1")
            server.wait(15)
            traces[mode] = (run.syscalls(SERVER, trace), server.stdout)
    for offset, (mode, (calls, printed)) in enumerate(traces.items()):
        tag = mode.upper()
        conn = flows.conversation(run.packets, client_ip, server_ip, port + offset)
        data = expect.data([p for p in conn if p.src == client_ip])
        run.expect(expect.check(f"{tag}: the client's {size} bytes came in one segment (so the counts below are "
                                "epoll's, not segmentation's)", len(data) == 1 and flows.seg(data[0]).length == size,
                                f"1 segment of {size} bytes", f"{len(data)}: {[flows.seg(p).length for p in data]}",
                                data))
        accepted = [c.ret for c in syscalls.named(calls, "accept4") if c.ret is not None and c.ret >= 0]
        if not accepted:
            run.expect(expect.error(f"{tag}: the server's accept4", "not in its trace"))
            continue
        fd = accepted[0]
        events = [c for c in syscalls.named(calls, "epoll_wait") if (c.ret or 0) > 0 and fd in syscalls.epoll_fds(c)]
        got = on_fd(calls, fd)
        returns = [c.errno or c.ret for c in got]
        chunks: list[int | str | None] = [min(chunk, size - i) for i in range(0, size, chunk)]
        if mode == "lt":
            run.expect(expect.equals(f"LT: epoll_wait reports the connection ⌈{size}/{chunk}⌉ + 1 = {reads + 1} times "
                                     "(the +1 is the EOF)", reads + 1, len(events)))
            run.expect(expect.equals("LT: one recvfrom per event: each a chunk, the last 0 (EOF)", [*chunks, 0],
                                     returns))
        else:
            run.expect(expect.equals("ET: epoll_wait reports the connection 2 times (the data, then the EOF)", 2,
                                     len(events)))
            run.expect(expect.equals(f"ET: the first event is read to EAGAIN ({reads} chunks, then EAGAIN); the "
                                     "second reads 0 (EOF)", [*chunks, "EAGAIN", 0], returns))
        run.note(f"{tag}: the server printed 'event trigger once' {printed.count('event trigger once')} times; "
                 f"strace: {len(events)} epoll_wait returns naming fd {fd}, recvfrom returned {returns}")


CASES = {"listening": "a listening port", "closed": "a closed port", "silent": "a port whose SYNs are dropped"}


@experiment(
    id="nonblocking-connect",
    title="Non-blocking connect: EINPROGRESS at once, then select() says writable and SO_ERROR says how",
    section="§9.5",
    topology="book-lan.yaml",
    needs={"strace"},
    book="""\\
$ ./unblockconnect 192.168.1.109 12345
(代码清单9-5: connect() on a non-blocking socket returns -1 with errno EINPROGRESS ("the connection
 cannot be completed immediately"); select() on the socket for writing; when it is writable,
 getsockopt(SO_ERROR) tells whether the connection was made: 0 success, else the error.
 "connect with server immediately" when connect returns 0.)""",
    modern="""Unchanged on 6.x, and the listing's "connected immediately" branch is never taken, even across
    a veth with a round trip of microseconds: connect always returns EINPROGRESS. To a listening
    port the socket turns writable after the handshake and SO_ERROR is 0; to a closed port the
    kernel's RST makes it writable with SO_ERROR ECONNREFUSED (111); when the SYNs are dropped
    select() times out (returns 0) while the kernel retransmits the SYN, 1 s apart on 6.5+
    (tcp_syn_linear_timeouts). Decided from strace of the client and the capture.""",
)
def nonblocking_connect(run: Run, port: int = 12390, timeout: int = 3) -> None:
    if not 1 <= timeout <= 20:
        raise InputError(f"-p timeout={timeout}: from 1 to 20 s")
    server_ip, client_ip = run.ip(SERVER), run.ip(CLIENT)
    server = run.serve(SERVER, "discard", server_ip, str(port), "--duration", "120")
    run.drop(f"{SERVER}:eth0", f"tcp syn dport {port + 2}")
    seen = {}
    with run.capture([f"{CLIENT}:eth0"], f"tcp portrange {port}-{port + 2}"):
        for offset, case in enumerate(CASES):
            prefix, trace = run.strace(CLIENT, ("connect", "pselect6", "select", "getsockopt"))
            run.sh(CLIENT, [*prefix, run.python(CLIENT), "-m", "lab.servers.unblock_connect", server_ip,
                            str(port + offset), "--timeout", str(timeout)],
                   title=f"unblock_connect {server_ip} {port + offset} ({CASES[case]}, strace)", timeout=timeout + 20)
            seen[case] = run.syscalls(CLIENT, trace)
    server.stop()
    for offset, (case, calls) in enumerate(seen.items()):
        connects = syscalls.named(calls, "connect")
        selects = syscalls.named(calls, "pselect6", "select")
        errors = [c.args.split("[")[1].split("]")[0] for c in syscalls.named(calls, "getsockopt")
                  if "SO_ERROR" in c.args]
        run.expect(expect.equals(f"{CASES[case]}: connect returns -1 EINPROGRESS at once", "EINPROGRESS",
                                 connects[0].errno if connects else "no connect in the trace"))
        conn = flows.conversation(run.packets, client_ip, server_ip, port + offset)
        syns = [p for p in expect.syns(conn) if p.src == client_ip]
        if case == "silent":
            run.expect(expect.equals(f"{CASES[case]}: select() times out after {timeout} s (returns 0)", 0,
                                     selects[0].ret if selects else None))
            run.expect(expect.check(f"{CASES[case]}: the kernel retransmits the SYN meanwhile (same seq), no answer",
                                    len(syns) >= 2 and len({flows.seg(p).seq for p in syns}) == 1
                                    and not [p for p in conn if p.src == server_ip], "≥ 2 SYNs, one seq, no reply",
                                    f"{len(syns)} SYNs", syns))
            continue
        want = "0" if case == "listening" else "ECONNREFUSED"
        run.expect(expect.equals(f"{CASES[case]}: select() reports it writable, SO_ERROR {want}", [1, want],
                                 [selects[0].ret if selects else None, errors[0] if errors else None]))
        answer = "S." if case == "listening" else "R."
        replies = [flows.seg(p).flag_str for p in conn if p.src == server_ip]
        run.expect(expect.check(f"{CASES[case]}: the capture shows the SYN answered with [{answer}]",
                                bool(syns) and replies[:1] == [answer], f"S, then {answer}", replies[:2], conn[:3]))
