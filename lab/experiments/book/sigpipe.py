"""§10.5.2 SIGPIPE: writing to a connection the peer closed; decided from the capture, strace and the exit status."""

from __future__ import annotations

from lab.experiments import expect, syscalls
from lab.experiments.book import flows
from lab.experiments.context import Run
from lab.experiments.engine import experiment

CLIENT, SERVER = "kongming20", "ernest-laptop"
MODES = ("default", "nosignal")


@experiment(
    id="sigpipe-peer-closed",
    title="SIGPIPE: the first write to a closed peer draws an RST, the second kills the writer (or fails EPIPE)",
    section="§10.5.2",
    topology="book-lan.yaml",
    needs={"strace"},
    book="""\\
(§10.5.2: 默认情况下，往一个读端关闭的管道或socket连接中写数据将引发SIGPIPE信号 ... SIGPIPE信号的默认
 行为是结束进程 ... 我们可以使用send函数的MSG_NOSIGNAL标志来禁止写操作触发SIGPIPE信号 ... 此时应该使用
 send函数反馈的errno值来判断管道或者socket连接的读端是否已经关闭.
 The study notes: 继续写将引起RST … 再写会收到SIGPIPE … 让进程消失.)""",
    modern="""Unchanged on 6.x. The server closes; the client reads EOF and writes 5 bytes: the write
    succeeds (the bytes only reach the kernel), the segment goes out, and the server's kernel, with
    no socket left to take it, answers RST (seq just past its FIN, no ACK flag). The client's second
    write then fails EPIPE and the kernel sends SIGPIPE, whose default action ends the process
    (exit status -13, or 141 in a shell). With MSG_NOSIGNAL (or SIGPIPE ignored, as Python does by
    default) the write still fails EPIPE and the program goes on.""",
)
def sigpipe_peer_closed(run: Run, port: int = 12385, gap: float = 0.2) -> None:
    server_ip, client_ip = run.ip(SERVER), run.ip(CLIENT)
    seen = {}
    with run.capture([f"{CLIENT}:eth0"], f"tcp portrange {port}-{port + 1}"):
        for offset, mode in enumerate(MODES):
            server = run.serve(SERVER, "testaccept", server_ip, str(port + offset), "--sleep", "0.1", "--hold", "0")
            prefix, trace = run.strace(CLIENT, ("sendto",))
            client = run.spawn(CLIENT, [*prefix, run.python(CLIENT), "-m", "lab.servers.sigpipe_client", server_ip,
                                        str(port + offset), "--mode", mode, "--gap", str(gap)],
                               title=f"sigpipe_client --mode {mode} (strace)")
            rc = client.wait(15)
            server.wait(5)
            seen[mode] = (rc, syscalls.named(run.syscalls(CLIENT, trace), "sendto"))
    for offset, mode in enumerate(MODES):
        rc, sends = seen[mode]
        tag = "default action" if mode == "default" else "MSG_NOSIGNAL"
        run.expect(expect.equals(f"{tag}: the first write returns 5 (the bytes reached the kernel), the second "
                                 "fails EPIPE (strace)", [5, "EPIPE"], [c.errno or c.ret for c in sends]))
        if mode == "default":
            run.expect(expect.equals("default action: SIGPIPE ends the writer (exit status -13)", -13, rc))
        else:
            run.expect(expect.equals("MSG_NOSIGNAL: no signal; the program goes on and exits 0", 0, rc))
        conn = flows.conversation(run.packets, client_ip, server_ip, port + offset)
        fin = expect.first([p for p in expect.fins(conn) if p.src == server_ip])
        data = [p for p in expect.data(conn) if p.src == client_ip]
        rst = [p for p in expect.rsts(conn) if p.src == server_ip]
        ok = (fin is not None and bool(data) and bool(rst) and data[0].no > fin.no and rst[0].no > data[0].no
              and "." not in flows.seg(rst[0]).flag_str)
        run.expect(expect.check(f"{tag}: the server's FIN, then the client's 5 bytes, then the server's RST "
                                "(no ACK flag: no socket is left to acknowledge)", ok and len(data) == 1,
                                "FIN, 1 data segment, RST", f"FIN {'yes' if fin else 'no'}, {len(data)} data, "
                                f"{[flows.seg(p).flag_str for p in rst]}", ([fin] if fin else []) + data + rst))


@experiment(
    id="shared-socket-close-vs-shutdown",
    title="A socket two processes hold: close() waits for the last holder, shutdown() sends the FIN at once",
    section="§5.7, §13.1",
    topology="book-lan.yaml",
    needs={"strace"},
    book="""\\
(§5.7: close系统调用并非总是立即关闭一个连接，而是将fd的引用计数减1。只有当fd的引用计数为0时，才真正
 关闭连接。多进程程序中，一次fork系统调用默认将使父进程中打开的socket的引用计数加1，因此我们必须在父
 进程和子进程中都对该socket执行close调用才能将连接关闭。如果无论如何都要立即终止连接（而不是将socket
 的引用计数减1），可以使用如下的shutdown系统调用.)""",
    modern="""Unchanged on 6.x. The server forks after accept; at 0.3 s the parent calls close() (case
    A) or shutdown(SHUT_WR) (case B); at 1.0 s the child sends 10 bytes, at 1.5 s it closes. A:
    the parent's close only drops a reference, so the child's data goes out and the server's FIN
    follows the child's close. B: the FIN leaves at 0.3 s although the child still holds the
    socket, and the child's send fails EPIPE: shutdown acts on the connection, not on a
    descriptor. Decided from the capture at the server and strace of both processes.""",
)
def shared_socket_close_vs_shutdown(run: Run, port: int = 12410) -> None:
    server_ip, client_ip = run.ip(SERVER), run.ip(CLIENT)
    seen = {}
    with run.capture([f"{SERVER}:eth0"], f"tcp portrange {port}-{port + 1}"):
        for offset, how in enumerate(("close", "shutdown")):
            prefix, trace = run.strace(SERVER, ("sendto",))
            server = run.spawn(SERVER, [*prefix, run.python(SERVER), "-m", "lab.servers.fork_close_server", server_ip,
                                        str(port + offset), "--how", how],
                               title=f"fork_close_server --how {how} (strace -f)", ready="listening on")
            client = run.start(CLIENT, "connect_many", server_ip, str(port + offset), "--count", "1", "--settle",
                               "0.2", "--hold", "3")
            server.wait(10)
            client.stop()
            seen[how] = syscalls.named(run.syscalls(SERVER, trace), "sendto")
    for offset, (how, sends) in enumerate(seen.items()):
        conn = flows.conversation(run.packets, client_ip, server_ip, port + offset)
        syn = expect.first(expect.syns(conn))
        fin = expect.first([p for p in expect.fins(conn) if p.src == server_ip])
        data = [p for p in expect.data(conn) if p.src == server_ip]
        if syn is None or fin is None:
            run.expect(expect.error(f"{how}: the connection and the server's FIN", "not in the capture"))
            continue
        at = fin.time - syn.time
        if how == "close":
            run.expect(expect.check("close(): no FIN at 0.3 s; the child's data goes out, and the FIN only after the "
                                    "child's close at 1.5 s", bool(data) and data[0].no < fin.no and at >= 1.4,
                                    "data, then FIN at ≥ 1.4 s", f"{len(data)} data segment(s), FIN at {at:.2f} s",
                                    data + [fin]))
            run.expect(expect.equals("close(): the child's send returns 10 (strace)", [10],
                                     [c.errno or c.ret for c in sends]))
        else:
            run.expect(expect.check("shutdown(SHUT_WR): the FIN leaves at 0.3 s, while the child still holds the "
                                    "socket; no data follows", 0.25 <= at < 0.9 and not data,
                                    "FIN at ≈ 0.3 s, no data", f"FIN at {at:.2f} s, {len(data)} data segment(s)",
                                    [fin]))
            run.expect(expect.equals("shutdown(SHUT_WR): the child's send fails EPIPE (strace)", ["EPIPE"],
                                     [c.errno or c.ret for c in sends]))
