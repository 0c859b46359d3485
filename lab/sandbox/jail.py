"""Run an untrusted program (a reader's server, a student's submission) so that it touches nothing.

``python3 -m lab.sandbox.jail [limits] -- PROGRAM ARGS...`` runs, as root, in the network namespace the
program belongs in (a lab node's: ``nsenter --net=…`` in front), and gives the program:

- **its own PID namespace**, of which a small init (this module, forked) is PID 1: the program cannot see
  or signal anything outside, and when init ends the kernel kills every process left in it, whatever
  they do (fork, ``setsid``, ignore SIGTERM);
- **its own mount view**: a fresh root holding the machine's ``/usr``, ``/etc``, ``/bin``… read-only
  (bound recursively, ``mount_setattr(AT_RECURSIVE)``), a private writable ``/tmp`` (tmpfs), a ``/dev``
  of null, zero, full, random and urandom, its own ``/proc``, and the program's directory read-only at
  ``/prog``: nothing else of the machine (no /root, /home, /run, nor the other submissions);
- **its own IPC namespace** (System V, POSIX message queues) and, with ``--no-net``, an empty network
  namespace (the compiler gets that);
- **an unprivileged identity**: a user id of its own (``UID_BASE`` + a slot held by ``flock`` while the
  jail lives, so two jails never share one and ``RLIMIT_NPROC`` counts only this program's processes),
  no supplementary groups, ``PR_SET_NO_NEW_PRIVS`` (no setuid, no file capabilities);
- **limits**: processes, address space, CPU seconds, open files, file size, no core dumps; memory and
  processes in a cgroup as well where the machine has the controllers (v2 or v1);
- **a wall-clock limit**, and a short grace after SIGTERM: then SIGKILL to init, so the whole namespace;
- **a pause**: SIGUSR1 to the jail stops the program (SIGSTOP), SIGUSR2 continues it, so an experiment can
  hold a listing that reads at once (5-7) until its peer has sent everything, without changing it.

The jail says why the program ended when it was not the program's own choice, on stderr, one line
beginning ``lab-sandbox:``. Stdlib only, so it runs wherever ``lab.servers`` runs.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import os
import resource
import select
import signal
import sys
import time
from pathlib import Path

from lab.sandbox import seccomp

UID_BASE = 300_000
SLOTS = 1024
STATE = Path("/run/lab-sandbox")
SYSTEM_DIRS = ("usr", "etc", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
DEVICES = ("null", "zero", "full", "random", "urandom")

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x08000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x20, 0x1000, 0x4000, 0x40000
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV = 0x1, 0x2, 0x4
AT_FDCWD, AT_RECURSIVE = -100, 0x8000
SYS_MOUNT_SETATTR = 442  # the same number on every architecture (syscalls from 424 on are unified)
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
FREEZE: dict[int, int] = {signal.SIGUSR1: signal.SIGSTOP, signal.SIGUSR2: signal.SIGCONT}  # pause, resume
PASSED = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, *FREEZE}  # what the launcher and init pass on
OUTPUT_CAP = 1 << 20  # bytes of stdout and of stderr passed on; the rest is read and dropped
GRACE = 1.0  # seconds between SIGTERM and SIGKILL: less than a Proc.stop's grace, so the jail ends it itself

libc = ctypes.CDLL(None, use_errno=True)


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(libc.mount(source and source.encode(), target.encode(), fstype and fstype.encode(),
                      ctypes.c_ulong(flags), data and data.encode()), f"mount {target}")


def read_only_tree(path: str) -> None:
    """``path`` and every mount below it read-only, nosuid, nodev (one call: ``mount_setattr``)."""
    attr = MountAttr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0, 0, 0)
    _check(libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, path.encode(), AT_RECURSIVE, ctypes.byref(attr),
                        ctypes.sizeof(attr)), f"mount_setattr {path}")


# --- the user id: one slot per living jail ----------------------------------------------------------
def take_slot() -> tuple[int, int]:
    """A free slot (its lock held by this process until it exits) and the user id that goes with it."""
    locks = STATE / "slots"
    locks.mkdir(parents=True, exist_ok=True, mode=0o700)
    for slot in range(SLOTS):
        fd = os.open(locks / str(slot), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return fd, UID_BASE + slot
    raise SystemExit(f"lab-sandbox: all {SLOTS} sandbox slots are in use")


# --- cgroups: memory and processes, where the machine has them ------------------------------------
def cgroup_root() -> Path:
    """The machine's cgroup tree, seen from the jail's own mount namespace. ``ip netns exec`` mounts a sysfs
    of the namespace's own over /sys, with nothing under /sys/fs/cgroup: then the jail mounts the
    hierarchies that hold memory and pids there (v1's, or v2's where /proc/cgroups shows none on v1),
    privately. None where that fails: the rlimits still hold."""
    root = Path("/sys/fs/cgroup")
    if any(root.iterdir()):
        return root
    v1 = {f[0]: int(f[1]) for f in (line.split() for line in Path("/proc/cgroups").read_text().splitlines()[1:])}
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
    if not any(v1.get(controller) for controller in ("memory", "pids")):
        mount("cgroup2", str(root), "cgroup2", flags)
        return root
    mount("cgroups", str(root), "tmpfs", flags, "mode=755,size=64k")
    for controller in ("memory", "pids"):
        if v1.get(controller):
            (root / controller).mkdir()
            mount("cgroup", str(root / controller), "cgroup", flags, controller)
    return root


def cgroup_dirs(root: Path, name: str, memory: int, procs: int) -> list[Path]:
    """Make this jail's cgroups (cgroup v2 if it has the controllers, else v1's memory and pids), limits
    written. None where the machine has neither: the rlimits still hold."""
    made: list[Path] = []
    slot = name.split("-")[0]
    for stale in [*root.glob(f"lab-sandbox/{slot}-*"), *root.glob(f"*/lab-sandbox/{slot}-*")]:
        try:
            stale.rmdir()  # a launcher of this slot killed before it could remove its own (empty by now)
        except OSError:
            pass
    controllers = (root / "cgroup.controllers")
    if controllers.exists() and {"memory", "pids"} <= set(controllers.read_text().split()):
        where = root / "lab-sandbox"
        try:
            where.mkdir(exist_ok=True)
            (where / "cgroup.subtree_control").write_text("+memory +pids")
            mine = where / name
            mine.mkdir(exist_ok=True)
            (mine / "memory.max").write_text(str(memory))
            (mine / "memory.swap.max").write_text("0") if (mine / "memory.swap.max").exists() else None
            (mine / "pids.max").write_text(str(procs))
            return [mine]
        except OSError:
            return made
    for controller, limits in (("memory", {"memory.limit_in_bytes": memory}), ("pids", {"pids.max": procs})):
        base = root / controller
        if not (base / "cgroup.procs").exists():
            continue
        mine = base / "lab-sandbox" / name
        try:
            mine.mkdir(parents=True, exist_ok=True)
            for key, value in limits.items():
                (mine / key).write_text(str(value))
            made.append(mine)
        except OSError:
            continue
    return made


def cgroup_events(dirs: list[Path]) -> list[str]:
    """What the cgroups refused: the memory limit reached (OOM kills), the process limit reached."""
    said = []
    for d in dirs:
        for name, key, text in (("memory.events", "oom_kill", "the memory limit killed a process"),
                                ("pids.events", "max", "the process limit refused a fork"),
                                ("memory.oom_control", "oom_kill", "the memory limit killed a process")):
            try:
                fields = dict(line.split() for line in (d / name).read_text().splitlines() if " " in line)
            except (OSError, ValueError):
                continue
            if int(fields.get(key, "0")) > 0:
                said.append(text)
    return sorted(set(said))


def remove_cgroups(dirs: list[Path]) -> None:
    for d in dirs:
        for _ in range(50):  # the kernel empties a cgroup a moment after its last process is reaped
            try:
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.01)


# --- inside: init, mounts, the program -----------------------------------------------------------
def build_root(root: Path, program_dir: str | None, tmp_size: str) -> None:
    """The program's file system: the machine's system directories read-only, a private /tmp, its own
    /dev and /proc, its program at /prog; then chroot into it."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("lab-sandbox", str(root), "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=1m")
    for name in SYSTEM_DIRS:
        source = Path("/") / name
        if source.is_symlink():  # merged /usr: /bin -> usr/bin
            (root / name).symlink_to(os.readlink(source))
        elif source.is_dir():
            (root / name).mkdir()
            mount(str(source), str(root / name), None, MS_BIND | MS_REC)
            read_only_tree(str(root / name))
    (root / "tmp").mkdir(mode=0o1777)
    mount("tmp", str(root / "tmp"), "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={tmp_size}")
    dev = root / "dev"
    dev.mkdir()
    mount("dev", str(dev), "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=64k")
    for name in DEVICES:
        (dev / name).touch()
        mount(f"/dev/{name}", str(dev / name), None, MS_BIND)
    (dev / "shm").mkdir(mode=0o1777)
    mount("shm", str(dev / "shm"), "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={tmp_size}")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        (dev / name).symlink_to(target)
    (root / "proc").mkdir()
    mount("proc", str(root / "proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    if program_dir:
        (root / "prog").mkdir()
        mount(program_dir, str(root / "prog"), None, MS_BIND | MS_REC)
        read_only_tree(str(root / "prog"))
    mount(None, str(root), None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chroot(root)
    os.chdir("/tmp")


def drop_to(uid: int, limits: argparse.Namespace) -> None:
    """Become the jail's user, with no way back and the limits set."""
    # RLIMIT_NPROC a little above the cgroup's pids.max: where the machine has the cgroup, it refuses first
    # and says so (pids.events); the rlimit is the backstop where it has none
    for which, value in ((resource.RLIMIT_NPROC, limits.procs + 16), (resource.RLIMIT_AS, limits.memory),
                         (resource.RLIMIT_CPU, limits.cpu), (resource.RLIMIT_NOFILE, limits.files),
                         (resource.RLIMIT_FSIZE, limits.fsize), (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(which, (value, value))
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def init(go: int, ready: int, uid: int, args: argparse.Namespace) -> None:
    """PID 1 of the jail: ask to die with the launcher, say so, wait for the go-ahead (placed in the
    cgroups), build the root, start the program, pass it signals, pass on at most ``OUTPUT_CAP`` bytes of
    its output, reap everything, and end with the program's status."""
    _check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
    os.write(ready, b"r")  # the launcher sends the go-ahead only after this: no window without PDEATHSIG
    os.close(ready)
    if os.read(go, 1) != b"1":  # the jail's launcher died, or refused
        os._exit(111)
    os.close(go)
    try:
        root = STATE / "roots" / str(uid)
        root.mkdir(parents=True, exist_ok=True)
        build_root(root, args.program_dir, args.tmp_size)
    except OSError as exc:
        say(args, f"cannot build the program's file system ({exc})")
        os._exit(111)
    outputs = [os.pipe(), os.pipe()]
    program = os.fork()
    if program == 0:
        start_program(uid, args, [w for _, w in outputs])
    for _, w in outputs:
        os.close(w)

    def forward(sig: int, _frame: object) -> None:
        try:
            os.kill(program, FREEZE.get(sig, sig))
        except ProcessLookupError:
            pass

    for which in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, *FREEZE):
        signal.signal(which, forward)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, PASSED)
    status = relay([r for r, _ in outputs], program, args.output_cap)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))


def start_program(uid: int, args: argparse.Namespace, outputs: list[int]) -> None:
    """The program itself: a session of its own with no terminal, stdin /dev/null, its output to init's
    pipes, default signal actions, the jail's user and limits, the seccomp filter; then exec."""
    try:
        os.setsid()
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(outputs[0], 1)
        os.dup2(outputs[1], 2)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, *FREEZE):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        drop_to(uid, args)
        if not seccomp.install():
            say(args, f"no seccomp filter on {os.uname().machine}")
        os.closerange(3, 65536)
        os.execve(args.argv[0], args.argv, {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp",
                                            "LANG": "C.UTF-8", "TMPDIR": "/tmp"})
    except OSError as exc:
        os.write(2, f"cannot start {args.argv[0]}: {exc.strerror}\n".encode())
    os._exit(127)


def relay(pipes: list[int], program: int, cap: int) -> int:
    """Pass the program's stdout and stderr on, ``OUTPUT_CAP`` bytes of each (the rest is read and dropped,
    so a flood cannot fill lab's memory), until it ends; reap every child meanwhile. Its wait status."""
    target = {pipes[0]: 1, pipes[1]: 2}
    sent = dict.fromkeys(pipes, 0)
    status: int | None = None
    while True:
        try:
            readable, _, _ = select.select(list(sent), [], [], 0.1)
        except InterruptedError:
            readable = []
        for fd in readable:
            chunk = os.read(fd, 65536)
            if not chunk:
                del sent[fd]
                continue
            room = cap - sent[fd]
            if room > 0:
                os.write(target[fd], chunk[:room])
                if len(chunk) >= room:
                    os.write(2, f"\n[output past {cap} bytes dropped]\n".encode())
            sent[fd] += len(chunk)
        while True:
            try:
                pid, raw = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid = 0
            if pid == 0:
                break
            if pid == program and not os.WIFSTOPPED(raw):
                status = raw
        if status is not None and (not sent or not readable):  # what it wrote before it ended is passed on
            return status


def say(args: argparse.Namespace, text: str) -> None:
    """One line of the jail's own on stderr, tagged so that a program cannot forge it."""
    os.write(2, f"lab-sandbox[{args.tag}]: {text}\n".encode())


# --- outside: the launcher ------------------------------------------------------------------------
def launch(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise SystemExit("lab-sandbox: the jail is set up as root (it drops to a user of its own)")
    signal.pthread_sigmask(signal.SIG_BLOCK, PASSED)  # until the handlers are in place, on both sides of the fork
    _slot_fd, uid = take_slot()
    go_read, go_write = os.pipe()
    ready_read, ready_write = os.pipe()
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | (CLONE_NEWNET if args.no_net else 0)
    _check(libc.unshare(flags), "unshare")
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing the jail mounts reaches the machine's view
    try:
        groups = cgroup_dirs(cgroup_root(), f"u{uid}-{os.getpid()}", args.memory, args.procs)
    except OSError:
        groups = []
    if not groups:
        say(args, "no memory or pids cgroup on this machine: the per-process limits only")
    child = os.fork()
    if child == 0:
        os.close(go_write)
        os.close(ready_read)
        init(go_read, ready_write, uid, args)
    os.close(go_read)
    os.close(ready_write)
    if os.read(ready_read, 1) != b"r":
        os.kill(child, signal.SIGKILL)
    for d in groups:
        (d / "cgroup.procs").write_text(str(child))
    os.write(go_write, b"1")
    os.close(go_write)
    code, why = wait_for(child, args.wall)
    told = ([why] if why else []) + cgroup_events(groups)
    remove_cgroups(groups)
    if told:
        say(args, "; ".join(told))
    return code


def wait_for(child: int, wall: float) -> tuple[int, str]:
    """Wait for the jail's init; SIGTERM/SIGINT/SIGHUP pass to it, and SIGKILL follows ``GRACE`` later, or
    at the wall-clock limit. The exit code, and why the jail ended it ("" when the program ended itself or
    on a signal it honoured)."""
    started = time.monotonic()
    kill_at = started + wall
    why = f"killed: the wall-clock limit of {wall:g} s"

    def on_freeze(sig: int, _frame: object) -> None:
        try:
            os.kill(child, sig)  # init passes it on as SIGSTOP/SIGCONT to the program
        except ProcessLookupError:
            pass

    for sig in FREEZE:
        signal.signal(sig, on_freeze)

    def on_term(sig: int, _frame: object) -> None:
        nonlocal kill_at, why
        why = f"killed: it was still running {GRACE:g} s after {signal.Signals(sig).name}"
        try:
            os.kill(child, signal.SIGTERM)
        except ProcessLookupError:
            pass
        kill_at = min(kill_at, time.monotonic() + GRACE)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_term)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, PASSED)
    killed = False
    while True:
        pid, status = os.waitpid(child, os.WNOHANG)
        if pid:
            break
        now = time.monotonic()
        if now >= kill_at and not killed:
            os.kill(child, signal.SIGKILL)  # init first: the kernel then kills everything in its namespace
            killed = True
        time.sleep(0.005 if now - started < 1 else 0.05)
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
    return code, why if killed else ""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lab-sandbox", description="Run an untrusted program in a jail.")
    p.add_argument("--wall", type=float, default=300.0, help="wall-clock limit, seconds")
    p.add_argument("--cpu", type=int, default=120, help="CPU seconds")
    p.add_argument("--memory", type=int, default=512 << 20, help="address space and cgroup memory, bytes")
    p.add_argument("--procs", type=int, default=64, help="processes and threads")
    p.add_argument("--files", type=int, default=256, help="open files")
    p.add_argument("--fsize", type=int, default=64 << 20, help="largest file written, bytes")
    p.add_argument("--tmp-size", default="64m", help="size of the private /tmp (and of /dev/shm)")
    p.add_argument("--output-cap", type=int, default=OUTPUT_CAP, help="bytes of stdout and of stderr passed on")
    p.add_argument("--program-dir", help="a directory of the machine, read-only at /prog")
    p.add_argument("--no-net", action="store_true", help="an empty network namespace of its own")
    p.add_argument("--tag", default="", help="marks the jail's own lines (lab-sandbox[TAG]:), which the program "
                   "cannot see, so it cannot forge them")
    p.add_argument("argv", nargs=argparse.REMAINDER, help="-- PROGRAM ARGS...")
    return p


def main() -> int:
    args = parser().parse_args()
    if args.argv[:1] == ["--"]:
        args.argv = args.argv[1:]
    if not args.argv:
        raise SystemExit("lab-sandbox: which program? (-- PROGRAM ARGS...)")
    return launch(args)


if __name__ == "__main__":
    sys.exit(main())
