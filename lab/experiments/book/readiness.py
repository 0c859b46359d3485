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
