"""§9.6 the chat room on poll() (listings 9-6/9-7): six users in two nodes, one message, one user leaving.

The server is the project's ``chat_poll`` (USER_LIMIT 5, BUFFER_SIZE 64); what each user received is
read from the capture at the server, the poll() results from strace, and the book's
``events |= ~POLLIN`` bug from the CPU time the kernel counts for the server.
"""

from __future__ import annotations

from lab.capture.records import Packet
from lab.errors import InputError
from lab.experiments import expect, syscalls
from lab.experiments.book import flows
from lab.experiments.book.signals import listener_pid
from lab.experiments.book.wan import FAR
from lab.experiments.context import Run
from lab.experiments.engine import experiment
from lab.experiments.programs import Proc

CLIENT, SERVER = "kongming20", "ernest-laptop"
TICKS = 100  # USER_HZ: /proc/PID/stat counts CPU time in hundredths of a second


def cpu_seconds(run: Run, pid: int | None) -> float | None:
    """The process's CPU time so far, user and system (/proc/PID/stat fields 14 and 15)."""
    if pid is None:
        return None
    stat = run.sh(SERVER, ["cat", f"/proc/{pid}/stat"], title=f"cat /proc/{pid}/stat").stdout
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS if len(fields) > 12 else None


def busy(run: Run, port: int, seconds: float = 1.0) -> float | None:
    """The CPU the server on ``port`` spends per second of wall time, over ``seconds``."""
    pid = listener_pid(run, port)
    before, started = cpu_seconds(run, pid), run.now()
    run.sleep(seconds)
    after, ended = cpu_seconds(run, pid), run.now()  # run.now: observations, so lab check divides alike
    return None if before is None or after is None else (after - before) / (ended - started)


def join(run: Run, node: str, server_ip: str, port: int, until: float, *extra: str) -> Proc:
    """One user, waited for until connected, so users join in order."""
    user = run.start(node, "chat_client", server_ip, str(port), "--until", f"{until:.3f}", *extra)
    user.wait_for("connected")
    return user


@experiment(
    id="chat-room-poll",
    title="The poll() chat room: a sixth user is turned away, a message reaches every other user, a user leaving "
          "shows as POLLRDHUP; the listing's |= ~POLLIN spins",
    section="§9.6",
    topology="book-lan.yaml",
    needs={"strace"},
    book="""\\
$ ./chat_server 192.168.1.109 12345      (代码清单9-7: USER_LIMIT 5, BUFFER_SIZE 64, poll on
comes a new user, now have 1 users        POLLIN | POLLRDHUP | POLLERR)
...
get 5 bytes of client data hello from 4   (then: fds[j].events |= ~POLLIN; fds[j].events |= POLLOUT;)
a client left                             (POLLRDHUP)
(a sixth user: "too many users\\n", then close)""",
    modern="""As the book, on 6.x: a sixth user gets "too many users\\n" (15 bytes) and a FIN; a user's
    message goes to each of the others in a segment, never back to its sender; a user closing shows
    in poll's revents as POLLIN|POLLRDHUP and the server closes its end. The listing's
    `fds[j].events |= ~POLLIN` means `&= ~POLLIN`: as printed it sets every event bit, POLLOUT
    among them, so once a message has been sent poll() returns at once, forever, and the server
    spins on a CPU doing nothing (the kernel's CPU count for it, /proc/PID/stat). The users are in
    two nodes: kongming20 on the LAN and far-host behind the routers.""",
)
def chat_room_poll(run: Run, port: int = 12510, users: int = 5) -> None:
    if not 2 <= users <= 10:
        raise InputError(f"-p users={users}: from 2 to 10 (USER_LIMIT; one more user is turned away)")
    server_ip = run.ip(SERVER)
    nodes = [CLIENT if n % 2 == 0 else FAR for n in range(users + 1)]
    with run.capture([f"{SERVER}:eth0"], f"tcp portrange {port}-{port + 1}"):
        prefix, trace = run.strace(SERVER, ("poll", "ppoll"))
        until = run.now() + users + 6
        server = run.spawn(SERVER, [*prefix, run.python(SERVER), "-m", "lab.servers.chat_poll", server_ip, str(port),
                                    "--users", str(users), "--duration", f"{until + 1 - run.now():.1f}"],
                           title=f"chat_poll {server_ip} {port} --users {users} (strace)", ready="listening on")
        others = [join(run, node, server_ip, port, until) for node in nodes[:users - 1]]
        said = run.now() + 1.0
        speaker = join(run, nodes[users - 1], server_ip, port, until, "--say", "hello", "--say-at", f"{said:.3f}")
        turned_away = join(run, nodes[users], server_ip, port, until)
        run.sleep(max(0.0, said + 0.5 - run.now()))
        quiet = busy(run, port)
        others[1].stop()  # the second user leaves
        server.wait_for("a client left")
        for user in [*others, speaker, turned_away]:  # the rest leave now, and the server is stopped (SIGTERM)
            user.stop()
        run.sh(SERVER, ["kill", "-TERM", str(listener_pid(run, port))], title="kill -TERM (the server)")
        server.wait(10)
        spinning = book_bug(run, port + 1, server_ip)
    calls = syscalls.named(run.syscalls(SERVER, trace), "poll", "ppoll")
    judge(run, flows.opened_in_order(run.packets, port), server_ip, users, calls)
    run.expect(expect.within("the server, once the message is delivered, sleeps in poll(): CPU per second of wall "
                             "time (/proc/PID/stat)", quiet, high=0.1))
    run.expect(expect.within("with the listing's `events |= ~POLLIN` (--book-bug) it spins instead: poll() returns "
                             "at once, forever (≥ 0.25: a quarter of a core at the least, on a busy machine)",
                             spinning, low=0.25))


def book_bug(run: Run, port: int, server_ip: str) -> float | None:
    """The listing's bug: two users, one message, then the server's CPU over a second."""
    until = run.now() + 5
    server = run.serve(SERVER, "chat_poll", server_ip, str(port), "--book-bug", "--duration", "6")
    said = run.now() + 0.8
    users = [join(run, CLIENT, server_ip, port, until),
             join(run, CLIENT, server_ip, port, until, "--say", "hello", "--say-at", f"{said:.3f}")]
    run.sleep(max(0.0, said + 0.3 - run.now()))
    spinning = busy(run, port)
    for user in users:
        user.stop()
    server.stop()
    run.note(f"--book-bug: the server printed {server.stdout.strip().splitlines()[-1:]} (its own count)")
    return spinning


def judge(run: Run, conns: list[list[Packet]], server_ip: str, users: int, calls: list[syscalls.Syscall]) -> None:
    """What each user got: the stream the server sent it, and who closed first."""
    if len(conns) != users + 1:
        run.expect(expect.error(f"{users + 1} connections", f"{len(conns)} in the capture"))
        return
    sent = [flows.stream(c, server_ip) for c in conns]
    speaker, leaver, away = users - 1, 1, users
    closer = next((p.src for p in expect.fins(conns[away])), None)
    run.expect(expect.check(f"user {users + 1} gets exactly 'too many users\\n' (15 bytes), then the server's FIN",
                            sent[away] == b"too many users\n" and closer == server_ip,
                            "15 bytes, then [F.] from the server", f"{sent[away]!r}, first FIN from {closer}",
                            conns[away][-4:]))
    heard = [n + 1 for n in range(users) if b"hello" in sent[n]]
    run.expect(expect.equals(f"'hello' from user {speaker + 1} reaches every other user, and not its sender",
                             [n + 1 for n in range(users) if n != speaker], heard))
    hup = [c for c in calls if "revents=POLLIN|POLLRDHUP}" in c.after]
    run.expect(expect.check(f"user {leaver + 1} leaving shows in poll() as revents POLLIN|POLLRDHUP (strace)",
                            bool(hup), "revents=POLLIN|POLLRDHUP", hup[0].after if hup else "not in the trace"))
    fins = expect.fins(conns[leaver])
    run.expect(expect.check(f"and the server closes its end: a FIN after user {leaver + 1}'s",
                            len(fins) >= 2 and fins[0].src != server_ip and fins[1].src == server_ip,
                            "the user's FIN, then the server's", [p.src for p in fins], fins[:2]))
    run.expect(expect.count("no connection is reset", expect.rsts([p for c in conns for p in c]), 0))
