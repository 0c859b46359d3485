"""Book 15-3…15-6: the half-sync/half-reactor HTTP server: one epoll thread, a pool of worker threads.

Usage::

    python3 -m lab.servers.threadpool_http IP PORT [--threads 8] [--backlog 5] [--files index.html=64,...]
                                           [--root DIR] [--duration 600]

The main thread (the reactor) accepts, reads each connection's bytes until EAGAIN (ET), and queues the
connection for a worker; a worker parses the request with the book's state machine (§8.6: request
line, headers, blank line) and builds the response; the main thread writes it with ``writev(header,
file)`` (§6.3; the file is mmap'd, §6.5), waiting for EPOLLOUT when the socket buffer is full. Every
connection is registered EPOLLONESHOT, so one worker at a time owns it (§9.3.4).

The book's rules, kept: only ``GET`` and ``HTTP/1.1`` are accepted (anything else: ``400 Bad
Request``); ``Connection: keep-alive`` keeps the connection for the next request, anything else closes
it after the response; a missing file is ``404``. The responses carry the book's headers, in its order::

    HTTP/1.1 200 OK\\r\\nContent-Length: N\\r\\nConnection: keep-alive\\r\\n\\r\\n<file>

The files are made at start in a private directory (``--files NAME=BYTES,...``), or served from
``--root``. Output: ``listening on IP:PORT``; ``served N requests`` at exit.
"""

from __future__ import annotations

import argparse
import mmap
import os
import queue
import resource
import select
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from lab.servers._common import add_endpoint, listen_tcp, out, positive_float, run

ONESHOT = select.EPOLLONESHOT | select.EPOLLET | select.EPOLLRDHUP
ERRORS = {  # the book's 15-5 status lines and bodies
    400: ("Bad Request", "Your request has bad syntax or is inherently impossible to satisfy.\n"),
    403: ("Forbidden", "You do not have permission to get file from this server.\n"),
    404: ("Not Found", "The requested file was not found on this server.\n"),
}


@dataclass
class HttpConn:
    """One connection's state (the book's ``http_conn``): bytes read, the response being written."""

    sock: socket.socket
    inbox: bytearray = field(default_factory=bytearray)
    parts: list[memoryview] = field(default_factory=list)  # what writev still has to send
    mapped: mmap.mmap | None = None
    keep_alive: bool = False

    def release(self) -> None:
        for part in self.parts:
            part.release()  # the views on the mapping first, or it cannot close
        self.parts = []
        if self.mapped is not None:
            self.mapped.close()
            self.mapped = None


def parse(inbox: bytearray) -> tuple[dict[str, str], int] | None:
    """The book's FSM over the bytes so far: the request line and headers up to the blank line.
    None while the request is incomplete (LINE_OPEN); else the fields and the bytes consumed."""
    end = inbox.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = inbox[:end].decode("latin-1").split("\r\n")
    method, _, rest = lines[0].partition(" ")
    url, _, version = rest.strip().partition(" ")
    request = {"method": method.strip(), "url": url.strip(), "version": version.strip()}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        request[name.strip().lower()] = value.strip()
    return request, end + 4


def respond(conn: HttpConn, request: dict[str, str], root: Path) -> None:
    """``do_request`` and ``process_write``: the status, the book's headers, and the mmap'd file."""
    conn.keep_alive = request.get("connection", "").lower() == "keep-alive"
    url = request["url"]
    if url.lower().startswith("http://"):
        url = "/" + url[7:].partition("/")[2]
    status, body = 200, b""
    if request["method"] != "GET" or request["version"].upper() != "HTTP/1.1" or not url.startswith("/"):
        status = 400
    else:
        path = (root / url.lstrip("/")).resolve()
        if root not in path.parents or not path.is_file():
            status = 404
        elif not os.access(path, os.R_OK):
            status = 403
    if status == 200:
        size = path.stat().st_size
        if size:
            with open(path, "rb") as file:
                conn.mapped = mmap.mmap(file.fileno(), 0, prot=mmap.PROT_READ)
        title = "OK"
    else:
        title, text = ERRORS[status]
        body, size = text.encode(), len(text)
    header = (f"HTTP/1.1 {status} {title}\r\nContent-Length: {size}\r\n"
              f"Connection: {'keep-alive' if conn.keep_alive else 'close'}\r\n\r\n").encode()
    conn.parts = [memoryview(header + body)] + ([memoryview(conn.mapped)] if conn.mapped is not None else [])


class Server:
    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.root = root
        self.poller = select.epoll()
        self.conns: dict[int, HttpConn] = {}
        self.work: queue.Queue[HttpConn | None] = queue.Queue()
        self.served = 0
        self.lock = threading.Lock()
        self.workers = [threading.Thread(target=self.worker, daemon=True) for _ in range(args.threads)]
        for thread in self.workers:  # the pool first: "listening on" means every thread exists
            thread.start()
        self.listener = listen_tcp(args.ip, args.port, backlog=args.backlog)
        self.listener.setblocking(False)
        self.poller.register(self.listener.fileno(), select.EPOLLIN)

    def worker(self) -> None:
        """A pool thread (15-3 ``threadpool::run``): parse a queued connection's request, then hand it back
        to the reactor for writing (EPOLLOUT), or for more bytes (EPOLLIN) while the request is incomplete."""
        while (conn := self.work.get()) is not None:
            parsed = parse(conn.inbox)
            if parsed is None:
                self.rearm(conn, select.EPOLLIN)
                continue
            request, used = parsed
            del conn.inbox[:used]
            respond(conn, request, self.root)
            with self.lock:
                self.served += 1
            self.rearm(conn, select.EPOLLOUT)

    def rearm(self, conn: HttpConn, event: int) -> None:
        try:
            self.poller.modify(conn.sock.fileno(), event | ONESHOT)
        except (OSError, ValueError):
            pass  # closed meanwhile

    def loop(self, duration: float) -> None:
        end = time.monotonic() + duration
        while time.monotonic() < end:
            for fd, events in self.poller.poll(max(0.0, min(1.0, end - time.monotonic()))):
                if fd == self.listener.fileno():
                    self.accept_all()
                elif (conn := self.conns.get(fd)) is None:
                    continue
                elif events & select.EPOLLOUT:
                    self.write(conn)
                elif events & (select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR):
                    self.read(conn)

    def accept_all(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            except OSError:
                return  # EMFILE and the like: the connection waits in the queue
            sock.setblocking(False)
            self.conns[sock.fileno()] = HttpConn(sock)
            self.poller.register(sock.fileno(), select.EPOLLIN | ONESHOT)

    def read(self, conn: HttpConn) -> None:
        """``http_conn::read``: ET, so read until EAGAIN; EOF or an error closes the connection."""
        while True:
            try:
                data = conn.sock.recv(65536)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                self.close(conn)
                return
            conn.inbox += data
        self.work.put(conn)

    def write(self, conn: HttpConn) -> None:
        """``http_conn::write``: writev what is left, advancing past what the kernel took; EAGAIN waits
        for EPOLLOUT. Done: keep-alive waits for the next request, else the connection closes."""
        while conn.parts:
            try:
                sent = os.writev(conn.sock.fileno(), conn.parts)
            except BlockingIOError:
                self.rearm(conn, select.EPOLLOUT)
                return
            except OSError:
                self.close(conn)
                return
            while conn.parts and sent >= len(conn.parts[0]):
                sent -= len(conn.parts.pop(0))
            if conn.parts:
                conn.parts[0] = conn.parts[0][sent:]
        conn.release()
        if not conn.keep_alive:
            self.close(conn)
        elif parse(conn.inbox) is not None:
            self.work.put(conn)  # the next request is already here
        else:
            self.rearm(conn, select.EPOLLIN)

    def close(self, conn: HttpConn) -> None:
        fd = conn.sock.fileno()
        self.conns.pop(fd, None)
        self.poller.unregister(fd)
        conn.release()
        conn.sock.close()

    def stop(self) -> None:
        for _ in self.workers:
            self.work.put(None)
        for conn in list(self.conns.values()):
            self.close(conn)
        out(f"served {self.served} requests")


def file_bytes(size: int) -> bytes:
    """What a made file of ``size`` bytes holds: a repeating, readable pattern (a check can rebuild it)."""
    pattern = b"0123456789abcdefghijklmnopqrstuvwxyz\n"
    return (pattern * (size // len(pattern) + 1))[:size]


def make_files(spec: str, into: Path) -> None:
    """``NAME=BYTES,...``: each file :func:`file_bytes` of that size."""
    for item in filter(None, spec.split(",")):
        name, _, size = item.partition("=")
        (into / name).write_bytes(file_bytes(int(size)))


def raise_nofile() -> None:
    """A pool server holds a descriptor per client: take the hard limit on open files."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="threadpool_http", description="Half-sync/half-reactor HTTP server (15-3…15-6).")
    add_endpoint(p, server=True)
    p.add_argument("--threads", type=int, default=8, help="worker threads (the book's 8)")
    p.add_argument("--backlog", type=int, default=5, help="listen() backlog (the book's 5)")
    p.add_argument("--files", default="index.html=64", help="files to serve, NAME=BYTES,... (index.html=64)")
    p.add_argument("--root", type=Path, help="serve this directory instead of made files")
    p.add_argument("--duration", type=positive_float, default=600.0, help="exit 0 after this many seconds")
    return p


def main(args: argparse.Namespace) -> int:
    raise_nofile()
    made: Path | None = None if args.root else Path(tempfile.mkdtemp(prefix="threadpool_http-"))
    root: Path = (args.root if made is None else made).resolve()
    try:
        if made is not None:
            make_files(args.files, made)
        server = Server(args, root)
        try:
            server.loop(args.duration)
        finally:
            server.stop()
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
    return 0


if __name__ == "__main__":
    run(main, parser())
