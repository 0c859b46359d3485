"""Ch.16 limits a busy server meets: the client's ephemeral ports (§16.2), decided by the kernel."""

from __future__ import annotations

import os

from lab.errors import InputError
from lab.experiments import expect, syscalls
from lab.experiments.book import sstext
from lab.experiments.book.signals import listener_pid
from lab.experiments.context import Run
from lab.experiments.engine import experiment

CLIENT, SERVER = "kongming20", "ernest-laptop"
FIRST_PORT = 40000


@experiment(
    id="ephemeral-port-exhaustion",
    title="ip_local_port_range bounds one client's connections to one server port; the next connect fails "
          "EADDRNOTAVAIL",
    section="§16.2",
    topology="book-lan.yaml",
    needs={"strace"},
    book="""\\
/proc/sys/net/ipv4/ip_local_port_range: 指定本地TCP/UDP通信端口的范围 (§16.2, table of the
 /proc/sys/net/ipv4 files a server is tuned with: a client of one server needs a local port for
 each connection it holds.)""",
    modern="""On 6.x the range is per network namespace. A connect() without bind() takes a free local
    port of the range for its 4-tuple, and to one server address and port this kernel uses every
    port of the range: ranges of 5, 7 and 8 ports were all filled, held open at once, so the
    "rounded down to even" some write-ups give does not hold here (the even/odd split of the
    range is a preference between bind() and connect(), not a limit). With all of them held,
    connect() fails at once with EADDRNOTAVAIL (99). Decided from strace of the client and ss.""",
)
def ephemeral_port_exhaustion(run: Run, port: int = 12395, ports: int = 8) -> None:
    if not 1 <= ports <= 200:
        raise InputError(f"-p ports={ports}: from 1 to 200")
    server_ip = run.ip(SERVER)
    low, high = FIRST_PORT, FIRST_PORT + ports - 1
    run.sysctl(CLIENT, "net.ipv4.ip_local_port_range", f"{low} {high}")
    server = run.serve(SERVER, "discard", server_ip, str(port), "--duration", "120")
    prefix, trace = run.strace(CLIENT, ("connect",))
    client = run.spawn(CLIENT, [*prefix, run.python(CLIENT), "-m", "lab.servers.connect_many", server_ip, str(port),
                                "--count", str(ports + 1), "--interval", "0.02", "--settle", "0.5", "--hold", "5"],
                       title=f"connect_many --count {ports + 1} (range {low}-{high}, strace)")
    if not client.wait_for("summary", ports * 0.02 + 15):
        raise RuntimeError(f"connect_many printed no summary: {client.stdout[-300:]}")
    socks = [s for s in sstext.parse(run.sh(CLIENT, ["ss", "-tanH", f"dport = :{port}"]).stdout) if s.state == "ESTAB"]
    client.wait(20)
    server.stop()
    connects = syscalls.named(run.syscalls(CLIENT, trace), "connect")
    results = [c.errno or c.ret for c in connects]
    run.expect(expect.equals(f"the first {ports} connects start (EINPROGRESS: non-blocking), the next fails at once "
                             "with EADDRNOTAVAIL (strace)", ["EINPROGRESS"] * ports + ["EADDRNOTAVAIL"], results))
    local = sorted(int(s.local.rsplit(":", 1)[1]) for s in socks)
    run.expect(expect.equals(f"ss: {ports} connections held, one on every port of the range {low}-{high}",
                             list(range(low, high + 1)), local))


def fds_below(run: Run, pid: int, limit: int) -> int:
    """How many of the process's descriptors are numbered below ``limit`` (/proc/PID/fd)."""
    listed = run.sh(SERVER, ["ls", f"/proc/{pid}/fd"], record=False).stdout.split()
    return sum(1 for fd in listed if fd.isdigit() and int(fd) < limit)


def cpu_ticks(run: Run, pid: int) -> int:
    """User + system CPU time of the process, in clock ticks (/proc/PID/stat)."""
    fields = run.sh(SERVER, ["cat", f"/proc/{pid}/stat"], record=False).stdout.rsplit(")", 1)[-1].split()
    return int(fields[11]) + int(fields[12]) if len(fields) > 12 else 0


@experiment(
    id="emfile-accept-storm",
    title="Out of file descriptors: accept() fails EMFILE, connections wait in the queue, an LT loop spins",
    section="§16.1, §7.4",
    topology="book-lan.yaml",
    lasts=13,
    book="""\\
$ ulimit -n                                      (§16.1: 最大文件描述符数 — a server that runs out of
1024                                              descriptors cannot accept; raise the per-process
                                                  limit with ulimit -SHn / setrlimit(RLIMIT_NOFILE))""",
    modern="""Unchanged on 6.x. The server runs under prlimit --nofile=nofile with a level-triggered epoll
    accept loop. The kernel completes every client's handshake (the SYN-ACKs go out) whether or not
    the server can accept; once the descriptor table is full, accept() fails EMFILE (24), the
    connection stays in the listener's queue (ss -ltn Recv-Q), the listener stays readable, and
    the loop spins at full CPU. Keeping a spare descriptor to close, accept and close the
    connection on EMFILE empties the queue: the clients get a FIN, and the CPU rests.""",
)
def emfile_accept_storm(run: Run, port: int = 12400, nofile: int = 16, clients: int = 20) -> None:
    if not (8 <= nofile <= 256 and 1 <= clients <= 500):
        raise InputError(f"-p nofile={nofile} -p clients={clients}: nofile 8..256, clients 1..500")
    server_ip = run.ip(SERVER)
    tick = os.sysconf("SC_CLK_TCK")
    for offset, spare in enumerate((False, True)):
        tag = "with a spare fd" if spare else "LT loop"
        p = port + offset
        with run.capture([f"{SERVER}:eth0"], f"tcp port {p}"):
            server = run.spawn(SERVER, ["prlimit", f"--nofile={nofile}", run.python(SERVER), "-m",
                                        "lab.servers.accept_storm", server_ip, str(p), "--duration", "6",
                                        *(["--spare"] if spare else [])],
                               title=f"prlimit --nofile={nofile} accept_storm {server_ip} {p}"
                                     + (" --spare" if spare else ""), ready="listening on")
            pid = listener_pid(run, p)
            if pid is None:
                raise RuntimeError(f"accept_storm is not listening on {p}")
            free = nofile - fds_below(run, pid, nofile)
            client = run.start(CLIENT, "connect_many", server_ip, str(p), "--count", str(clients), "--interval",
                               "0.02", "--settle", "0.5", "--hold", "10")
            client.wait_for("summary", clients * 0.02 + 10)
            before = cpu_ticks(run, pid)
            run.sleep(1.0)
            busy = (cpu_ticks(run, pid) - before) / tick
            queued = sstext.parse(run.sh(SERVER, ["ss", "-Hltn", f"sport = :{p}"]).stdout)
            looked = run.now()  # the server's own exit closes what it kept: count the FINs before it
            server.wait(15)
            client.stop()
        conn = [q for q in run.packets if q.tcp and p in (q.sport, q.dport)]
        synacks = expect.synacks([q for q in conn if q.src == server_ip])
        run.expect(expect.count(f"{tag}: the kernel completes every client's handshake (a SYN-ACK each)",
                                expect.once_each(synacks), clients))
        recv_q = queued[0].recv_q if queued else None
        if not spare:
            stranded = max(clients - free, 0)
            run.expect(expect.equals(f"{tag}: {free} accepted (the descriptors left below {nofile}), {stranded} wait "
                                     "in the queue after EMFILE (ss -ltn Recv-Q)", stranded, recv_q))
            run.expect(expect.check(f"{tag}: the loop spins on EMFILE: ≥ 0.25 s of CPU per second (a quarter core, "
                                    "even on a busy machine; /proc/PID/stat)",
                                    busy >= 0.25, "≥ 0.25 s/s", f"{busy:.2f} s/s"))
        else:
            fins = [q for q in expect.fins(conn) if q.src == server_ip and q.time < looked]
            shed = max(clients - free, 0)  # the spare fd is closed only to take one, and taken again
            run.expect(expect.equals(f"{tag}: the queue is emptied (ss -ltn Recv-Q 0)", 0, recv_q))
            run.expect(expect.count(f"{tag}: the {shed} connections it could not keep are closed at once: a FIN each",
                                    expect.once_each(fins), shed))
            run.expect(expect.check(f"{tag}: no spin: < 0.2 s of CPU per second", busy < 0.2, "< 0.2 s/s",
                                    f"{busy:.2f} s/s"))


@experiment(
    id="uid-euid-privileged-port",
    title="A port below 1024 needs privilege: EACCES for an ordinary user, unless ip_unprivileged_port_start "
          "says otherwise",
    section="§7.2",
    topology="book-lan.yaml",
    needs={"strace"},
    book="""\\
(§7.2 用户信息: 一些服务器程序以root身份启动 ... 服务器程序往往需要以root身份启动，却以普通用户身份运行 —
 代码清单7-2 switches user after it has the privileged resources, such as a port below 1024.)""",
    modern="""On 6.x "privileged" is per network namespace: net.ipv4.ip_unprivileged_port_start (since
    4.11, 1024 by default in a new namespace; Docker sets it to 0 in its containers). A process
    that has dropped to uid 65534 gets EACCES (13) binding port 80 at 1024, and binds it once the
    namespace's start is 80. Root binds it either way (CAP_NET_BIND_SERVICE). Decided from strace
    of bind.""",
)
def uid_euid_privileged_port(run: Run, port: int = 80) -> None:
    if not 1 <= port <= 1023:
        raise InputError(f"-p port={port}: a privileged port, 1..1023")
    server_ip = run.ip(SERVER)
    results = {}
    for start in (1024, port):
        run.sysctl(SERVER, "net.ipv4.ip_unprivileged_port_start", start)
        prefix, trace = run.strace(SERVER, ("bind",))
        run.sh(SERVER, [*prefix, run.python(SERVER), "-m", "lab.servers.bind_as", server_ip, str(port)],
               title=f"bind_as {server_ip} {port} --uid 65534 (start {start}, strace)")
        binds = syscalls.named(run.syscalls(SERVER, trace), "bind")
        results[start] = binds[-1].errno or binds[-1].ret if binds else "no bind in the trace"
        if start == 1024:
            root = run.sh(SERVER, [run.python(SERVER), "-c", f"import socket; s = socket.socket(); "
                                   f"s.bind(('{server_ip}', {port})); print('root bound')"],
                          title=f"bind {port} as root (start 1024)")
    run.expect(expect.equals(f"uid 65534 binding port {port} with ip_unprivileged_port_start 1024: EACCES",
                             "EACCES", results[1024]))
    run.expect(expect.equals(f"with ip_unprivileged_port_start {port}: the bind succeeds", 0, results[port]))
    run.expect(expect.output_contains("root binds it at 1024 too (a weak claim: its own line)", root.output,
                                      "root bound"))
