"""Ch.15-16: the thread-pool HTTP server (15-3…15-6), and the stress test against it (16-4).

The server is the project's ``threadpool_http`` (a reactor thread, eight workers, EPOLLONESHOT,
writev of an mmap'd file). What it sends is read from the capture, byte for byte; its threads from
/proc; its partial writes from strace; the listen queue from nstat and ss in its namespace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lab.capture.records import Packet
from lab.errors import InputError
from lab.experiments import expect, syscalls
from lab.experiments.book import flows, sockstate
from lab.experiments.book.signals import listener_pid
from lab.experiments.book.socket_api import listener_on, nstat
from lab.experiments.context import Run
from lab.experiments.engine import experiment
from lab.servers.threadpool_http import file_bytes

CLIENT, SERVER = "kongming20", "ernest-laptop"
NOT_FOUND = "The requested file was not found on this server.\n"  # the book's 15-5 error_404_form
BAD_REQUEST = "Your request has bad syntax or is inherently impossible to satisfy.\n"  # error_400_form


def response(status: str, body: bytes, keep: bool) -> bytes:
    """A response as 15-5's process_write builds it: status line, Content-Length, Connection, blank line."""
    return (f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: {'keep-alive' if keep else 'close'}\r\n\r\n").encode() + body


def iov_total(call: syscalls.Syscall) -> int:
    """The bytes a ``writev`` was asked to send (the sum of its iov_len)."""
    return sum(int(n) for n in re.findall(r"iov_len=(\d+)", call.args))


def shown(data: bytes, limit: int = 120) -> str:
    text = data[:limit].decode("latin-1").replace("\r", "\\r").replace("\n", "\\n")
    return text + (f"… ({len(data)} bytes)" if len(data) > limit else "")


CASES = (  # (what the client does, http_get's arguments)
    ("three keep-alive GETs", ("--keep-alive", "--repeat", "3")),
    ("a GET without keep-alive", ()),
    ("an HTTP/1.0 request line", ("--version", "HTTP/1.0")),
    ("a missing file", ("--path", "/missing.html", "--keep-alive")),
    ("a large file to a slow reader", ("--path", "/big.bin", "--keep-alive", "--rcvbuf", "4096",
                                       "--read-after", "1")),
)


@experiment(
    id="threadpool-http-server",
    title="The thread-pool HTTP server: keep-alive on one connection, the book's 400 and 404, writev that comes "
          "back short, and 1 + 8 threads",
    section="§15.5-§15.6",
    topology="book-lan.yaml",
    needs={"strace"},
    book="""\\
(代码清单15-6 main: threadpool< http_conn >* pool = new threadpool< http_conn >;  (8 threads)
 listen( listenfd, 5 ); ... addfd( epollfd, connfd, true )          (EPOLLONESHOT)
 代码清单15-5 http_conn: process_read (the §8.6 state machine), do_request (stat, mmap), process_write:
   add_status_line( 200, ok_200_title ); add_headers( m_file_stat.st_size );
   m_iv[ 0 ] = m_write_buf; m_iv[ 1 ] = m_file_address; m_iv_count = 2;    then writev
 if ( strcasecmp( m_version, "HTTP/1.1" ) != 0 ) return BAD_REQUEST;
 const char* error_404_form = "The requested file was not found on this server.\\n";)""",
    modern="""As the book: the reactor reads, a worker parses and answers, EPOLLONESHOT keeps each
    connection with one thread at a time, and the response is writev(header, mmap'd file). Keep-alive
    serves several requests on one connection; only HTTP/1.1 is accepted, so an HTTP/1.0 request
    line is a 400; a missing file is a 404 with the book's 49-byte body. A file larger than the
    socket buffers, to a reader that waits, makes writev return short and then fail EAGAIN: the
    server waits for EPOLLOUT and writes the rest from where the kernel stopped, so the stream
    carries header and file exactly once (15-5's write() as printed in the book never advances
    its iovecs and would send the header again). The thread count is the kernel's (/proc/PID/task).""",
)
def threadpool_http_server(run: Run, port: int = 12480, threads: int = 8, big: int = 262144) -> None:
    if not (1 <= threads <= 64 and 65536 <= big <= 16 << 20):
        raise InputError(f"-p threads={threads} -p big={big}: threads 1..64, big from 64 KiB to 16 MiB "
                         "(it must not fit the socket buffers)")
    server_ip = run.ip(SERVER)
    prefix, trace = run.strace(SERVER, ("writev",))
    with run.capture([f"{CLIENT}:eth0"], f"tcp port {port}"):
        server = run.spawn(SERVER, [*prefix, run.python(SERVER), "-m", "lab.servers.threadpool_http", server_ip,
                                    str(port), "--threads", str(threads), "--files", f"index.html=64,big.bin={big}",
                                    "--duration", "60"],
                           title=f"threadpool_http {server_ip} {port} --threads {threads} (strace)",
                           ready="listening on")
        pid = listener_pid(run, port)
        tasks = run.sh(SERVER, ["ls", f"/proc/{pid}/task"], title=f"ls /proc/{pid}/task").stdout.split() if pid else []
        for _, args in CASES:
            run.py(CLIENT, "http_get", server_ip, str(port), *args, timeout=20)
        run.sh(SERVER, ["kill", "-TERM", str(pid)], title=f"kill -TERM {pid} (the server: its cases are done)")
        server.wait(20)
    run.expect(expect.equals(f"the server has 1 + {threads} threads (/proc/PID/task: the reactor and the pool)",
                             1 + threads, len(tasks)))
    conns = flows.opened_in_order(run.packets, port)
    if len(conns) != len(CASES):
        run.expect(expect.error("one connection per case", f"{len(conns)} connections in the capture"))
        return
    judge_responses(run, conns, server_ip, big)
    calls = syscalls.named(run.syscalls(SERVER, trace), "writev")
    short = [c for c in calls if c.ret is not None and 0 <= c.ret < iov_total(c)]
    again = [c for c in calls if c.errno == "EAGAIN"]
    run.expect(expect.check("the large file: writev comes back short, and then fails EAGAIN (strace): the server "
                            "waits for EPOLLOUT", bool(short) and bool(again), "≥ 1 short writev, ≥ 1 EAGAIN",
                            f"{len(short)} short ({', '.join(f'{c.ret} of {iov_total(c)}' for c in short[:3])}), "
                            f"{len(again)} EAGAIN"))


def judge_responses(run: Run, conns: list[list[Packet]], server_ip: str, big: int) -> None:
    """Each case's connection: the bytes the server sent, exactly, and who closed it."""
    page = file_bytes(64)
    expected = [
        3 * response("200 OK", page, keep=True),
        response("200 OK", page, keep=False),
        response("400 Bad Request", BAD_REQUEST.encode(), keep=False),
        response("404 Not Found", NOT_FOUND.encode(), keep=True),
        response("200 OK", file_bytes(big), keep=True),
    ]
    for (what, _), conn, wanted in zip(CASES, conns, expected, strict=True):
        sent = flows.stream(conn, server_ip)
        run.expect(expect.check(f"{what}: the server sends exactly {shown(wanted, 70)}", sent == wanted,
                                shown(wanted), shown(sent), expect.data([p for p in conn if p.src == server_ip])[:4]))
    keep = conns[0]
    run.expect(expect.count("the keep-alive requests share one connection: one SYN", expect.syns(keep), 1))
    for index, what in ((1, "without keep-alive"), (2, "after the 400")):
        fins = expect.fins(conns[index])
        run.expect(expect.check(f"{what}, the server closes first (its FIN before the client's)",
                                bool(fins) and fins[0].src == server_ip, "the server's FIN first",
                                f"first FIN from {fins[0].src}" if fins else "no FIN", fins[:2]))
    run.expect(expect.count("no connection is reset", expect.rsts([p for c in conns for p in c]), 0))


def established(run: Run, node: str, port: int, side: str) -> int:
    """How many ESTAB sockets ``node`` holds with ``port`` as its ``side`` (sport or dport), counted by ss."""
    counted = run.sh(node, ["sh", "-c", f"ss -HtnO state established '( {side} = :{port} )' | wc -l"],
                     title=f"ss state established {side} = :{port} | wc -l")
    return int(counted.stdout.strip() or 0)


def generator_figures(printed: str) -> dict[str, str]:
    """The load generator's summary lines as ``{key: value}`` (``connect_ms p50=…``, ``requests sent=…``)."""
    return {f"{line.split()[0]} {k}": v for line in printed.splitlines() if "=" in line
            for k, v in re.findall(r"(\w+)=(\S+)", line)}


@experiment(
    id="stress-test-webserver",
    title="The stress test: a burst of 1,000 keep-alive clients against listen(5), then against a backlog "
          "that holds them",
    section="§16.4, §15.6",
    topology="book-lan.yaml",
    lasts=15,
    book="""\\
$ ./stress_test 192.168.1.109 12345 1000          (代码清单16-4: start_conn opens num connections,
                                                   each writes a request and reads, forever)
(代码清单15-6: listen( listenfd, 5 ); the book runs the stress test against it and watches the server
 keep up; it measures nothing.)""",
    modern="""On 6.x a burst of a thousand SYNs against listen(5) overflows the accept queue
    (TcpExtListenOverflows): SYNs that meet a full accept queue are dropped and come back 1 s later
    (linear SYN timeouts, 6.5+), and SYNs that meet a full SYN queue are answered with a SYN cookie
    (tcp_syncookies = 1, the default; the book's kernels dropped them). A cookie client is
    ESTABLISHED as soon as it sends its ACK; if that ACK meets a full accept queue the server drops
    it and keeps nothing (a cookie has no request socket to retransmit a SYN-ACK), so the client's
    request waits for its own retransmission, with RTO backoff: for seconds, clients the server
    does not know exist. With a backlog that holds the burst the same thousand clients are all
    accepted at once, no SYN is retransmitted, and every request is answered. The load generator
    (stress_client) keeps one request in flight per connection, `think` seconds apart; its
    figures (connect latency, requests per second) are its own word, shown in the notes.""",
)
def stress_test_webserver(run: Run, port: int = 12490, connections: int = 1000, backlog: int = 5, load: int = 6,
                          think: float = 1.0) -> None:
    if not (100 <= connections <= 4000 and 1 <= backlog < connections and 4 <= load <= 60 and 0 <= think <= 5):
        raise InputError(f"-p connections={connections} backlog={backlog} load={load} think={think}: connections "
                         "100..4000, backlog below them, load 4..60 s, think 0..5 s")
    client_ip = run.ip(CLIENT)
    phases = {}
    flags = "tcp[tcpflags] & (tcp-syn|tcp-fin|tcp-rst) != 0"
    with run.capture([f"{CLIENT}:eth0"], f"tcp portrange {port}-{port + 1} and {flags}", headers_only=True):
        for offset, queue in enumerate((backlog, connections)):
            phases[queue] = stress_phase(run, port + offset, connections, queue, load, think)
    judge_burst(run, phases[backlog], port, connections, backlog, client_ip)
    judge_roomy(run, phases[connections], port + 1, connections, client_ip)
    for offset, queue in enumerate((backlog, connections)):
        on_port = [p for p in run.packets if port + offset in (p.sport, p.dport)]
        fins = expect.fins(on_port)
        during = [p for p in expect.rsts(on_port) if not fins or p.time < fins[0].time]
        run.expect(expect.count(f"listen({queue}): no connection is reset while the load runs", during, 0))
        if later := [p for p in expect.rsts(on_port) if p not in during]:
            run.note(f"listen({queue}): {len(later)} RSTs after the clients closed: a stranded client's FIN, "
                     "retransmitted, that met the server after its listener closed")
    for queue, phase in phases.items():
        f = phase.figures
        run.note(f"listen({queue}), {connections} clients: held {phase.held['client']} (client) "
                 f"{phase.held['server']} (server); connect ms p50 {f.get('connect_ms p50')} p90 "
                 f"{f.get('connect_ms p90')} p99 {f.get('connect_ms p99')} max {f.get('connect_ms max')}; "
                 f"{f.get('requests responses')} of {f.get('requests sent')} requests answered, "
                 f"{f.get('requests per_second')}/s (the generator's count)")


@dataclass
class Phase:
    """What one load showed: the listener's backlog as ss shows it (Send-Q), the ESTAB sockets on each end,
    the server's counter deltas, and the generator's own figures."""

    backlog: int | None
    held: dict[str, int]
    counters: dict[str, int]
    figures: dict[str, str]


def stress_phase(run: Run, port: int, connections: int, backlog: int, load: int, think: float) -> Phase:
    """One load: the server with ``backlog``, the generator's burst, ss on both ends a second before the
    load ends, the server's counters before and after."""
    server_ip = run.ip(SERVER)
    before = nstat(run, SERVER)
    server = run.serve(SERVER, "threadpool_http", server_ip, str(port), "--backlog", str(backlog),
                       "--duration", str(load + 8))
    listener = listener_on(run, port)
    client = run.start(CLIENT, "stress_client", server_ip, str(port), "--connections", str(connections),
                       "--duration", str(load), "--think", f"{think:g}", "--connect-timeout", "2")
    run.sleep(load - 1)
    held = {"server": established(run, SERVER, port, "sport"), "client": established(run, CLIENT, port, "dport")}
    client.wait(load + 10)
    server.stop()
    after = nstat(run, SERVER)
    counters = {name: sockstate.delta(before, after, name) for name in
                ("TcpExtListenOverflows", "TcpExtSyncookiesSent", "TcpExtListenDrops")}
    return Phase(listener.send_q if listener else None, held, counters, generator_figures(client.stdout))


def syn_retries(packets: list[Packet], port: int, client_ip: str) -> list[list[Packet]]:
    """Per connection to ``port``, the client's SYNs (more than one: the first was not answered)."""
    per = flows.by_connection(p for p in packets if p.tcp is not None and p.dport == port and p.src == client_ip)
    return [syns for conn in per.values() if len(syns := expect.syns(conn)) > 1]


def judge_burst(run: Run, phase: Phase, port: int, connections: int, backlog: int, client_ip: str) -> None:
    held, counters = phase.held, phase.counters
    run.expect(expect.equals(f"listen({backlog}): ss -ltn shows the backlog as Send-Q", backlog, phase.backlog))
    run.expect(expect.within(f"listen({backlog}): the burst overflows the accept queue (TcpExtListenOverflows, "
                             "nstat in the server's namespace)", counters["TcpExtListenOverflows"], low=1))
    run.expect(expect.within(f"listen({backlog}): SYNs that meet a full SYN queue get a SYN cookie "
                             "(TcpExtSyncookiesSent; the book's kernel dropped them)",
                             counters["TcpExtSyncookiesSent"], low=1))
    retried = syn_retries(run.packets, port, client_ip)
    gaps = [syns[1].time - syns[0].time for syns in retried]
    low, high = expect.timer_tolerance(1.0)
    run.expect(expect.check(f"listen({backlog}): dropped SYNs come back 1 s later (linear SYN timeouts; pcap)",
                            bool(gaps) and all(low <= g <= high + 0.1 for g in gaps),
                            f"≥ 1 connection, each first retry {low:g}-{high + 0.1:g} s",
                            f"{len(gaps)} connections, gaps {min(gaps, default=0):.3f}-{max(gaps, default=0):.3f} s",
                            [s[0] for s in retried[:4]]))
    run.expect(expect.check(f"listen({backlog}), a second before the load ends: every client is ESTABLISHED, and "
                            "the server holds fewer (cookie clients whose ACK met a full queue: no socket on "
                            "the server)", held["client"] == connections and held["server"] < connections,
                            f"client {connections}, server < {connections}",
                            f"client {held['client']}, server {held['server']}"))


def judge_roomy(run: Run, phase: Phase, port: int, connections: int, client_ip: str) -> None:
    held, counters, f = phase.held, phase.counters, phase.figures
    run.expect(expect.equals(f"listen({connections}): ss -ltn shows the backlog as Send-Q", connections,
                             phase.backlog))
    run.expect(expect.equals(f"listen({connections}): no overflow (TcpExtListenOverflows)", 0,
                             counters["TcpExtListenOverflows"]))
    run.expect(expect.count(f"listen({connections}): no SYN is retransmitted (pcap)",
                            [s[1] for s in syn_retries(run.packets, port, client_ip)], 0))
    run.expect(expect.equals(f"listen({connections}), a second before the load ends: the server holds all "
                             f"{connections} connections (ss)", connections, held["server"]))
    run.expect(expect.check("and every request is answered (the generator's own count: a weak claim, beside the "
                            "kernel's above)",
                            "requests sent" in f and f["requests sent"] == f.get("requests responses"),
                            "responses = requests",
                            f"{f.get('requests responses')} of {f.get('requests sent')}"))
