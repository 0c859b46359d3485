"""What every server and client in lab.servers shares: output lines, errno reporting, deadlines, sockets.

These programs run inside lab nodes (network namespaces, containers), so this
module uses the standard library only and imports nothing else from ``lab``.

Conventions every program follows (experiment code parses them):

- One line per event on stdout, flushed at once (``out``), so a runner reading
  the pipe sees each event when it happens, not when a buffer fills.
- A server prints ``listening on IP:PORT`` (the real port, also when given 0)
  once ``listen()`` has returned: wait for that line, never sleep.
- A socket error that ends the program prints ``errno=NAME(n)`` on stdout
  (plus context on stderr) and exits 1. ``NAME`` is the kernel's errno name,
  e.g. ``errno=ECONNREFUSED(111)``.
- A *local* deadline (one of our ``--timeout``s) is not a kernel error and is
  reported differently: ``timeout step=<step> after=<seconds>`` and exit 1. So
  ``errno=ETIMEDOUT(110)`` always means the kernel gave up (SYN or data
  retransmissions), never that our own timer fired first.
- SIGTERM or SIGINT ends a program cleanly: ``stopped reason=signal``, exit 0.
- Bad arguments: argparse prints usage on stderr and exits 2.
"""

from __future__ import annotations

import argparse
import errno as errno_mod
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType


class Stopped(Exception):
    """Raised in the main thread by SIGTERM/SIGINT so blocking calls unwind and the program exits 0."""


class LocalTimeout(Exception):
    """One of our own deadlines expired (not a kernel error)."""

    def __init__(self, step: str, after: float) -> None:
        super().__init__(f"{step} did not complete within {after:g} s")
        self.step = step
        self.after = after


def out(line: str) -> None:
    """Print one event line on stdout and flush it now, in one write(2): processes that share the pipe (a
    fork server's, a pool's) never interleave inside a line, buffered or not (PYTHONUNBUFFERED)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def err(message: str) -> None:
    """Print a human message on stderr (never parsed by experiments)."""
    print(message, file=sys.stderr, flush=True)


def errno_tag(number: int | None) -> str:
    """``ECONNRESET(104)`` for 104: the form every program prints after ``errno=``."""
    if number is None:
        return "UNKNOWN(0)"
    return f"{errno_mod.errorcode.get(number, 'E?')}({number})"


def is_local_timeout(exc: BaseException) -> bool:
    """Python's own socket timeouts are TimeoutError with no errno; the kernel's ETIMEDOUT carries 110."""
    return isinstance(exc, TimeoutError) and exc.errno is None


def fmt_addr(addr: tuple[object, ...]) -> str:
    """``IP:PORT`` for IPv4, ``[IP]:PORT`` for IPv6."""
    host, port = str(addr[0]), int(str(addr[1]))
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def family_of(ip: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def port_number(text: str) -> int:
    """argparse type for ports: 0..65535 (0 lets a server take any free port)."""
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is outside 0..65535")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must not be negative")
    return value


def add_endpoint(parser: argparse.ArgumentParser, server: bool, default_port: int | None = None) -> None:
    """The book's argv shape: ``IP PORT`` (bind address for servers, target for clients)."""
    what = "address to bind and listen on" if server else "server address to connect to"
    parser.add_argument("ip", help=what + " (IPv4 or IPv6 literal)")
    if default_port is None:
        hint = " (0 = any free port)" if server else ""
        parser.add_argument("port", type=port_number, help="TCP/UDP port" + hint)
    else:
        parser.add_argument("port", type=port_number, nargs="?", default=default_port,
                            help=f"port (default {default_port})")


def add_service_times(parser: argparse.ArgumentParser, idle: bool = True) -> None:
    """``--duration`` (lifetime of a long-running server) and ``--idle-timeout`` (per connection)."""
    parser.add_argument("--duration", type=positive_float, default=600.0,
                        help="exit 0 after this many seconds (600)")
    if idle:
        parser.add_argument("--idle-timeout", type=positive_float, default=60.0,
                            help="close a connection that stays silent this long (60)")


def add_timeout(parser: argparse.ArgumentParser, default: float = 10.0,
                what: str = "each blocking step") -> None:
    parser.add_argument("--timeout", type=positive_float, default=default,
                        help=f"bound on {what}, seconds ({default:g})")


def tcp_socket(ip: str) -> socket.socket:
    return socket.socket(family_of(ip), socket.SOCK_STREAM)


def listen_tcp(ip: str, port: int, backlog: int = 5, reuseaddr: bool = True,
               before_bind: Callable[[socket.socket], None] | None = None) -> socket.socket:
    """Socket, optional options, bind, listen; then print ``listening on IP:PORT``.

    ``reuseaddr`` defaults on so restarting a server does not trip over its own
    TIME_WAIT; programs that study SO_REUSEADDR (reuse_server) turn it off.
    """
    sock = tcp_socket(ip)
    if reuseaddr:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        if before_bind is not None:
            before_bind(sock)
        sock.bind((ip, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        exc.add_note(f"while binding {fmt_addr((ip, port))}")
        raise
    out(f"listening on {fmt_addr(sock.getsockname())}")
    return sock


def accept_within(listener: socket.socket, timeout: float) -> tuple[socket.socket, tuple[object, ...]]:
    """accept() bounded by ``timeout`` seconds; the new socket is blocking until told otherwise."""
    listener.settimeout(timeout)
    try:
        conn, peer = listener.accept()
    except TimeoutError as exc:
        if is_local_timeout(exc):
            raise LocalTimeout("accept", timeout) from None
        raise
    conn.settimeout(None)
    return conn, peer


def serve_threads(listener: socket.socket, duration: float,
                  handle: Callable[[socket.socket, str], None], threaded: bool = True) -> None:
    """Accept connections until ``duration`` runs out; print ``accepted IP:PORT`` and hand each to ``handle``.

    A thread per connection keeps one slow client from blocking the others;
    the threads are daemons, so the program still exits when time is up.
    """
    deadline = Deadline(duration)
    while not deadline.expired():
        listener.settimeout(max(deadline.left(), 0.001))
        try:
            conn, addr = listener.accept()
        except TimeoutError as exc:
            if is_local_timeout(exc):
                break
            raise
        conn.settimeout(None)
        peer = fmt_addr(addr)
        out(f"accepted {peer}")
        if threaded:
            threading.Thread(target=handle, args=(conn, peer), daemon=True).start()
        else:
            handle(conn, peer)
    out("stopped reason=duration")


def connect_within(ip: str, port: int, timeout: float,
                   before_connect: Callable[[socket.socket], None] | None = None) -> socket.socket:
    """Socket, optional options (set before the SYN), connect bounded by ``timeout``."""
    sock = tcp_socket(ip)
    if before_connect is not None:
        before_connect(sock)
    sock.settimeout(timeout)
    try:
        sock.connect((ip, port))
    except TimeoutError as exc:
        sock.close()
        if is_local_timeout(exc):
            raise LocalTimeout("connect", timeout) from None
        exc.add_note(f"while connecting to {fmt_addr((ip, port))}")
        raise
    except OSError as exc:
        sock.close()
        exc.add_note(f"while connecting to {fmt_addr((ip, port))}")
        raise
    except BaseException:
        sock.close()
        raise
    sock.settimeout(None)
    return sock


def recv_within(sock: socket.socket, size: int, timeout: float, step: str = "recv", flags: int = 0) -> bytes:
    sock.settimeout(timeout)
    try:
        return sock.recv(size, flags)
    except TimeoutError as exc:
        if is_local_timeout(exc):
            raise LocalTimeout(step, timeout) from None
        raise


def read_to_eof(sock: socket.socket, timeout: float, keep: bool = False,
                step: str = "recv") -> tuple[int, bytes]:
    """Read until the peer's FIN; ``timeout`` bounds each wait for data. Returns (count, data if keep)."""
    total, chunks = 0, list[bytes]()
    while True:
        data = recv_within(sock, 65536, timeout, step)
        if not data:
            return total, b"".join(chunks)
        total += len(data)
        if keep:
            chunks.append(data)


def set_linger(sock: socket.socket, seconds: int) -> None:
    """SO_LINGER {on, seconds}: 0 makes close() abort with an RST and drop unsent data."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, seconds))


def show_bytes(data: bytes, limit: int | None = None) -> str:
    """Payload as text for a log line; non-printable bytes escaped so one event stays one line.

    With ``limit``, only the first ``limit`` bytes are shown, followed by ``...``.
    """
    text = data[:limit].decode("latin-1") if limit is not None else data.decode("latin-1")
    shown = "".join(ch if " " <= ch <= "~" else repr(ch)[1:-1] for ch in text)
    return shown + "..." if limit is not None and len(data) > limit else shown


def unescape(text: str) -> bytes:
    r"""Turn ``a\r\n`` typed on a command line into the 3 bytes it names."""
    return text.encode("latin-1").decode("unicode_escape").encode("latin-1")


class Deadline:
    """A point in monotonic time; ``left()`` is what remains, never negative."""

    def __init__(self, seconds: float) -> None:
        self.start = time.monotonic()
        self.end = self.start + seconds

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.end

    def elapsed(self) -> float:
        return time.monotonic() - self.start


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signal.Signals(signum).name)


def run(main: Callable[[argparse.Namespace], int], parser: argparse.ArgumentParser,
        argv: list[str] | None = None) -> None:
    """Parse ``argv``, run ``main``, and turn how it ended into the house exit codes and lines."""
    args = parser.parse_args(argv)
    prog = parser.prog
    signal.signal(signal.SIGTERM, _raise_stopped)
    signal.signal(signal.SIGINT, _raise_stopped)
    # Python already ignores SIGPIPE; say so explicitly: a write to a reset socket must give EPIPE, not death.
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    try:
        code = main(args)
    except Stopped:
        out("stopped reason=signal")
        code = 0
    except LocalTimeout as exc:
        out(f"timeout step={exc.step} after={exc.after:g}")
        err(f"{prog}: {exc}; raise --timeout if the peer is just slow")
        code = 1
    except OSError as exc:
        if is_local_timeout(exc):
            out("timeout step=io")
            err(f"{prog}: timed out")
        else:
            out(f"errno={errno_tag(exc.errno)}")
            notes = getattr(exc, "__notes__", [])
            err(f"{prog}: {exc}" + "".join(f" ({note})" for note in notes))
        code = 1
    sys.exit(code)


class SignalPipe:
    """The unified event source (book 10-1): each of ``signals`` becomes one byte, its number, to read from
    ``reader`` in the program's event loop. The handler does nothing else; Python's ``set_wakeup_fd``
    writes the byte, as the book's ``sig_handler`` writes into ``pipefd[1]``. ``restart`` installs the
    handlers with SA_RESTART (``siginterrupt(False)``), which select, poll and epoll ignore (signal(7))."""

    def __init__(self, *signals: signal.Signals, restart: bool = False) -> None:
        self.reader, self.writer = socket.socketpair()  # the writer is kept: its descriptor is the wakeup fd
        self.reader.setblocking(False)
        self.writer.setblocking(False)
        for number in signals:
            signal.signal(number, lambda n, frame: None)
            signal.siginterrupt(number, not restart)
        signal.set_wakeup_fd(self.writer.fileno())

    def fileno(self) -> int:
        return self.reader.fileno()

    def received(self) -> list[int]:
        """The signals that came since the last call (their numbers, in order); none if none."""
        try:
            return list(self.reader.recv(64))
        except BlockingIOError:
            return []
