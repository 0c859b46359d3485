"""Connect, then send and receive at given times and print what each call returned (§3.5, §3.9).

Meant for experiments where the interesting part is the *error*: after a
half-open connection meets the peer's RST, the next recv() gives ECONNRESET
and the send() after that EPIPE (SIGPIPE is ignored, so the errno is seen);
after a cable pull the recv() eventually gives ETIMEDOUT or EHOSTUNREACH.

Steps are ``T:ACTION[:ARG]``, T in seconds after the connection was made, run in
the order given (a step whose time has passed runs at once):

- ``T:send:DATA``   send DATA (backslash escapes such as ``\\r\\n`` work);
- ``T:recv[:S]``    one recv(), waiting up to S seconds (default ``--recv-timeout``);
- ``T:shutdown``    shutdown(SHUT_WR);
- ``T:close``       close the socket (ends the list).

Usage::

    python3 -m lab.servers.rst_client IP PORT --step 0:send:1234\\r\\n --step 3:send:12\\r\\n
        --step 3.1:recv:30 [--recv-timeout 1] [--timeout 10]

Output lines:

    connected local=IP:PORT
    step t=1.001 send 3 bytes
    step t=1.001 send errno=EPIPE(32)
    step t=1.502 recv 3 bytes 'abc'      (payload shown up to 64 bytes, then ...)
    step t=1.502 recv eof
    step t=1.502 recv errno=ECONNRESET(104)
    step t=1.502 recv timeout after=1
    step t=2.000 shutdown ok
    step t=2.000 close ok
    done errors=N                   (exit 1 if any step ended in errno=, else 0)
"""

from __future__ import annotations

import argparse
import socket
import time
from dataclasses import dataclass

from lab.servers._common import (
    add_endpoint,
    add_timeout,
    connect_within,
    errno_tag,
    fmt_addr,
    is_local_timeout,
    out,
    positive_float,
    run,
    show_bytes,
    unescape,
)


@dataclass(frozen=True)
class Step:
    at: float
    action: str
    data: bytes = b""
    wait: float | None = None


def parse_step(text: str) -> Step:
    """argparse type for ``T:ACTION[:ARG]``."""
    parts = text.split(":", 2)
    try:
        at = float(parts[0])
    except ValueError:
        raise argparse.ArgumentTypeError(f"step {text!r}: time {parts[0]!r} is not a number") from None
    action = parts[1] if len(parts) > 1 else ""
    arg = parts[2] if len(parts) > 2 else None
    if action == "send" and arg is not None:
        return Step(at, action, data=unescape(arg))
    if action == "recv":
        return Step(at, action, wait=float(arg) if arg else None)
    if action in ("shutdown", "close") and arg is None:
        return Step(at, action)
    raise argparse.ArgumentTypeError(
        f"step {text!r}: expected T:send:DATA, T:recv[:S], T:shutdown or T:close"
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rst_client", description="Timed send/recv steps; print each errno.")
    add_endpoint(p, server=False)
    p.add_argument("--step", type=parse_step, action="append", required=True, metavar="T:ACTION[:ARG]",
                   help="a timed step; repeat in time order")
    p.add_argument("--recv-timeout", type=positive_float, default=1.0, help="default wait of a recv step (1)")
    add_timeout(p, 10.0, "connect()")
    return p


def do_step(sock: socket.socket, step: Step, default_wait: float) -> str:
    """Run one step; return what to print after ``step t=...``."""
    try:
        if step.action == "send":
            sock.settimeout(default_wait)
            return f"send {sock.send(step.data)} bytes"
        if step.action == "recv":
            wait = step.wait if step.wait is not None else default_wait
            sock.settimeout(wait)
            try:
                data = sock.recv(65536)
            except TimeoutError as exc:
                if is_local_timeout(exc):
                    return f"recv timeout after={wait:g}"
                raise
            return f"recv {len(data)} bytes '{show_bytes(data, 64)}'" if data else "recv eof"
        if step.action == "shutdown":
            sock.shutdown(socket.SHUT_WR)
            return "shutdown ok"
        sock.close()
        return "close ok"
    except OSError as exc:
        if is_local_timeout(exc):
            return f"{step.action} timeout after={default_wait:g}"
        return f"{step.action} errno={errno_tag(exc.errno)}"


def main(args: argparse.Namespace) -> int:
    errors = 0
    with connect_within(args.ip, args.port, args.timeout) as sock:
        out(f"connected local={fmt_addr(sock.getsockname())}")
        start = time.monotonic()
        for step in args.step:
            time.sleep(max(0.0, step.at - (time.monotonic() - start)))
            result = do_step(sock, step, args.recv_timeout)
            errors += "errno=" in result
            out(f"step t={time.monotonic() - start:.3f} {result}")
            if step.action == "close":
                break
    out(f"done errors={errors}")
    return 1 if errors else 0


if __name__ == "__main__":
    run(main, parser())
