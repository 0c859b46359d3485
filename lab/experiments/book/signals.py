"""Ch.10 and ch.13 signals: what the kernel delivers, decided from the process table and the packets."""

from __future__ import annotations

import re

from lab.errors import InputError
from lab.experiments import expect
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
