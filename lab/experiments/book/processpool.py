"""§15.3-§15.4: the process-pool CGI server (listings 15-1/15-2), seen from the kernel.

Which process accepted each connection, which one it forked, what that one put on its standard
output and exec'd: strace -f of the whole pool. What the client got: the capture. Zombies: ps.
The edge-triggered listener's stranded connections: ss.
"""

from __future__ import annotations

import re

from lab.errors import InputError
from lab.experiments import expect, syscalls
from lab.experiments.book import flows
from lab.experiments.book.socket_api import queue_reaches, queued_on
from lab.experiments.context import Run
from lab.experiments.engine import experiment

CLIENT, SERVER = "kongming20", "ernest-laptop"
CGI = "/usr/bin/uname"  # a program every node has, whose output the node itself can tell us


def holders(run: Run, port: int) -> list[int]:
    """Every process holding the LISTEN socket on ``port`` (the pool's parent and its children)."""
    listed = run.sh(SERVER, ["ss", "-Hltnp", f"sport = :{port}"], title=f"ss -ltnp sport = :{port}").stdout
    return sorted({int(pid) for pid in re.findall(r"pid=(\d+)", listed)})


def parent_of_pool(run: Run, pids: list[int]) -> int | None:
    """The one holder whose parent is not a holder: the pool's parent."""
    listed = run.sh(SERVER, ["ps", "-o", "pid=,ppid=", "-p", ",".join(map(str, pids))], title="ps pid,ppid").stdout
    pairs = [tuple(map(int, line.split())) for line in listed.splitlines() if len(line.split()) == 2]
    return next((pid for pid, ppid in pairs if ppid not in pids), None)


def lingering_zombies(run: Run, pool: list[int], checks: int = 5) -> list[str]:
    """Zombie children of the pool's processes that are still there after ``checks`` looks 0.2 s apart
    (a CGI that has just exited may not be reaped yet; one that stays is the bug)."""
    zombies: list[str] = []
    for _ in range(checks):
        listed = run.sh(SERVER, ["ps", "-o", "pid=,stat=", "--ppid", ",".join(map(str, pool))],
                        title="ps --ppid (the pool's children)").stdout
        zombies = [line.strip() for line in listed.splitlines() if len(line.split()) == 2 and "Z" in line.split()[1]]
        if not zombies:
            return []
        run.sleep(0.2)
    return zombies


@experiment(
    id="processpool-cgi",
    title="The process-pool CGI server: children accept in turn, a grandchild runs the CGI with the connection "
          "as its stdout; the edge-triggered listener strands connections",
    section="§15.3-§15.4",
    topology="book-lan.yaml",
    needs={"strace"},
    book="""\\
$ ./cgisrv 192.168.1.109 12345              (代码清单15-2, on 代码清单15-1 processpool.h: 8 processes by
                                             default; the parent round-robins: m_sub_process[i].m_pipefd
                                             gets new_conn, and that child accept()s)
(cgi_conn::process: ret = fork(); ... else { close( STDOUT_FILENO ); dup( m_sockfd );
 execl( m_buf, m_buf, 0 ); exit( 0 ); }        — the CGI program's output goes to the client)""",
    modern="""As the book, on 6.x: the parent watches the listener and tells the children in turn; the
    child told accepts (strace: accept4 by each child in turn), forks, and the grandchild puts the
    connection on its standard output and execs the CGI program, whose output is what the client
    reads, and whose exit is the FIN. The child reaps the grandchild on SIGCHLD, so no zombie
    stays. An unknown program's path is closed with nothing sent. processpool.h registers the
    listener edge-triggered and accepts once per notification: connections that arrive together
    (here while the parent is stopped, then continued) make one event and one accept, and the rest
    stay in the accept queue (ss Recv-Q) until more arrive. The pool here has `processes` children.""",
)
def processpool_cgi(run: Run, port: int = 12520, processes: int = 5, requests: int = 10) -> None:
    if not (2 <= processes <= 16 and processes <= requests <= 40):
        raise InputError(f"-p processes={processes} -p requests={requests}: processes 2..16, requests from "
                         "processes to 40")
    server_ip = run.ip(SERVER)
    expected = run.sh(SERVER, [CGI], title=f"{CGI} (what the CGI prints, run in the node)").stdout.encode()
    prefix, trace = run.strace(SERVER, ("accept4", "clone", "clone3", "dup2", "dup3", "execve"))
    with run.capture([f"{SERVER}:eth0"], f"tcp port {port}"):
        server = run.spawn(SERVER, [*prefix, run.python(SERVER), "-m", "lab.servers.processpool_cgi", server_ip,
                                    str(port), "--processes", str(processes), "--duration", "30"],
                           title=f"processpool_cgi {server_ip} {port} --processes {processes} (strace)",
                           ready="listening on")
        run.py(CLIENT, "cgi_client", server_ip, str(port), "--count", str(requests), timeout=30)
        run.py(CLIENT, "cgi_client", server_ip, str(port), "--path", "/no/such/cgi", timeout=15)
        pool = holders(run, port)
        zombies = lingering_zombies(run, pool) if pool else None
        parent = parent_of_pool(run, pool)
        run.sh(SERVER, ["kill", "-TERM", str(parent)], title=f"kill -TERM {parent} (the pool's parent: it stops its "
               "children and exits)")
        server.wait(20)
    calls = run.syscalls(SERVER, trace)
    judge_pool(run, calls, processes, requests)
    conns = flows.opened_in_order(run.packets, port)
    served = [flows.stream(c, server_ip) for c in conns]
    closers = [next((p.src for p in expect.fins(c)), None) for c in conns]
    run.expect(expect.check(f"each of the {requests} connections carries the CGI's output, {expected!r}, then the "
                            "server's FIN", len(conns) == requests + 1 and all(s == expected for s in served[:requests])
                            and all(c == server_ip for c in closers[:requests]),
                            f"{requests} × {expected!r}", f"{served[:requests]}, closed by {set(closers[:requests])}"))
    run.expect(expect.check("an unknown CGI path: the server closes with nothing sent", len(conns) == requests + 1
                            and served[-1] == b"" and closers[-1] == server_ip, "a FIN, no data",
                            f"{served[-1]!r}, first FIN from {closers[-1]}" if conns else "no connection"))
    about_zombies = "no zombie among the pool's children after the requests (ps: SIGCHLD reaped in a WNOHANG loop)"
    run.expect(expect.equals(about_zombies, [], zombies) if zombies is not None else
               expect.error(about_zombies, "no process holds the listening socket: the pool was not found"))
    stranded(run, port + 1, processes, server_ip)


def judge_pool(run: Run, calls: list[syscalls.Syscall], processes: int, requests: int) -> None:
    """From strace -f: who accepted each connection, and what its grandchild did with it."""
    accepts = [c for c in syscalls.named(calls, "accept4") if c.ret is not None and c.ret >= 0]
    pids = [c.pid for c in accepts]
    run.expect(expect.check(f"the children accept in turn: {processes} distinct processes, connection k accepted by "
                            f"child k mod {processes} (strace accept4)",
                            len(pids) == requests + 1 and len(set(pids)) == processes
                            and all(pid == pids[k % processes] for k, pid in enumerate(pids)),
                            f"{requests + 1} accepts by {processes} processes, in turn", pids))
    good = sum(1 for _, ran in cgi_runs(calls) if ran)
    run.expect(expect.check(f"for each request the child forks, and the grandchild dup2s the connection onto fd 1 "
                            f"and execs {CGI} (strace)", good == requests,
                            f"{requests} × accept → clone → dup2(conn, 1) → execve", f"{good} of {requests}"))


def cgi_runs(calls: list[syscalls.Syscall]) -> list[tuple[int, bool]]:
    """Per fork after an accept, in trace order: the accepted fd, and whether the forked process put that fd
    on its standard output (dup2(fd, 1)) and exec'd the CGI program."""
    accepted: dict[int, int] = {}  # a pool child's pid → the fd it accepted last
    forks: list[tuple[int, int]] = []  # (fd, the grandchild's pid)
    for c in calls:
        if c.name == "accept4" and c.ret is not None and c.ret >= 0:
            accepted[c.pid] = c.ret
        elif c.name in ("clone", "clone3") and c.ret and c.pid in accepted:
            forks.append((accepted.pop(c.pid), c.ret))
    dup = {(c.pid, c.args.split(",")[0].strip()) for c in syscalls.named(calls, "dup2", "dup3") if c.ret == 1}
    execs = {c.pid for c in syscalls.named(calls, "execve") if c.ret == 0 and CGI in c.args}
    return [(fd, (child, str(fd)) in dup and child in execs) for fd, child in forks]


def stranded(run: Run, port: int, processes: int, server_ip: str) -> None:
    """processpool.h's edge-triggered listener: three connections while the parent is stopped make one
    event when it continues; one is accepted, two stay queued."""
    server = run.serve(SERVER, "processpool_cgi", server_ip, str(port), "--processes", str(processes),
                       "--duration", "10")
    parent = parent_of_pool(run, holders(run, port))
    run.sh(SERVER, ["kill", "-STOP", str(parent)], title=f"kill -STOP {parent} (the pool's parent)")
    clients = [run.start(CLIENT, "cgi_client", server_ip, str(port), "--timeout", "10") for _ in range(3)]
    queued = queue_reaches(run, port, 3, timeout=5.0)  # the kernel's barrier: all three handshakes done
    run.sh(SERVER, ["kill", "-CONT", str(parent)], title=f"kill -CONT {parent}")
    run.sleep(1.0)
    left = queued_on(run, port)
    run.expect(expect.equals("while the parent is stopped, the three connections wait in the accept queue "
                             "(ss -ltn Recv-Q)", 3, queued))
    run.expect(expect.equals("edge-triggered listener, three connections arrived together: one event, one accept, "
                             "two left in the accept queue (ss -ltn Recv-Q)", 2, left))
    for client in clients:
        client.stop()
    server.stop()
