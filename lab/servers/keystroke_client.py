"""Interactive traffic (§3.6): send one-byte "keystrokes" at an interval and time each echo.

Against an echo server each keystroke is a tiny request and reply, the case
delayed ACKs are made for: the server's ACK rides on the echo. Times are
from the send to the echoed byte's arrival.

Usage::

    python3 -m lab.servers.keystroke_client IP PORT [--count 25] [--interval-ms 100] [--text abc]
        [--timeout 5]

Output lines:

    connected local=IP:PORT
    key n=1 byte='a' rtt_ms=0.123         (one per keystroke)
    summary keys=25 median_rtt_ms=0.100 max_rtt_ms=0.400
    eof before echo n=N                   (server closed early; exit 1)
    closed
"""

from __future__ import annotations

import argparse
import statistics
import time

from lab.servers._common import (
    add_endpoint,
    add_timeout,
    connect_within,
    fmt_addr,
    out,
    positive_float,
    recv_within,
    run,
    show_bytes,
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="keystroke_client", description="Timed one-byte keystrokes.")
    add_endpoint(p, server=False)
    p.add_argument("--count", type=int, default=25, help="number of keystrokes (25)")
    p.add_argument("--interval-ms", type=positive_float, default=100.0,
                   help="time from one keystroke to the next, ms (100)")
    p.add_argument("--text", default="abcdefghijklmnopqrstuvwxyz", help="bytes to type, cycled (a..z)")
    add_timeout(p, 5.0, "connect and each echo")
    return p


def main(args: argparse.Namespace) -> int:
    text = args.text.encode()
    rtts: list[float] = []
    with connect_within(args.ip, args.port, args.timeout) as sock:
        out(f"connected local={fmt_addr(sock.getsockname())}")
        for n in range(1, args.count + 1):
            key = text[(n - 1) % len(text):][:1]
            started = time.monotonic()
            sock.sendall(key)
            echoed = recv_within(sock, 1, args.timeout, step=f"echo{n}")
            if not echoed:
                out(f"eof before echo n={n}")
                return 1
            rtt = (time.monotonic() - started) * 1000
            rtts.append(rtt)
            out(f"key n={n} byte='{show_bytes(key)}' rtt_ms={rtt:.3f}")
            if n < args.count:
                time.sleep(max(0.0, args.interval_ms / 1000 - (time.monotonic() - started)))
    out(f"summary keys={len(rtts)} median_rtt_ms={statistics.median(rtts):.3f} max_rtt_ms={max(rtts):.3f}")
    out("closed")
    return 0


if __name__ == "__main__":
    run(main, parser())
