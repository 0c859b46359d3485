"""Ch.9 I/O multiplexing: what epoll reports, and when, decided from the system calls the server made.

Each server runs under strace (``run.strace``): the number of ``epoll_wait`` returns that name a
connection, and what each ``recvfrom`` on it returned, are the kernel's answers; the lines the server
prints are the book's, shown beside them.
"""

from __future__ import annotations

import math

from lab.errors import InputError
from lab.experiments import expect, syscalls
from lab.experiments.book import flows, sstext
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


@experiment(
    id="so-rcvlowat-readiness",
    title="SO_RCVLOWAT: a socket is readable only once the low-water mark is queued; SO_SNDLOWAT cannot be set",
    section="§5.11.3, §9.1.2",
    topology="book-lan.yaml",
    needs={"strace"},
    book="""\\
(§5.11.3: SO_RCVLOWAT和SO_SNDLOWAT选项分别表示TCP接收缓冲区和发送缓冲区的低水位标记。它们一般被I/O复用系统
 调用（见第9章）用来判断socket是否可读或可写 ... 默认情况下，TCP接收缓冲区的低水位标记和TCP发送缓冲区的
 低水位标记均为1字节. §9.1.2: socket内核接收缓存区中的字节数大于或等于其低水位标记SO_RCVLOWAT ... 可读.)""",
    modern="""SO_RCVLOWAT works as the book says on 6.x: with a mark of lowat bytes, epoll does not report
    the socket while fewer are queued (ss shows them waiting in Recv-Q), and reports it once the
    rest arrives. SO_SNDLOWAT, which the book lists as settable, is not on Linux: setsockopt fails
    ENOPROTOOPT (92) and the send mark stays 1. Decided from strace -T of the server (how long its
    epoll_wait waited, what recv returned) and ss.""",
)
def so_rcvlowat_readiness(run: Run, port: int = 12465, lowat: int = 100, first: int = 60) -> None:
    if not 1 <= first < lowat <= 1400:
        raise InputError(f"-p first={first} -p lowat={lowat}: 1 ≤ first < lowat ≤ 1400")
    server_ip = run.ip(SERVER)
    prefix, trace = run.strace(SERVER, ("epoll_wait", "recvfrom", "setsockopt"))
    server = run.spawn(SERVER, [*prefix, run.python(SERVER), "-m", "lab.servers.lowat_reader", server_ip, str(port),
                                "--lowat", str(lowat)], title=f"lowat_reader --lowat {lowat} (strace)",
                       ready="listening on")
    client = run.start(CLIENT, "rst_client", server_ip, str(port), "--step", "0:send:" + "x" * first,
                       "--step", "1.0:send:" + "y" * (lowat - first), "--step", "2.0:close")
    run.sleep(0.6)
    waiting = sstext.parse(run.sh(SERVER, ["ss", "-tanH", f"sport = :{port}"]).stdout)
    server.wait(15)
    client.wait(10)
    calls = run.syscalls(SERVER, trace)
    queued = [s.recv_q for s in waiting if s.state == "ESTAB"]
    run.expect(expect.equals(f"0.6 s in, {first} bytes wait in the receive queue (ss Recv-Q)", [first], queued))
    waits = [c for c in syscalls.named(calls, "epoll_wait") if (c.ret or 0) > 0]
    spent = waits[0].seconds if waits and waits[0].seconds is not None else None
    run.expect(expect.within(f"epoll_wait reports the socket only when the other {lowat - first} bytes come, "
                             "1 s later (strace -T: the time it waited)", spent, low=0.8, high=1.5))
    got = [c.ret for c in syscalls.named(calls, "recvfrom")]
    run.expect(expect.equals(f"the read then takes all {lowat} bytes", lowat, got[0] if got else None))
    sndlowat = [c for c in syscalls.named(calls, "setsockopt") if "SO_SNDLOWAT" in c.args]
    run.expect(expect.equals("setsockopt(SO_SNDLOWAT) fails ENOPROTOOPT on Linux (strace)", "ENOPROTOOPT",
                             sndlowat[0].errno if sndlowat else "no such setsockopt in the trace"))


@experiment(
    id="epoll-oneshot",
    title="EPOLLONESHOT: one event per connection until it is re-armed; without it a second thread takes the "
          "same socket",
    section="§9.3.4",
    topology="book-lan.yaml",
    needs={"strace"},
    book="""\\
$ ./oneshot 192.168.1.109 12345          (代码清单9-4)
start new thread to receive data on fd: 5
get content: ...
(§9.3.4: 即使我们使用ET模式，一个socket上的某个事件还是可能被触发多次 ... 比如一个线程在读取完某个socket上的
 数据后开始处理这些数据，而在数据的处理过程中该socket上又有新数据可读（EPOLLIN再次被触发），此时另外一个线程
 被唤醒来读取这些新的数据。于是就出现了两个线程同时操作一个socket的局面 ... EPOLLONESHOT ...)""",
    modern="""As the book says, on 6.x: in ET mode each segment that arrives raises a new event for the
    connection, so without EPOLLONESHOT the sends of one client start `sends` workers on one socket
    while the first is still busy. With EPOLLONESHOT the socket is reported once; the data that
    comes meanwhile waits in the receive queue, and when the worker re-arms it (EPOLL_CTL_MOD) the
    next epoll_wait returns at once, because MOD re-evaluates readiness even in ET mode. Decided from
    strace -f of the server (epoll_wait returns, epoll_ctl, the worker threads' clone3, what each
    recvfrom returned).""",
)
def epoll_oneshot(run: Run, port: int = 12475, sends: int = 3, gap: float = 0.3, hold: float = 1.0) -> None:
    if not (2 <= sends <= 10 and 0.1 <= gap and hold > gap * (sends - 1)):
        raise InputError(f"-p sends={sends} gap={gap} hold={hold}: 2..10 sends, and a worker busy (hold) "
                         "longer than the sends take")
    server_ip = run.ip(SERVER)
    seen = {}
    for offset, oneshot in enumerate((False, True)):
        prefix, trace = run.strace(SERVER, ("epoll_wait", "epoll_ctl", "clone3", "clone", "accept4", "recvfrom"))
        server = run.spawn(SERVER, [*prefix, run.python(SERVER), "-m", "lab.servers.oneshot", server_ip,
                                    str(port + offset), "--hold", f"{hold:g}", "--duration", "20",
                                    *(["--oneshot"] if oneshot else [])],
                           title=f"oneshot{' --oneshot' if oneshot else ''} (strace -f)", ready="listening on")
        run.py(CLIENT, "send_once", server_ip, str(port + offset), "--bytes", "100", "--times", str(sends), "--gap",
               f"{gap:g}", "--hold", f"{hold * (sends + 1):g}")
        server.wait(30)
        seen[oneshot] = run.syscalls(SERVER, trace)
    for oneshot, calls in seen.items():
        accepted = [c.ret for c in syscalls.named(calls, "accept4") if c.ret is not None and c.ret >= 0]
        fd = accepted[0] if accepted else -1
        events = [c for c in syscalls.named(calls, "epoll_wait") if (c.ret or 0) > 0 and fd in syscalls.epoll_fds(c)]
        eofs = [c for c in on_fd(calls, fd) if c.ret == 0]
        workers = syscalls.named(calls, "clone3", "clone")
        data_events = len(events) - len(eofs)
        if not oneshot:
            run.expect(expect.equals(f"without EPOLLONESHOT: one event per arriving segment, {sends} for {sends} "
                                     "sends, each a new worker thread on the same socket", [sends, sends + 1],
                                     [data_events, len(workers)]))
        else:
            rearms = [c for c in syscalls.named(calls, "epoll_ctl") if "EPOLL_CTL_MOD" in c.args]
            run.expect(expect.equals("with EPOLLONESHOT: the sends that come while a worker is busy raise no event: "
                                     "2 data events (the first, and the rest after the re-arm)", 2, data_events))
            second = events[1].ended if len(events) > 1 else None
            mod = rearms[0].at if rearms else None
            late = second - mod if second is not None and mod is not None else None
            run.expect(expect.within("after EPOLL_CTL_MOD with data pending, epoll_wait reports the socket at once "
                                     "(strace -ttt -T: seconds from the MOD to the event)", late, low=-0.01, high=0.1))
