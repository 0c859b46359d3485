"""Ch.10 and ch.13 signals: what the kernel delivers, decided from the process table and the packets."""

from __future__ import annotations

import re

from lab.errors import InputError
from lab.experiments import expect, syscalls
from lab.experiments.book import flows
from lab.experiments.context import Run
from lab.experiments.engine import experiment

CLIENT, SERVER = "kongming20", "ernest-laptop"


def listener_pid(run: Run, port: int) -> int | None:
    """The process that holds the LISTEN socket on ``port`` (ss -p: the kernel's account)."""
    found = re.search(r"pid=(\d+)", run.sh(SERVER, ["ss", "-Hltnp", f"sport = :{port}"], record=False).stdout)
    return int(found.group(1)) if found else None


def children_states(run: Run, pid: int) -> list[str]:
    """The process states (ps STAT) of ``pid``'s children."""
    listed = run.sh(SERVER, ["ps", "-o", "pid=,stat=", "--ppid", str(pid)], title=f"ps --ppid {pid} (its children)")
    return [line.split()[1] for line in listed.stdout.splitlines() if len(line.split()) == 2]


@experiment(
    id="sigchld-reap-loop",
    title="Standard signals do not queue: one waitpid per SIGCHLD leaves zombies, a WNOHANG loop reaps them all",
    section="§13.3, §10.3",
    topology="book-lan.yaml",
    lasts=10,
    book="""\\
static void sig_child(int sig)             (§13.3 处理僵尸进程)
{
    pid_t pid; int stat;
    while ( ( pid = waitpid( -1, &stat, WNOHANG ) ) > 0 )
    { /* 对结束的子进程进行善后处理 */ }
}
(§10.3: a signal that arrives while the same signal is pending is not queued: the process
 sees it once. So a handler must reap every child that has ended, not one per signal.)""",
    modern="""Unchanged on 6.x. The server forks a child per connection and blocks SIGCHLD while its
    children end together (the clients close at once), so the kernel holds one pending SIGCHLD for
    all of them. Unblocked, the handler runs once: with one waitpid it reaps one child and the
    rest stay zombies (state Z in ps, until the parent exits); with the WNOHANG loop none is left.
    Without the block the count is a race (1 to 3 zombies of 5 were seen), so the experiment blocks
    to make the kernel's coalescing decide. CPython adds a coalescing of its own (its C handler
    sets a flag; the Python handler runs once per flag), which only strengthens the point.""",
)
def sigchld_reap_loop(run: Run, port: int = 12360, children: int = 5) -> None:
    if not 2 <= children <= 50:
        raise InputError(f"-p children={children}: from 2 to 50")
    server_ip, client_ip = run.ip(SERVER), run.ip(CLIENT)
    seen: dict[str, list[str]] = {}
    with run.capture([f"{SERVER}:eth0"], f"tcp portrange {port}-{port + 1}"):
        for offset, mode in enumerate(("once", "loop")):
            server = run.serve(SERVER, "reap_server", server_ip, str(port + offset), "--children", str(children),
                               "--reap", mode, "--hold", "3", "--duration", "30")
            client = run.start(CLIENT, "connect_many", server_ip, str(port + offset), "--count", str(children),
                               "--settle", "0.3", "--hold", "60")
            if not client.wait_for("summary", 15):
                raise RuntimeError(f"the clients did not connect: {client.stdout[-300:]}")
            pid = listener_pid(run, port + offset)
            client.stop()  # every connection closes at once: the children read EOF and exit together
            if not server.wait_for("handler reaped", 15):
                raise RuntimeError(f"reap_server's handler never ran: {server.stdout[-300:]}")
            run.sleep(0.3)
            seen[mode] = children_states(run, pid) if pid else []
            server.wait(10)
    for offset, mode in enumerate(("once", "loop")):
        zombies = [s for s in seen[mode] if s.startswith("Z")]
        left = children - 1 if mode == "once" else 0
        how = "one waitpid per signal" if mode == "once" else "waitpid(-1, WNOHANG) in a loop"
        run.expect(expect.equals(f"{mode}: {how} leaves {left} of the {children} children zombies (ps: state Z)",
                                 left, len(zombies)))
        conn = flows.conversation(run.packets, client_ip, server_ip, port + offset)
        fins = {side: {flows.seg(p).conn for p in expect.fins(conn) if p.src == side}
                for side in (client_ip, server_ip)}
        run.expect(expect.check(f"{mode}: {children} connections closed by both sides: each child exited on EOF "
                                "(its FIN)", len(fins[client_ip]) == children and len(fins[server_ip]) == children,
                                f"{children} client FINs, {children} server FINs",
                                f"{len(fins[client_ip])} client FINs, {len(fins[server_ip])} server FINs"))


HANDLERS = {  # what each eintr_recv mode's trace shows, in order: the kernel's answer, then who acts
    "restart": ("SA_RESTART: the kernel restarts recv itself; the handler runs after it returns",
                ["recvfrom ERESTARTSYS", "recvfrom data", "handler"]),
    "interrupt": ("no SA_RESTART: libc's recv fails EINTR, and no one calls it again",
                  ["recvfrom ERESTARTSYS", "handler"]),
    "python": ("no SA_RESTART, Python's recv: the interpreter runs the handler and calls recv again (PEP 475)",
               ["recvfrom ERESTARTSYS", "handler", "recvfrom data"]),
}


def order(calls: list[syscalls.Syscall]) -> list[str]:
    """A trace of recvfrom and write cut to what decides: each recvfrom's result, and the handler's line."""
    out = []
    for c in calls:
        if c.name == "recvfrom":
            out.append(f"recvfrom {c.errno}" if c.errno else "recvfrom data" if (c.ret or 0) > 0 else "recvfrom 0")
        elif c.name == "write" and "alarm handled" in c.args:
            out.append("handler")
    return out


@experiment(
    id="signals-eintr-unified-source",
    title="A signal interrupts a blocking recv (restarted with SA_RESTART, EINTR without); signals as events in "
          "the epoll loop",
    section="§10.1.4, §10.4",
    topology="book-lan.yaml",
    needs={"strace"},
    book="""\\
(§10.1.4 中断系统调用: 如果程序在执行处于阻塞状态的系统调用时接收到信号，并且我们为该信号设置了信号处理函数，
 则默认情况下系统调用将被中断，并且errno被设置为EINTR。我们可以使用sigaction函数为信号设置SA_RESTART标志
 以自动重启被该信号中断的系统调用。)
$ ./unievent 192.168.1.109 12345          (代码清单10-1 统一事件源: sig_handler writes the signal's
                                          number into pipefd[1]; the epoll loop reads pipefd[0];
                                          SIGTERM/SIGINT → stop_server)""",
    modern="""As the book, seen in strace: a blocking recv that a signal interrupts ends in the kernel with
    ERESTARTSYS ("to be restarted if SA_RESTART is set"). With SA_RESTART the kernel calls it again
    by itself and the handler runs only when it returns with the data; without, libc's recv returns
    EINTR. Python's own recv hides the difference: the interpreter runs the handler and calls recv
    again (PEP 475), so the program never sees EINTR, though the kernel returned it; libc's recv is
    called here through ctypes to see the kernel's answer. (epoll_wait is never restarted, even with
    SA_RESTART: idle-connection-timers shows it.) The unified event source: the handler writes one
    byte, the signal's number, into a socketpair (Python's set_wakeup_fd) and the loop reads it as
    an event: SIGHUP gives 1, SIGTERM 15, and on 15 the server closes every client and exits 0.""",
)
def signals_eintr_unified_source(run: Run, port: int = 12500, alarm: float = 0.5, reply: float = 1.5) -> None:
    if not (0.2 <= alarm <= 5 and alarm + 0.5 <= reply <= 10):
        raise InputError(f"-p alarm={alarm} -p reply={reply}: alarm 0.2..5 s, reply at least 0.5 s after it, ≤ 10 s")
    server_ip, client_ip = run.ip(SERVER), run.ip(CLIENT)
    traces = {}
    running = []
    for offset, handler in enumerate(HANDLERS):  # the three at once, each with its own server and trace
        replier = run.serve(SERVER, "late_reply", server_ip, str(port + offset), "--at", f"{reply:g}", "--hold", "1")
        prefix, trace = run.strace(CLIENT, ("recvfrom", "write"))
        client = run.spawn(CLIENT, [*prefix, run.python(CLIENT), "-m", "lab.servers.eintr_recv", server_ip,
                                    str(port + offset), "--handler", handler, "--alarm", f"{alarm:g}"],
                           title=f"eintr_recv --handler {handler} --alarm {alarm:g} (strace)")
        running.append((handler, replier, client, trace))
    for handler, replier, client, trace in running:
        client.wait(reply + 15)
        replier.wait(10)
        traces[handler] = run.syscalls(CLIENT, trace)
    for handler, (what, expected) in HANDLERS.items():
        calls = traces[handler]
        run.expect(expect.equals(f"{handler}: {what} (strace: recvfrom results and the handler's write, in order)",
                                 expected, order(calls)))
        first = next((c for c in calls if c.name == "recvfrom"), None)
        run.expect(expect.within(f"{handler}: the signal ends the first recvfrom after {alarm:g} s (strace -T)",
                                 first.seconds if first else None, low=alarm * 0.9, high=alarm * 1.1 + 0.05))
    unified_source(run, port + 3, server_ip, client_ip)


def unified_source(run: Run, port: int, server_ip: str, client_ip: str) -> None:
    """10-1: three clients connected, SIGHUP and then SIGTERM sent to the server; the pipe's bytes from
    strace, the FINs from the capture, the exit code from the kernel."""
    with run.capture([f"{CLIENT}:eth0"], f"tcp port {port}"):
        prefix, trace = run.strace(SERVER, ("recvfrom",))
        server = run.spawn(SERVER, [*prefix, run.python(SERVER), "-m", "lab.servers.unified_source", server_ip,
                                    str(port), "--duration", "20"],
                           title=f"unified_source {server_ip} {port} (strace)", ready="listening on")
        clients = run.start(CLIENT, "idle_clients", server_ip, str(port), "--every", "100", "--once-at", "100",
                            "--for", "15")
        clients.wait_for("connected role=once")
        pid = listener_pid(run, port)
        for name in ("HUP", "TERM"):
            run.sh(SERVER, ["kill", f"-{name}", str(pid)], title=f"kill -{name} {pid} (the server)")
            run.sleep(0.3)
        rc = server.wait(10)
        clients.wait(20)
    read = [m.group(1) for c in syscalls.named(run.syscalls(SERVER, trace), "recvfrom")
            if (m := re.match(r'\d+, "(\\\d+)"', c.args)) and c.ret == 1]
    run.expect(expect.equals("the handler's bytes, read from the pipe in the loop: 1 (SIGHUP), then 15 (SIGTERM) "
                             "(strace recvfrom)", ["\\1", "\\17"], read))
    conns = flows.opened_in_order(run.packets, port)
    first_fins = [expect.fins(c)[0] for c in conns if expect.fins(c)]
    run.expect(expect.check("on SIGTERM the server closes every client: the first FIN of each of the 3 connections is "
                            "the server's", len(conns) == 3 and len(first_fins) == 3
                            and all(p.src == server_ip for p in first_fins), "3 connections, 3 server FINs",
                            f"{len(conns)} connections, first FINs from {[p.src for p in first_fins]}", first_fins))
    run.expect(expect.count("no connection is reset", expect.rsts([p for c in conns for p in c]), 0))
    run.expect(expect.exit_code("and it exits 0 (stop_server)", rc, 0))
