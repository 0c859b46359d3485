"""lab's own link emulator: netem's delay, jitter, loss, duplicate, reorder, corrupt, rate and
queue limit in user space, for kernels without ``sch_netem``.

How: a rule (:mod:`lab.net.nfqueue_rules`) sends what leaves (or arrives at) one interface to an NFQUEUE; this
process reads each packet from the queue and lets it go when its time has come. A packet that
a socket of this namespace sent is taken from the kernel at once (a DROP verdict) and sent again
by a raw socket when due: held in the kernel it would still count against its socket's TCP small
queue, which allows about a millisecond of data and would cap a delayed TCP flow at a few
Mbit/s (netem orphans such packets for the same reason). Any other packet (forwarded, or larger
than the MTU) stays in the kernel and gets its ACCEPT verdict when due. The semantics are netem's:

- delay D with jitter J: each packet waits a uniform D±J (so jitter reorders, as in netem);
- loss, duplicate, corrupt, reorder: independent per-packet chances (reorder: the packet goes
  at once, ahead of the delayed ones; like netem it needs a delay);
- rate R: a packet leaves no earlier than the one before it plus its own size at R;
- limit N: at most N packets wait; the next is dropped (netem's tail drop, default 1000).

Where it differs, and why: a duplicate is a copy sent by a raw socket on the interface (the
queue cannot clone), so only traffic leaving an interface can be duplicated; what the raw socket
sends carries a mark (:data:`RESENT_MARK`) that lab's iptables rules let pass, since the packet
has met them once already; corruption flips one bit past the IPv4 header of a packet sent again
(its TCP/UDP/ICMP checksum catches it) and one bit of the header of a packet the kernel keeps (a
forwarded one: its header checksum catches it), where netem flips a bit anywhere in the frame;
ARP is not impaired (iptables sees IP).

Life cycle (it must survive nothing): ``start`` forks a daemon that binds each queue and then
adds the rule that feeds it, writes its pidfile (PID and start time) and only then lets
``start`` return. ``stop`` checks the pidfile's start time before it signals.
The daemon also ends by itself when its pidfile is removed (``lab down`` removes the lab's
state directory) or its interface is gone. Standard library only: the cluster agent runs it too.

    python3 -m lab.net.emulator start --queue 7 --iface eth0 --chain f1-out --pidfile F --delay 40 --jitter 4
    python3 -m lab.net.emulator unqueue --chain f1-out
    python3 -m lab.net.emulator stop --pidfile F
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import functools
import heapq
import json
import os
import random
import signal
import socket
import struct
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lab.net import nfqueue, nfqueue_rules

SOL_NETLINK, NETLINK_NO_ENOBUFS, SO_RCVBUFFORCE = 270, 5, 33
SO_MARK = 36
SIOCGIFMTU = 0x8921
RESENT_MARK = 0x1AB0  # what this emulator sends itself: the queue rule (and every lab rule) lets it pass
GUARD_INTERVAL = 0.5  # seconds between checks of the pidfile and the interface
WAKE_EARLY = 0.0005  # seconds before a departure that the loop stops sleeping (see serve)


@dataclass
class Params:
    """One direction's impairment, in the units the loop uses (seconds, fractions, bits/s)."""

    delay: float = 0.0
    jitter: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    corrupt: float = 0.0
    rate: float = 0.0  # bits per second; 0 is no limit
    limit: int = 1000


@dataclass
class Counters:
    received: int = 0
    accepted: int = 0
    lost: int = 0
    overflowed: int = 0
    duplicated: int = 0
    corrupted: int = 0
    reordered: int = 0
    unsent: int = 0


def corrupt(packet: bytes, rng: random.Random, past_header: bool = False) -> bytes:
    """One random bit of an IP packet flipped: in its header (an IPv4 header's checksum then fails), or
    with ``past_header`` anywhere after it (the TCP/UDP/ICMP checksum then fails; a packet we send again
    by raw socket gets its header checksum recomputed by the kernel, so the header would heal). IPv6
    has no header checksum: its bit always goes past the 40-byte header, where a checksum sees it."""
    version = packet[0] >> 4 if packet else 0
    if version == 6:
        if len(packet) <= 40:
            return packet
        start, end = 40, len(packet)
    elif version == 4:
        header = (packet[0] & 0x0F) * 4
        if header < 20 or len(packet) < header:
            return packet
        start, end = (header, len(packet)) if past_header and len(packet) > header else (0, header)
    else:
        return packet
    at = rng.randrange(start, end)
    data = bytearray(packet)
    data[at] ^= 1 << rng.randrange(8)
    return bytes(data)


class Emulator:
    """The queue's reader: decides each packet's fate and time, and lets it go when due."""

    def __init__(self, queue: int, iface: str, params: Params, rng: random.Random | None = None) -> None:
        self.queue, self.iface, self.p = queue, iface, params
        self.rng = rng or random.Random()
        self.counters = Counters()
        # (due, arrival order, packet id (-1: we send it ourselves), the bytes to give back or send
        # (None: the kernel's own, unchanged), a copy to send beside it (None: no duplicate))
        self.held: list[tuple[float, int, int, bytes | None, bytes | None]] = []
        self.order = 0
        self.last_departure = 0.0
        # packets leave in the order they came unless jitter or reorder say otherwise: one batch verdict then
        self.in_order = not (params.jitter or params.reorder)
        self.mtu = 1500  # the interface's, once open()

    def open(self) -> None:
        """The queue's netlink socket and the raw socket that sends packets again (both in this namespace)."""
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, nfqueue.NETLINK_NETFILTER)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
        self.sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
        self.sock.bind((0, 0))
        self.raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        # IPPROTO_RAW on IPv6 means the header is ours too, as IP_HDRINCL does for IPv4
        self.raw6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
        for raw in (self.raw, self.raw6):
            raw.setsockopt(socket.SOL_SOCKET, SO_MARK, RESENT_MARK)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.iface.encode())
        ifreq = fcntl.ioctl(self.raw, SIOCGIFMTU, struct.pack("16si", self.iface.encode(), 0))
        self.mtu = struct.unpack_from("16si", ifreq)[1]
        self.ifindex = socket.if_nametoindex(self.iface)

    def bind(self) -> None:
        """Take the queue (EBUSY if another process has it), ask for whole packets and who sent them."""
        self.open()
        nfqueue.bind(self.sock, self.queue, self.p.limit + 4096)

    def admit(self, packet_id: int, length: int, payload: bytes, owned: bool, now: float,
              out: list[bytes]) -> None:
        """A packet arrived: drop it, or give it a departure time (netem's order of decisions)."""
        c, p, rng = self.counters, self.p, self.rng
        c.received += 1
        if p.loss and rng.random() < p.loss:
            c.lost += 1
            out.append(nfqueue.verdict(self.queue, packet_id, nfqueue.NF_DROP))
            return
        if len(self.held) >= p.limit:
            c.overflowed += 1
            out.append(nfqueue.verdict(self.queue, packet_id, nfqueue.NF_DROP))
            return
        wait = p.delay
        if p.jitter:
            wait = max(0.0, wait + rng.uniform(-p.jitter, p.jitter))
        if p.reorder and rng.random() < p.reorder:
            wait = 0.0
            c.reordered += 1
        due = now + wait
        if p.rate:
            due = max(due, self.last_departure) + length * 8 / p.rate
            self.last_departure = due
        fits = len(payload) == length <= self.mtu  # whole, and small enough for the raw socket
        copy = payload if p.duplicate and fits and rng.random() < p.duplicate else None  # netem copies first
        resend = owned and fits
        changed: bytes | None = None
        if p.corrupt and rng.random() < p.corrupt:
            changed = corrupt(payload, rng, past_header=resend)
            c.corrupted += 1
        if resend:  # out of the kernel now, so its socket's small queue is free again (module doc)
            out.append(nfqueue.verdict(self.queue, packet_id, nfqueue.NF_DROP))
            packet_id, changed = -1, changed or payload
        self.order += 1
        heapq.heappush(self.held, (due, self.order, packet_id, changed, copy))

    def release(self, now: float, out: list[bytes]) -> None:
        """Let go every packet whose time has come (one batch verdict for the kernel's, when in order)."""
        highest = -1
        while self.held and self.held[0][0] <= now:
            _, _, packet_id, changed, copy = heapq.heappop(self.held)
            self.counters.accepted += 1
            if packet_id < 0:
                self._send(changed or b"")
            elif changed is not None or not self.in_order:
                out.append(nfqueue.verdict(self.queue, packet_id, nfqueue.NF_ACCEPT, changed))
            else:
                highest = max(highest, packet_id)
            if copy is not None:
                self.counters.duplicated += self._send(copy)
        if highest >= 0:
            out.append(nfqueue.verdict(self.queue, highest, nfqueue.NF_ACCEPT, batch=True))

    def _send(self, packet: bytes) -> int:
        """Send a packet ourselves on the interface: 1 if it left, 0 if it could not (it is lost)."""
        if len(packet) < 20:
            return 0
        try:
            if packet[0] >> 4 == 6 and len(packet) >= 40:
                dst = packet[24:40]
                # a link-local or multicast destination (neighbour discovery) needs its interface as scope
                scope = self.ifindex if dst[0] == 0xFF or dst[:2] == b"\xfe\x80" else 0
                self.raw6.sendto(packet, (socket.inet_ntop(socket.AF_INET6, dst), 0, 0, scope))
            else:
                self.raw.sendto(packet, (socket.inet_ntoa(packet[16:20]), 0))
            return 1
        except OSError:
            self.counters.unsent += 1
            return 0

    def drain(self, buf: bytearray, view: memoryview, out: list[bytes]) -> None:
        """Read what the kernel queued (at most 512 packets a turn, so no queue starves the others)."""
        for _ in range(512):
            try:
                size = self.sock.recv_into(buf, 0, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            got = nfqueue.parse_packet(view, size)
            if got is not None:
                self.admit(*got, time.monotonic(), out)


def serve(emulators: list[Emulator], guard: Guard) -> None:
    """One loop for every queue of this daemon: read what arrives, let go what is due, check the guard."""
    import selectors

    # select() wakes to the microsecond, epoll to the millisecond (which would add up to 1 ms to every
    # delay); only a daemon with more sockets than select() takes (FD_SETSIZE) needs epoll
    few = len(emulators) < 900
    chooser = selectors.SelectSelector() if few else selectors.DefaultSelector()
    for emulator in emulators:
        chooser.register(emulator.sock, selectors.EVENT_READ, emulator)
    buf = bytearray(0x10000 + 512)
    view = memoryview(buf)
    next_guard = time.monotonic() + GUARD_INTERVAL
    while True:
        busy = [e for e in emulators if e.held]
        due = min((e.held[0][0] for e in busy), default=next_guard)
        wait = min(next_guard, due) - time.monotonic()
        # sleep until just before the next departure, then poll for the rest: waking from a
        # timer costs a few hundred microseconds here, which would all be added to the delay
        ready = chooser.select(wait - WAKE_EARLY if wait > WAKE_EARLY else 0.0)
        touched = {id(key.data): key.data for key, _ in ready}
        outs: dict[int, list[bytes]] = {}
        for key, _ in ready:
            key.data.drain(buf, view, outs.setdefault(id(key.data), []))
        now = time.monotonic()
        for emulator in {**{id(e): e for e in busy}, **touched}.values():
            if emulator.held and emulator.held[0][0] <= now:
                emulator.release(now, outs.setdefault(id(emulator), []))
                touched[id(emulator)] = emulator
        for ident, out in outs.items():
            if out:
                touched[ident].sock.send(b"".join(out))
        if time.monotonic() >= next_guard:
            if not guard.still_wanted():
                return
            guard.write_stats(emulators)
            next_guard = time.monotonic() + GUARD_INTERVAL


@dataclass
class Guard:
    """The daemon ends when its pidfile goes (stop, or the lab's state directory removed) or, serving one
    interface in its own namespace, when that interface does."""

    pidfile: Path
    iface: str | None = None

    def still_wanted(self) -> bool:
        try:
            pid = int(self.pidfile.read_text().split()[0])
            if self.iface:
                socket.if_nametoindex(self.iface)
        except (OSError, ValueError, IndexError):
            return False
        return pid == os.getpid()

    def write_stats(self, emulators: list[Emulator]) -> None:
        total = Counters()
        for emulator in emulators:
            for key, value in asdict(emulator.counters).items():
                setattr(total, key, getattr(total, key) + value)
        tmp = self.pidfile.with_suffix(".stats.tmp")
        tmp.write_text(json.dumps({**asdict(total), "held": sum(len(e.held) for e in emulators)}))
        os.replace(tmp, self.pidfile.with_suffix(".stats"))


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat, so a reused PID is never mistaken for ours (as lab.procs does)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def params_of(values: dict[str, float]) -> Params:
    """The command line's units (milliseconds, percents, bits/s) → the loop's (seconds, fractions, bits/s)."""
    return Params(delay=values.get("delay", 0) / 1000, jitter=values.get("jitter", 0) / 1000,
                  loss=values.get("loss", 0) / 100, duplicate=values.get("duplicate", 0) / 100,
                  reorder=values.get("reorder", 0) / 100, corrupt=values.get("corrupt", 0) / 100,
                  rate=values.get("rate", 0), limit=int(values.get("limit", 1000)))


@functools.cache
def _libc() -> Any:
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def enter_netns(path: str) -> None:
    """Move this process into the network namespace at ``path`` (sockets made next belong to it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc().setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
            import ctypes

            err = ctypes.get_errno()
            raise OSError(err, f"setns {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


def open_all(args: argparse.Namespace) -> tuple[list[Emulator], str | None]:
    """The daemon's emulators, each bound to its queue in its namespace and fed by its rule there
    (lab.net.nfqueue_rules); and the one interface to watch, when it serves only one."""
    if not args.spec:
        links = [{"netns": None, "queue": args.queue, "iface": args.iface, "chain": args.chain, "hook": args.hook,
                  "params": vars(args)}]
    else:
        links = json.loads(Path(args.spec).read_text())["links"]
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 2 * len(links) + 64)), hard))
    emulators = []
    for link in links:
        if link["netns"]:
            enter_netns(link["netns"])
        emulator = Emulator(int(link["queue"]), link["iface"], params_of(link["params"]))
        emulator.bind()
        if link.get("chain"):  # the queue is read before anything is sent to it
            nfqueue_rules.commit(nfqueue_rules.queue_rule(link["chain"], link.get("hook") or "postrouting",
                                                          link["iface"], emulator.queue, RESENT_MARK))
        emulators.append(emulator)
    return emulators, None if args.spec else args.iface


def start(args: argparse.Namespace) -> int:
    """Fork the daemon; return once it reads its queues (0) or has failed (1, the reason on stderr)."""
    pidfile = Path(args.pidfile)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    read_end, write_end = os.pipe()
    if os.fork():
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            answer = pipe.read()
        if answer == "ok":
            return 0
        print(answer or "the emulator ended before it was ready", file=sys.stderr)
        return 1
    os.close(read_end)
    os.setsid()
    if os.fork():
        os._exit(0)
    try:
        emulators, watched = open_all(args)
        pidfile.write_text(f"{os.getpid()} {start_time(os.getpid())}\n")
    except (OSError, ValueError, KeyError) as exc:
        os.write(write_end, f"link emulator on {args.iface or args.spec}: {exc}".encode())
        os._exit(1)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.write(write_end, b"ok")
    os.close(write_end)
    try:
        serve(emulators, Guard(pidfile, watched))
    finally:
        os._exit(0)


def stop(args: argparse.Namespace) -> int:
    """End the daemon the pidfile names, if it is still the process that wrote it; remove the files."""
    pidfile = Path(args.pidfile)
    try:
        pid_text, started = pidfile.read_text().split()[:2]
        pid = int(pid_text)
    except (OSError, ValueError):
        return 0  # never started, or already gone
    for path in (pidfile, pidfile.with_suffix(".stats")):
        path.unlink(missing_ok=True)
    if str(start_time(pid)) != started:
        return 0
    os.kill(pid, signal.SIGTERM)
    for _ in range(40):
        if start_time(pid) is None:
            return 0
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    return 0


def probe(args: argparse.Namespace) -> int:
    """Can this machine run the emulator? Bind a queue and add the rule that feeds it (in a scratch namespace)."""
    try:
        Emulator(65000, "lo", Params()).bind()
        nfqueue_rules.commit(nfqueue_rules.queue_rule("probe", "postrouting", "lo", 65000, RESENT_MARK))
        nfqueue_rules.commit(nfqueue_rules.remove_chain("probe"))
    except OSError as exc:
        print(f"cannot read an NFQUEUE or feed it (nf_tables with xtables' NFQUEUE target): {exc}", file=sys.stderr)
        return 1
    return 0


def unqueue(args: argparse.Namespace) -> int:
    """Remove one direction's rule (its chain) from this namespace; already gone is fine."""
    try:
        nfqueue_rules.commit(nfqueue_rules.remove_chain(args.chain))
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            print(f"cannot remove the emulator's rule {args.chain}: {exc}", file=sys.stderr)
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m lab.net.emulator", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    begin = sub.add_parser("start")
    begin.add_argument("--queue", type=int)
    begin.add_argument("--iface")
    begin.add_argument("--spec", help="a JSON file of links ({netns, queue, iface, chain, hook, params}) for one "
                                      "daemon")
    begin.add_argument("--chain", help="also add the rule that feeds the queue, as this chain (nfqueue_rules)")
    begin.add_argument("--hook", default="postrouting", choices=["postrouting", "prerouting"])
    begin.add_argument("--pidfile", required=True)
    for name in ("delay", "jitter"):
        begin.add_argument(f"--{name}", type=float, default=0.0, help="milliseconds")
    for name in ("loss", "duplicate", "reorder", "corrupt"):
        begin.add_argument(f"--{name}", type=float, default=0.0, help="percent")
    begin.add_argument("--rate", type=float, default=0.0, help="bits per second")
    begin.add_argument("--limit", type=int, default=1000, help="packets")
    end = sub.add_parser("stop")
    end.add_argument("--pidfile", required=True)
    sub.add_parser("probe", help="can the emulator run here? (in a scratch namespace: it adds a rule)")
    remove = sub.add_parser("unqueue", help="remove one direction's rule from this namespace")
    remove.add_argument("--chain", required=True)
    args = parser.parse_args(argv)
    if args.command == "start" and not args.spec and (args.queue is None or not args.iface):
        parser.error("start needs --queue and --iface, or --spec")
    return {"start": start, "stop": stop, "probe": probe, "unqueue": unqueue}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
