"""Closes that abort (§3.5.2, §5.11.4, book 15-6): when close() sends an RST instead of a FIN."""

from __future__ import annotations

from lab.capture.records import FIN, RST, Packet
from lab.experiments import expect, syscalls
from lab.experiments.book import flows, sockstate, sstext
from lab.experiments.book.socket_api import nstat
from lab.experiments.context import Run
from lab.experiments.engine import experiment

CLIENT, SERVER = "kongming20", "ernest-laptop"


def server_closes(conn: list[Packet], server_ip: str) -> list[str]:
    """The flags of the server's FIN and RST segments, in order."""
    return [flows.seg(p).flag_str for p in conn if p.src == server_ip and flows.seg(p).flags & (FIN | RST)]


@experiment(
    id="close-with-unread-data-rst",
    title="close() with unread data in the receive queue sends an RST, not a FIN",
    section="§3.5.2",
    topology="book-lan.yaml",
    needs={"strace"},
    book="""\\
(§3.5.2 异常终止连接: ... 应用程序可以使用socket选项SO_LINGER来发送复位报文段，以异常终止一个连接.
 The study notes add the other way: closing a socket whose receive buffer still holds data the
 application never read also resets the connection.)""",
    modern="""Unchanged on 6.x (tcp_close, RFC 2525 "data loss"): the client sends 100 bytes; a server
    that closes without reading them sends [R.] instead of [F.], counts it in TcpExtTCPAbortOnClose,
    and the client's next recv fails ECONNRESET. A server that reads everything first closes with a
    FIN, and the client reads EOF. Decided from the capture at the server, nstat, and strace of
    the client.""",
)
def close_with_unread_data_rst(run: Run, port: int = 12450) -> None:
    server_ip, client_ip = run.ip(SERVER), run.ip(CLIENT)
    seen = {}
    with run.capture([f"{SERVER}:eth0"], f"tcp portrange {port}-{port + 1}"):
        for offset, read in enumerate((False, True)):
            before = nstat(run, SERVER)
            server = run.serve(SERVER, "close_unread", server_ip, str(port + offset), "--after", "0.5",
                               *(["--read"] if read else []))
            prefix, trace = run.strace(CLIENT, ("recvfrom",))
            run.sh(CLIENT, [*prefix, run.python(CLIENT), "-m", "lab.servers.rst_client", server_ip,
                            str(port + offset), "--step", "0:send:" + "x" * 100, "--step", "1.2:recv:2"],
                   title="rst_client: send 100 bytes, recv at 1.2 s (strace)", timeout=20)
            server.wait(10)
            aborts = sockstate.delta(before, nstat(run, SERVER), "TcpExtTCPAbortOnClose")
            seen[read] = (aborts, syscalls.named(run.syscalls(CLIENT, trace), "recvfrom"))
    for offset, read in enumerate((False, True)):
        aborts, recvs = seen[read]
        conn = flows.conversation(run.packets, client_ip, server_ip, port + offset)
        closes = server_closes(conn, server_ip)
        last = recvs[-1] if recvs else None
        if not read:
            run.expect(expect.equals("unread data: the server's close sends [R.], no FIN", ["R."], closes))
            run.expect(expect.within("TcpExtTCPAbortOnClose grew by one (nstat, server)", aborts, low=1, high=1))
            run.expect(expect.equals("the client's next recv fails ECONNRESET (strace)", "ECONNRESET",
                                     last.errno if last else "no recvfrom in the trace"))
        else:
            run.expect(expect.equals("control, everything read: the server's close sends [F.]", ["F."], closes))
            run.expect(expect.equals("control: the client's recv returns 0, EOF (strace)", 0,
                                     last.ret if last else None))


@experiment(
    id="linger-inherited-rst",
    title="SO_LINGER {1, 0} on the listening socket is inherited: every accepted connection closes with an RST",
    section="§15.6.2, §5.11.4",
    topology="book-lan.yaml",
    needs={"strace"},
    book="""\\
/* 代码清单15-6 (the thread-pool web server's main) */
struct linger tmp = { 1, 0 };
setsockopt( listenfd, SOL_SOCKET, SO_LINGER, &tmp, sizeof( tmp ) );""",
    modern="""Unchanged on 6.x, and the book never says what it does: an accepted socket inherits the
    listener's options, SO_LINGER {1, 0} among them (getsockopt on the accepted fd reads {1, 0}),
    so every close() of a served connection is an abort: the response goes out, then [R.] and no
    FIN; the server keeps no TIME-WAIT, and the client reads the response and then ECONNRESET
    instead of EOF. Decided from strace of both ends, the capture and ss.""",
)
def linger_inherited_rst(run: Run, port: int = 12455) -> None:
    server_ip, client_ip = run.ip(SERVER), run.ip(CLIENT)
    reply = "HTTP/1.1 200 OK\\r\\nContent-Length: 5\\r\\nConnection: close\\r\\n\\r\\nhello"
    size = len(reply.encode().decode("unicode_escape"))
    server_prefix, server_trace = run.strace(SERVER, ("getsockopt",))
    with run.capture([f"{SERVER}:eth0"], f"tcp port {port}"):
        server = run.spawn(SERVER, [*server_prefix, run.python(SERVER), "-m", "lab.servers.close_unread", server_ip,
                                    str(port), "--linger", "--read", "--reply", reply, "--after", "0.2"],
                           title="close_unread --linger --reply (strace)", ready="listening on")
        prefix, trace = run.strace(CLIENT, ("recvfrom",))
        run.sh(CLIENT, [*prefix, run.python(CLIENT), "-m", "lab.servers.rst_client", server_ip, str(port),
                        "--step", "0.6:recv:2", "--step", "0.8:recv:2"],
               title="rst_client: recv at 0.6 s and 0.8 s (strace)", timeout=20)
        server.wait(10)
    left = [s for s in sstext.parse(run.sh(SERVER, ["ss", "-tanH", f"sport = :{port}"]).stdout)
            if s.state == "TIME-WAIT"]
    asked = [c for c in syscalls.named(run.syscalls(SERVER, server_trace), "getsockopt") if "SO_LINGER" in c.args]
    run.expect(expect.check("getsockopt(SO_LINGER) on the accepted socket reads {1, 0}: inherited from the "
                            "listener (strace)", bool(asked) and "l_onoff=1" in asked[-1].args
                            and "l_linger=0" in asked[-1].args, "l_onoff=1, l_linger=0",
                            asked[-1].args if asked else "no getsockopt in the trace"))
    conn = flows.conversation(run.packets, client_ip, server_ip, port)
    data = [p for p in expect.data(conn) if p.src == server_ip]
    run.expect(expect.equals(f"the {size}-byte response goes out, then the close is [R.], no FIN",
                             [size, ["R."]], [sum(flows.seg(p).length for p in data), server_closes(conn, server_ip)]))
    run.expect(expect.equals("the server keeps no TIME-WAIT (ss)", 0, len(left)))
    recvs = [c.errno or c.ret for c in syscalls.named(run.syscalls(CLIENT, trace), "recvfrom")]
    run.expect(expect.equals("the client reads the response, then ECONNRESET instead of EOF (strace)",
                             [size, "ECONNRESET"], recvs[-2:]))
