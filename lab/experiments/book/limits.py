"""Ch.16 limits a busy server meets: the client's ephemeral ports (§16.2), decided by the kernel."""

from __future__ import annotations

from lab.errors import InputError
from lab.experiments import expect, syscalls
from lab.experiments.book import sstext
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
