"""§10.1.4 中断系统调用: a blocking recv that a signal interrupts, with and without SA_RESTART.

Usage::

    python3 -m lab.servers.eintr_recv IP PORT --handler restart|interrupt|python [--alarm 0.5] [--timeout 10]

Connects, arms SIGALRM for ``--alarm`` seconds with a handler, then blocks in recv:

- ``restart``: the handler installed with SA_RESTART; recv is libc's, called through ctypes, so
  what it returns is the kernel's answer: the call is restarted, and returns the data when it comes;
- ``interrupt``: without SA_RESTART, libc's recv fails EINTR when the signal arrives;
- ``python``: without SA_RESTART, but recv is Python's own: Python retries EINTR by itself (PEP
  475), so the program never sees it, though the kernel returned it.

Output lines::

    connected local=IP:PORT
    alarm handled
    recv returned N after=SECONDS          (or: recv errno=EINTR(4) after=SECONDS)
"""

from __future__ import annotations

import argparse
import ctypes
import signal
import time

from lab.servers._common import add_endpoint, add_timeout, connect_within, errno_tag, fmt_addr, out, positive_float, run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eintr_recv", description="A blocking recv interrupted by SIGALRM.")
    add_endpoint(p, server=False)
    p.add_argument("--handler", choices=("restart", "interrupt", "python"), required=True)
    p.add_argument("--alarm", type=positive_float, default=0.5, help="SIGALRM after this many seconds (0.5)")
    add_timeout(p)
    return p


def main(args: argparse.Namespace) -> int:
    sock = connect_within(args.ip, args.port, args.timeout)
    sock.settimeout(None)  # a plain blocking socket: the kernel's recv, no poll in front of it
    out(f"connected local={fmt_addr(sock.getsockname())}")
    signal.signal(signal.SIGALRM, lambda number, frame: out("alarm handled"))
    signal.siginterrupt(signal.SIGALRM, args.handler != "restart")
    started = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, args.alarm)
    if args.handler == "python":
        data = sock.recv(1024)
        out(f"recv returned {len(data)} after={time.monotonic() - started:.3f}")
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    buffer = ctypes.create_string_buffer(1024)
    got = libc.recv(sock.fileno(), buffer, 1024, 0)
    spent = time.monotonic() - started
    if got < 0:
        out(f"recv errno={errno_tag(ctypes.get_errno())} after={spent:.3f}")
    else:
        out(f"recv returned {got} after={spent:.3f}")
    return 0


if __name__ == "__main__":
    run(main, parser())
