"""The project's servers and clients, run for real as processes over 127.0.0.1 (no root needed).

Each program is started the way a lab node starts it (``python -m
lab.servers.<name>``), but with ``-S`` so site-packages are invisible: a
program that quietly grew a third-party import fails here. Servers bind
port 0 and tell us their port in the ``listening on`` line; expectations are
computed from the kernel (buffer minimums, backlog + 1), never hard-coded.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lab.servers import PROGRAMS, tcpinfo

ROOT = Path(__file__).resolve().parents[2]
SERVERS_DIR = ROOT / "lab" / "servers"


def argv(name: str, *args: object) -> list[str]:
    return [sys.executable, "-S", "-m", f"lab.servers.{name}", *map(str, args)]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def run_prog(name: str, *args: object, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv(name, *args), capture_output=True, text=True, timeout=timeout, env=env())


class Running:
    """A program running in the background, its stdout lines collected by a thread as they come."""

    def __init__(self, name: str, *args: object) -> None:
        self.proc = subprocess.Popen(argv(name, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env())
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_line(self, pattern: str, timeout: float = 5.0) -> re.Match[str]:
        """The first new line matching ``pattern``; fails the test after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no line matching {pattern!r} within {timeout} s; got {self.lines}")
            if line is None:
                pytest.fail(f"program exited without a line matching {pattern!r}; got {self.lines}")
            self.lines.append(line)
            if match := re.search(pattern, line):
                return match

    def port(self) -> int:
        return int(self.wait_line(r"^listening on .*:(\d+)$").group(1))

    def finish(self, timeout: float = 10.0) -> tuple[int, list[str]]:
        """Wait for the exit; return the exit code and every stdout line."""
        code = self.proc.wait(timeout=timeout)
        while (line := self._queue.get(timeout=timeout)) is not None:
            self.lines.append(line)
        return code, self.lines

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextmanager
def running(name: str, *args: object) -> Iterator[Running]:
    prog = Running(name, *args)
    try:
        yield prog
    finally:
        prog.stop()


def must_match(pattern: str, text: str) -> re.Match[str]:
    match = re.fullmatch(pattern, text)
    assert match, f"{text!r} does not match {pattern!r}"
    return match


def must_search(pattern: str, text: str) -> re.Match[str]:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not found in {text!r}"
    return match


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_net_tcp() -> list[tuple[int, int, int, int]]:
    """(local port, remote port, state, rx_queue) of every IPv4 TCP socket."""
    rows = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        remote_port = int(fields[2].split(":")[1], 16)
        rx_queue = int(fields[4].split(":")[1], 16)
        rows.append((local_port, remote_port, int(fields[3], 16), rx_queue))
    return rows


TCP_ESTABLISHED, TCP_CLOSE_WAIT, TCP_LISTEN = 0x01, 0x08, 0x0A


def kernel_buffer(option: int, value: int) -> int:
    """What the kernel keeps for SO_RCVBUF/SO_SNDBUF = ``value`` (asked of the kernel, not computed)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, option, value)
        return int(s.getsockopt(socket.SOL_SOCKET, option))


# --- the registry -----------------------------------------------------------------------------------


def test_registry_names_every_program_module() -> None:
    programs = {p.stem for p in SERVERS_DIR.glob("*.py") if "run(main, parser())" in p.read_text()}
    assert programs == set(PROGRAMS)


def test_module_listing_prints_every_program() -> None:
    result = subprocess.run([sys.executable, "-S", "-m", "lab.servers"], capture_output=True, text=True,
                            env=env(), timeout=10)
    assert result.returncode == 0
    listed = {line.split()[0] for line in result.stdout.splitlines() if line and not line.startswith("run ")}
    assert listed == set(PROGRAMS)


def test_bad_arguments_exit_2_with_usage() -> None:
    result = run_prog("echo", "127.0.0.1", "70000")
    assert result.returncode == 2
    assert "usage:" in result.stderr


# --- echo, discard, daytime -------------------------------------------------------------------------


def test_echo_round_trip_and_clean_stop_on_sigterm() -> None:
    with running("echo", "127.0.0.1", 0) as server:
        port = server.port()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"hello echo")
            assert c.recv(100) == b"hello echo"
            local = c.getsockname()[1]
        server.wait_line(rf"^accepted 127\.0\.0\.1:{local}$")
        server.wait_line(rf"^closed 127\.0\.0\.1:{local} bytes=10 reason=eof$")
        server.proc.send_signal(signal.SIGTERM)
        code, lines = server.finish()
    assert code == 0
    assert lines[-1] == "stopped reason=signal"


def test_udp_echo_with_udp_client() -> None:
    with running("echo", "127.0.0.1", 0, "--udp") as server:
        result = run_prog("udp_client", "127.0.0.1", server.port(), "--message", "ping", "--count", 2,
                          "--interval", 0.01)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "sent n=1 bytes=4", "reply n=1 bytes=4 'ping'",
        "sent n=2 bytes=4", "reply n=2 bytes=4 'ping'",
        "done replies=2 errors=0 timeouts=0",
    ]


def test_udp_client_to_closed_port_sees_econnrefused() -> None:
    result = run_prog("udp_client", "127.0.0.1", free_port())
    assert result.returncode == 1
    assert "recv n=1 errno=ECONNREFUSED(111)" in result.stdout.splitlines()


def test_echo_server_stops_by_itself_after_duration() -> None:
    with running("echo", "127.0.0.1", 0, "--duration", 0.3) as server:
        server.port()
        code, lines = server.finish(timeout=5)
    assert code == 0
    assert lines[-1] == "stopped reason=duration"


def test_keystroke_client_times_each_echo() -> None:
    with running("echo", "127.0.0.1", 0) as server:
        result = run_prog("keystroke_client", "127.0.0.1", server.port(), "--count", 3, "--interval-ms", 10,
                          "--text", "ab")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [re.sub(r"rtt_ms=[\d.]+", "rtt_ms=X", line) for line in lines[1:4]] == [
        "key n=1 byte='a' rtt_ms=X", "key n=2 byte='b' rtt_ms=X", "key n=3 byte='a' rtt_ms=X",
    ]
    assert re.fullmatch(r"summary keys=3 median_rtt_ms=[\d.]+ max_rtt_ms=[\d.]+", lines[4])


def test_discard_counts_bytes_until_eof() -> None:
    with running("discard", "127.0.0.1", 0) as server:
        with socket.create_connection(("127.0.0.1", server.port()), timeout=5) as c:
            c.sendall(b"z" * 12345)
            local = c.getsockname()[1]
        server.wait_line(rf"^eof 127\.0\.0\.1:{local} bytes=12345$")


def test_daytime_client_looks_up_the_service_port_and_prints_the_time() -> None:
    with running("daytime", "127.0.0.1", 0) as server:
        result = run_prog("daytime_client", "localhost", "--port", server.port())
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"daytime port is {socket.getservbyname('daytime', 'tcp')}"
    assert lines[1] == "host localhost is 127.0.0.1"
    assert re.fullmatch(r"the day time is: \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}", lines[2])


# --- book 5-3, 5-5: listen backlog and accept ------------------------------------------------------


@pytest.mark.parametrize("backlog", [1, 3])
def test_testlisten_queues_backlog_plus_one(backlog: int) -> None:
    clients = backlog + 3
    with running("testlisten", "127.0.0.1", 0, backlog, "--duration", 30) as server:
        port = server.port()
        with running("connect_many", "127.0.0.1", port, "--count", clients, "--interval", 0.05,
                     "--settle", 0.3, "--hold", 5) as many:
            summary = many.wait_line(r"^summary .*$").group(0)
            rows = proc_net_tcp()
    assert summary == f"summary connected={backlog + 1} pending={clients - backlog - 1} failed=0"
    listener = [r for r in rows if r[0] == port and r[2] == TCP_LISTEN]
    established = [r for r in rows if r[0] == port and r[2] == TCP_ESTABLISHED]
    assert listener and listener[0][3] == backlog + 1  # the listener's Recv-Q: connections queued
    assert len(established) == backlog + 1


def test_testaccept_accepts_a_client_that_already_left() -> None:
    with running("testaccept", "127.0.0.1", 0, "--sleep", 1.0, "--hold", 3) as server:
        port = server.port()
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        client_port = c.getsockname()[1]
        c.close()  # the client exits before the server accepts
        server.wait_line(rf"^connected with ip: 127\.0\.0\.1 and port: {client_port}$", timeout=5)
        states = [r[2] for r in proc_net_tcp() if r[0] == port and r[1] == client_port]
        assert states == [TCP_CLOSE_WAIT]
        code, lines = server.finish()
    assert code == 0 and lines[-1] == "closed"


def test_testaccept_times_out_when_nobody_connects() -> None:
    result = run_prog("testaccept", "127.0.0.1", 0, "--sleep", 0, "--timeout", 0.2)
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1] == "timeout step=accept after=0.2"


# --- book 5-6/5-7: out-of-band data ----------------------------------------------------------------


def test_oob_receiver_prints_the_books_three_lines() -> None:
    with running("oob_recv", "127.0.0.1", 0) as server:
        sender = run_prog("oob_send", "127.0.0.1", server.port())
        code, lines = server.finish()
    assert sender.returncode == 0, sender.stderr
    assert sender.stdout.splitlines()[1:4] == [
        "sent 3 bytes of normal data '123'",
        "sent 3 bytes of oob data 'abc'",
        "sent 3 bytes of normal data '123'",
    ]
    assert code == 0
    assert lines[1:] == [
        "got 5 bytes of normal data '123ab'",
        "got 1 bytes of oob data 'c'",
        "got 3 bytes of normal data '123'",
    ]


# --- book 5-10/5-11: buffer sizes ------------------------------------------------------------------


@pytest.mark.parametrize(("recv_size", "send_size"), [(50, 2000), (3000, 6000)])
def test_buffer_programs_print_what_the_kernel_kept(recv_size: int, send_size: int) -> None:
    rcv_min = kernel_buffer(socket.SO_RCVBUF, 1)
    snd_min = kernel_buffer(socket.SO_SNDBUF, 1)
    rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
    wmem_max = int(Path("/proc/sys/net/core/wmem_max").read_text())
    with running("setrecvbuffer", "127.0.0.1", 0, recv_size) as server:
        port = server.port()
        sender = run_prog("setsendbuffer", "127.0.0.1", port, send_size, "--bytes", 512)
        code, lines = server.finish()
    assert sender.returncode == 0, sender.stderr
    assert code == 0
    expect_rcv = max(rcv_min, min(2 * recv_size, 2 * rmem_max))
    expect_snd = max(snd_min, min(2 * send_size, 2 * wmem_max))
    assert lines[0] == f"the tcp receive buffer size after setting is {expect_rcv}"
    assert sender.stdout.splitlines()[0] == f"the tcp send buffer size after setting is {expect_snd}"
    assert lines[-1] == "received 512 bytes"
    assert "sent 512 bytes" in sender.stdout.splitlines()


def test_small_buffer_requests_give_the_kernel_minimum() -> None:
    rcv_min = kernel_buffer(socket.SO_RCVBUF, 1)
    with running("setrecvbuffer", "127.0.0.1", 0, 1, "--timeout", 0.3) as server:
        server.wait_line(rf"^the tcp receive buffer size after setting is {rcv_min}$")


# --- §3.3: half-close, connect errors, TIME_WAIT ---------------------------------------------------


def test_half_close_client_gets_bye_hello() -> None:
    with running("halfclose_server", "127.0.0.1", 0) as server:
        client = run_prog("halfclose_client", "127.0.0.1", server.port())
        code, lines = server.finish()
    assert client.returncode == 0, client.stderr
    assert client.stdout.splitlines()[1:] == [
        "sent 5 bytes 'hello'", "shutdown SHUT_WR", "received 9 bytes 'bye:hello'", "closed",
    ]
    assert code == 0
    assert lines[2:] == ["eof after 5 bytes 'hello'", "sent 9 bytes 'bye:hello'", "closed"]


def test_connect_timer_to_closed_port_gives_econnrefused() -> None:
    result = run_prog("connect_timer", "127.0.0.1", free_port())
    assert result.returncode == 1
    assert re.fullmatch(r"elapsed=\d+\.\d{3} errno=ECONNREFUSED\(111\)\n", result.stdout)


def test_connect_timer_reports_a_connection() -> None:
    with running("echo", "127.0.0.1", 0) as server:
        result = run_prog("connect_timer", "127.0.0.1", server.port())
    assert result.returncode == 0
    assert re.fullmatch(r"connected elapsed=\d+\.\d{3} local=127\.0\.0\.1:\d+\n", result.stdout)


def test_connect_timer_tells_kernel_timeout_from_its_own_deadline() -> None:
    """A full accept queue drops SYNs: the kernel gives ETIMEDOUT, our deadline gives ``timeout``."""
    with running("testlisten", "127.0.0.1", 0, 0, "--duration", 30) as server:
        port = server.port()
        with running("connect_many", "127.0.0.1", port, "--count", 1, "--settle", 0.1, "--hold", 20) as many:
            many.wait_line(r"^summary connected=1 ")
            ours = run_prog("connect_timer", "127.0.0.1", port, "--timeout", 0.3)
            kernels = run_prog("connect_timer", "127.0.0.1", port, "--syncnt", 1, timeout=15)
    assert ours.returncode == 1
    assert re.fullmatch(r"elapsed=0\.\d{3} timeout step=connect after=0\.3\n", ours.stdout)
    assert kernels.returncode == 1
    match = re.fullmatch(r"elapsed=(\d+\.\d{3}) errno=ETIMEDOUT\(110\)\n", kernels.stdout)
    assert match and float(match.group(1)) >= 1.0  # at least one SYN retransmission (1 s RTO) happened


def test_bind_client_twice_gives_eaddrinuse_from_time_wait() -> None:
    local_port = free_port()
    with running("echo", "127.0.0.1", 0) as server:
        port = server.port()
        first = run_prog("bind_client", "127.0.0.1", port, "--local-port", local_port)
        second = run_prog("bind_client", "127.0.0.1", port, "--local-port", local_port)
        with_reuse = run_prog("bind_client", "127.0.0.1", port, "--local-port", local_port, "--reuseaddr")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "bind ok", f"connected local=127.0.0.1:{local_port} peer=127.0.0.1:{port}", "closed",
    ]
    for result in (second, with_reuse):  # the TIME_WAIT socket did not set SO_REUSEADDR: both fail
        assert result.returncode == 1
        assert result.stdout.splitlines() == [
            "bind failed: [Errno 98] Address already in use", "errno=EADDRINUSE(98)",
        ]


@pytest.mark.parametrize(
    ("old", "new", "ok"), [(False, True, False), (True, True, True), (True, False, False)]
)
def test_reuse_server_restart_matrix(old: bool, new: bool, ok: bool) -> None:
    port = free_port()
    first_args = ["127.0.0.1", port] + (["--reuseaddr"] if old else [])
    with running("reuse_server", *first_args) as server:
        server.port()
        # The client stays open while the server closes first, then closes: the server holds TIME_WAIT.
        run_prog("connect_many", "127.0.0.1", port, "--count", 1, "--settle", 0.1, "--hold", 0.3)
        code, lines = server.finish()
    assert code == 0 and lines[-1] == "closed first"
    second = run_prog("reuse_server", "127.0.0.1", port, "--bind-only", *(["--reuseaddr"] if new else []))
    if ok:
        assert second.returncode == 0
        assert second.stdout.splitlines() == ["bind ok", f"listening on 127.0.0.1:{port}"]
    else:
        assert second.returncode == 1
        assert second.stdout.splitlines() == [
            "bind failed: [Errno 98] Address already in use", "errno=EADDRINUSE(98)",
        ]


# --- §3.5: resets ----------------------------------------------------------------------------------


def test_linger_abort_resets_the_slow_reader() -> None:
    with running("linger_abort_server", "127.0.0.1", 0, "--bytes", 100_000, "--write-stall", 0.3) as server:
        reader = run_prog("slow_reader", "127.0.0.1", server.port(), "--rcvbuf", 2048, "--sleep", 1.0)
        code, lines = server.finish()
    assert code == 0
    written = int(must_match(r"wrote (\d+) of 100000 bytes", lines[2]).group(1))
    assert lines[3] == "so_linger on=1 linger=0"
    must_match(r"close returned 0 after=\d+\.\d{3}", lines[4])
    assert reader.returncode == 1
    received = must_match(r"received (\d+) bytes errno=ECONNRESET\(104\)", reader.stdout.splitlines()[-1])
    assert int(received.group(1)) < written


def test_without_linger_the_slow_reader_gets_everything() -> None:
    with running("linger_abort_server", "127.0.0.1", 0, "--bytes", 100_000, "--no-linger") as server:
        reader = run_prog("slow_reader", "127.0.0.1", server.port(), "--sleep", 0.5)
        code, lines = server.finish()
    assert code == 0 and "so_linger" not in " ".join(lines)
    assert reader.returncode == 0
    assert reader.stdout.splitlines()[-1] == "received 100000 bytes eof"


def test_rst_client_sees_econnreset_then_epipe() -> None:
    with running("linger_abort_server", "127.0.0.1", 0, "--bytes", 0, "--delay", 0) as server:
        result = run_prog("rst_client", "127.0.0.1", server.port(),
                          "--step", "0.5:recv", "--step", "0.6:send:a\\r\\n", "--step", "0.7:close")
        server.finish()
    steps = [re.sub(r"t=[\d.]+ ", "", line) for line in result.stdout.splitlines()[1:]]
    assert steps == ["step recv errno=ECONNRESET(104)", "step send errno=EPIPE(32)", "step close ok",
                     "done errors=2"]
    assert result.returncode == 1


def test_rst_client_rejects_a_malformed_step() -> None:
    result = run_prog("rst_client", "127.0.0.1", 1, "--step", "soon:send:x")
    assert result.returncode == 2
    assert "time 'soon' is not a number" in result.stderr


# --- §3.6: Nagle and delayed ACK -------------------------------------------------------------------


def test_nagle_rounds_wait_for_the_delayed_ack_and_nodelay_does_not() -> None:
    with running("nagle_server", "127.0.0.1", 0) as server:
        result = run_prog("nagle_client", "127.0.0.1", server.port(), "--rounds", 10, "--mode", "both")
    assert result.returncode == 0, result.stderr
    medians = dict(re.findall(r"^median mode=(\w+) ms=([\d.]+) rounds=10$", result.stdout, re.M))
    assert float(medians["nagle"]) >= 30  # one delayed-ACK timer (TCP_DELACK_MIN = 40 ms) per round
    assert float(medians["nodelay"]) < 5
    assert len(re.findall(r"^round mode=nagle n=\d+ ms=", result.stdout, re.M)) == 10


# --- bulk transfer and TCP_INFO --------------------------------------------------------------------


def _other_allowed_cc() -> str:
    allowed = Path("/proc/sys/net/ipv4/tcp_allowed_congestion_control").read_text().split()
    default = Path("/proc/sys/net/ipv4/tcp_congestion_control").read_text().strip()
    return next((cc for cc in allowed if cc != default), allowed[0])


def test_bulk_send_sets_congestion_control_and_reports_tcp_info() -> None:
    cc = _other_allowed_cc()
    with running("bulk_recv", "127.0.0.1", 0, "--info") as server:
        sender = run_prog("bulk_send", "127.0.0.1", server.port(), "--bytes", 2_000_000, "--cc", cc, "--info")
        code, lines = server.finish()
    assert sender.returncode == 0, sender.stderr
    out = sender.stdout.splitlines()
    assert out[0] == f"cc={cc}"
    start = next(line for line in out if line.startswith("tcp_info when=start "))
    assert f" cc={cc} state=ESTAB " in start
    assert int(must_search(r" cwnd=(\d+) ", start).group(1)) > 0
    assert re.search(r"^sent 2000000 bytes secs=[\d.]+ mbit_per_s=[\d.]+$", sender.stdout, re.M)
    assert code == 0
    assert any(re.fullmatch(r"received 2000000 bytes secs=[\d.]+", line) for line in lines)


def test_receiver_rcvbuf_before_connect_gives_window_scale_zero() -> None:
    with running("bulk_send", "127.0.0.1", 0, "--listen", "--bytes", 20000, "--info") as sender:
        receiver = run_prog("bulk_recv", "127.0.0.1", sender.port(), "--connect", "--rcvbuf", 2048, "--info")
        code, lines = sender.finish()
    assert receiver.returncode == 0, receiver.stderr
    assert receiver.stdout.splitlines()[0] == f"rcvbuf={kernel_buffer(socket.SO_RCVBUF, 2048)}"
    start = next(line for line in lines if line.startswith("tcp_info when=start "))
    assert re.search(r" wscale=\d+,0 ", receiver.stdout)  # our receive side scales by 0
    assert re.search(r" wscale=0,\d+ ", start)  # and the sender sees a peer scale of 0
    assert code == 0


def test_tcp_info_decoding_agrees_with_ss() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with socket.create_connection(listener.getsockname(), timeout=5) as c:
            conn, _ = listener.accept()
            with conn:
                c.sendall(b"x" * 100_000)
                conn.recv(200_000)
                time.sleep(0.05)
                info = tcpinfo.read(c)
                ss = subprocess.run(["ss", "-tin", "src", f"127.0.0.1:{c.getsockname()[1]}"],
                                    capture_output=True, text=True, timeout=5).stdout
    assert f" mss:{info['snd_mss']} " in ss
    assert f" cwnd:{info['snd_cwnd']}" in ss
    assert f" rto:{info['rto'] / 1000:g} " in ss
    assert f" advmss:{info['advmss']} " in ss
    assert f"wscale:{info['wscale'] & 0xF},{info['wscale'] >> 4} " in ss
    assert tcpinfo.TCP_STATES[info["state"]] == "ESTAB"


@pytest.mark.parametrize("mode, events", [("lt", 13), ("et", 2)])
def test_mtlt_reports_a_connection_per_chunk_in_lt_and_per_arrival_in_et(mode: str, events: int) -> None:
    with running("mtlt", "127.0.0.1", 0, "--mode", mode, "--chunk", 9) as server:
        sent = run_prog("send_once", "127.0.0.1", server.port(), "--bytes", 100, "--hold", 0.5)
        assert "sent 100 bytes" in sent.stdout
        code, lines = server.finish()  # it ends after its one connection
    assert code == 0 and lines.count("event trigger once") == events
    assert ("read later" in lines) == (mode == "et")


@pytest.mark.parametrize("reap, left", [("once", 2), ("loop", 0)])
def test_reap_server_leaves_zombies_with_one_waitpid_per_signal(reap: str, left: int) -> None:
    with running("reap_server", "127.0.0.1", 0, "--children", 3, "--reap", reap, "--hold", 2) as server:
        port = server.port()
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
        for _ in clients:
            server.wait_line(r"^forked pid=\d+$")
        for c in clients:
            c.close()
        server.wait_line(r"^handler reaped \d+$")
        states = subprocess.run(["ps", "-o", "stat=", "--ppid", str(server.proc.pid)], capture_output=True,
                                text=True).stdout.split()
        assert len([s for s in states if s.startswith("Z")]) == left
        assert "zombies 3" in server.lines


def test_udp_reader_reads_one_datagram_per_call() -> None:
    with running("udp_reader", "127.0.0.1", 0, "--count", 5, "--wait", 0.5) as server:
        run_prog("udp_burst", "127.0.0.1", server.port(), "--sizes", "100,200,300,400,500")
        _, lines = server.finish()
    assert [line for line in lines if "returned" in line] == [
        "full returned 100", "short returned 50", "recvmsg returned 50 flags=MSG_TRUNC", "trunc returned 400",
        "full returned 500"]


def test_frame_reader_gets_every_length_prefixed_message_whole() -> None:
    with running("frame_reader", "127.0.0.1", 0, "--count", 3) as server:
        sent = run_prog("frame_sender", "127.0.0.1", server.port(), "--sizes", "100,200,300", "--pause", 0.1)
        assert sent.returncode == 0
        code, lines = server.finish()
    assert code == 0
    assert [line for line in lines if line.startswith("message ")] == [
        "message 0: 100 bytes intact", "message 1: 200 bytes intact", "message 2: 300 bytes intact"]


@pytest.mark.parametrize("timer", ["list", "wheel", "heap"])
def test_idle_timers_kick_the_silent_and_once_speaking_clients_but_not_the_steady_one(timer: str) -> None:
    with running("idle_timers", "127.0.0.1", 0, "--timer", timer, "--timeslot", 1, "--duration", 9) as server:
        clients = run_prog("idle_clients", "127.0.0.1", server.port(), "--every", 1.5, "--once-at", 1.5,
                           "--for", 7, timeout=15)
    eof = {m.group(1): float(m.group(2)) for m in re.finditer(r"eof role=(\w+) after=([\d.]+)", clients.stdout)}
    assert set(eof) == {"silent", "once"}, clients.stdout  # the steady client is never kicked
    # 3 × TIMESLOT after the last data; the list's whole-second deadlines may come up to a second early
    assert (2 if timer == "list" else 3) <= eof["silent"] <= 4.5
    assert (3.5 if timer == "list" else 4.5) <= eof["once"] <= 6


def test_threadpool_http_keeps_alive_refuses_http_1_0_and_sends_a_big_file_whole_to_a_slow_reader() -> None:
    with running("threadpool_http", "127.0.0.1", 0, "--files", "index.html=64,big.bin=300000",
                 "--duration", 20) as server:
        port = server.port()
        keep = run_prog("http_get", "127.0.0.1", port, "--keep-alive", "--repeat", 3)
        old = run_prog("http_get", "127.0.0.1", port, "--version", "HTTP/1.0")
        missing = run_prog("http_get", "127.0.0.1", port, "--path", "/missing")
        big = run_prog("http_get", "127.0.0.1", port, "--path", "/big.bin", "--keep-alive", "--rcvbuf", 4096,
                       "--read-after", 0.5)
    assert keep.stdout.count("response status=200 length=64 keep=keep-alive") == 3
    assert "response status=400 length=68 keep=close" in old.stdout and "eof" in old.stdout
    assert "response status=404 length=49 keep=close" in missing.stdout
    assert "response status=200 length=300000 keep=keep-alive" in big.stdout


def test_stress_client_holds_its_connections_and_counts_every_response() -> None:
    with running("threadpool_http", "127.0.0.1", 0, "--backlog", 512, "--duration", 20) as server:
        done = run_prog("stress_client", "127.0.0.1", server.port(), "--connections", 200, "--duration", 2,
                        "--think", 0.2, timeout=30)
    assert "established all=200" in done.stdout
    sent = must_search(r"requests sent=(\d+) responses=(\d+)", done.stdout)
    assert int(sent.group(1)) == int(sent.group(2)) > 200


def test_stress_client_refuses_a_load_beyond_its_bounds() -> None:
    refused = run_prog("stress_client", "127.0.0.1", 80, "--connections", 50000)
    assert refused.returncode == 2 and "outside 1..20000" in refused.stderr


@pytest.mark.parametrize(("handler", "result"), [("restart", "recv returned 4"), ("interrupt", "recv errno=EINTR(4)"),
                                                 ("python", "recv returned 4")])
def test_eintr_recv_sees_what_its_handler_lets_it_see(handler: str, result: str) -> None:
    with running("late_reply", "127.0.0.1", 0, "--at", 0.8, "--hold", 0.2) as server:
        done = run_prog("eintr_recv", "127.0.0.1", server.port(), "--handler", handler, "--alarm", 0.2)
    assert "alarm handled" in done.stdout and result in done.stdout


def test_unified_source_reads_signals_in_its_loop_and_closes_every_client_on_sigterm() -> None:
    with running("unified_source", "127.0.0.1", 0, "--duration", 20) as server:
        port = server.port()
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2)]
        for _ in clients:
            server.wait_line(r"^accepted ")
        server.proc.send_signal(signal.SIGHUP)
        server.wait_line(r"^signal 1$")
        server.proc.send_signal(signal.SIGTERM)
        code, lines = server.finish()
        assert all(c.recv(10) == b"" for c in clients)
    assert code == 0 and "signal 15" in lines and "closed 2 clients" in lines


def test_chat_poll_turns_away_one_user_too_many_and_relays_a_message_to_the_others_only() -> None:
    with running("chat_poll", "127.0.0.1", 0, "--users", 2, "--duration", 20) as server:
        port = server.port()
        first = socket.create_connection(("127.0.0.1", port), timeout=5)
        server.wait_line("now have 1 users")
        second = socket.create_connection(("127.0.0.1", port), timeout=5)
        server.wait_line("now have 2 users")
        third = socket.create_connection(("127.0.0.1", port), timeout=5)
        assert third.recv(100) == b"too many users\n" and third.recv(100) == b""
        first.sendall(b"hello")
        assert second.recv(100) == b"hello"
        first.settimeout(0.3)
        with pytest.raises(TimeoutError):
            first.recv(100)  # never back to its sender
        for sock in (first, second, third):
            sock.close()


def test_processpool_cgi_runs_the_cgi_in_turn_and_closes_an_unknown_path_with_nothing() -> None:
    with running("processpool_cgi", "127.0.0.1", 0, "--processes", 3, "--duration", 20) as server:
        port = server.port()
        served = run_prog("cgi_client", "127.0.0.1", port, "--count", 4)
        unknown = run_prog("cgi_client", "127.0.0.1", port, "--path", "/no/such/cgi")
        turns = [server.wait_line(r"^send request to child (\d+)$").group(1) for _ in range(5)]
    uname = subprocess.run(["/usr/bin/uname"], capture_output=True, text=True).stdout.strip()
    assert served.stdout.splitlines() == [f"reply {len(uname) + 1} bytes: {uname}"] * 4
    assert unknown.stdout.strip() == "reply 0 bytes:"
    assert turns == ["0", "1", "2", "0", "1"]


@pytest.mark.parametrize(("via", "oob"), [("select", "get 1 bytes of oob data: c"),
                                          ("sigurg", "get 1 bytes of oob data: c")])
def test_oob_watch_gets_the_urgent_byte_by_select_or_by_sigurg(via: str, oob: str) -> None:
    with running("oob_watch", "127.0.0.1", 0, "--via", via) as server:
        assert run_prog("oob_send", "127.0.0.1", server.port(), "--pause", 0.2).returncode == 0
        code, lines = server.finish()
    assert code == 0 and oob in lines
    assert [line for line in lines if "normal" in line] == [
        "get 3 bytes of normal data: 123", "get 2 bytes of normal data: ab", "get 3 bytes of normal data: 123"]


def test_oob_watch_with_oobinline_gets_einval_and_keeps_the_byte_in_the_stream() -> None:
    with running("oob_watch", "127.0.0.1", 0, "--via", "sigurg", "--oobinline") as server:
        assert run_prog("oob_send", "127.0.0.1", server.port(), "--pause", 0.2).returncode == 0
        code, lines = server.finish()
    assert "oob errno=EINVAL(22)" in lines
    assert "".join(line.rpartition(": ")[2] for line in lines if "normal" in line) == "123abc123"
