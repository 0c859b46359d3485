"""The wiring agent: runs on one machine of a cluster, does that machine's part of a lab's plumbing.

``lab`` cannot touch a remote machine's kernel; it can only ask the machine's engine to run a
container. So it runs this module there (image ``lab-agent``: iproute2, iptables, ethtool and
Python; ``--network host --pid host`` with NET_ADMIN, SYS_ADMIN and SYS_PTRACE), giving it a
list of operations that :mod:`lab.cluster.wiring` computed from the plan: every argv is decided
by lab, none is parsed by a shell. Each operation is one of

- ``{"op": "run", "argv": [...], "stdin": "...", "ok": [codes], "retry": seconds}``: run a program
  (``ip -batch -`` reads its commands from ``stdin``); an exit code outside ``ok`` (default ``[0]``),
  still so after ``retry`` seconds of trying again (default 0), stops the agent;
- ``{"op": "seal", "pid": N}``: delete every interface but ``lo`` in process N's network
  namespace (what the engine gave a task that lab did not make);
- ``{"op": "write", "pid": N, "path": P, "text": T}``: replace the contents of file P as process N
  sees it (through ``/proc/N/root``, so the file a container had bind-mounted stays in place);
- ``{"op": "on-stop", "ops": [...]}``: keep ``ops`` for the agent's main process to carry out when
  the engine stops the container (``lab down``: the lab's VXLAN devices and firewall chain go as
  its agent goes, with no exec of its own);
- ``{"op": "probe", "address": A, "name": N, "vni": V}``: report the interface holding the underlay
  address A and its MTU, and whether this kernel makes VXLAN devices (it makes device N, VNI V, and
  deletes it again; each probe names its own, so two labs coming up at once do not collide).

It reads ``/lab-agent/ops.json`` (or ``--ops FILE``) and prints one JSON object on stdout: ``{"ok": bool,
"done": n, "error": text, "probe": {...}}``. Standard library only.

``serve [--switch]`` is the agent container's main process: idle until the engine stops it, then
it carries out the ``on-stop`` operations and exits 0 (1 if one failed, 3 if it was given none),
so ``down`` knows from the exit code alone whether the machine is unwired. With ``--switch`` it
starts the machine's switch as its child: ``unshare --net sleep infinity``, a network namespace
of its own where the LAN bridges go; it prints ``{"switch": PID}`` once the child is in it, and
lab reads that from the container's log.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

OPS_FILE = "/lab-agent/ops.json"
ON_STOP_FILE = "/lab-agent/on-stop.json"
NOTHING_TO_UNDO = 3  # serve's exit code when no on-stop operations were given
CLONE_NEWNS = 0x00020000


def run(op: dict[str, Any]) -> None:
    """Run one program; with ``retry`` (seconds), try again until it succeeds or the time is up."""
    argv = [str(a) for a in op["argv"]]
    deadline = time.monotonic() + float(op.get("retry", 0))
    while True:
        done = subprocess.run(argv, input=op.get("stdin"), capture_output=True, text=True, timeout=120)
        if done.returncode in op.get("ok", [0]):
            return
        if time.monotonic() >= deadline:
            why = (done.stderr or done.stdout).strip()[:300]
            raise RuntimeError(f"{' '.join(argv[:8])}: exit {done.returncode}: {why}")
        time.sleep(0.2)


def seal(pid: int) -> None:
    listing = subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "-j", "link", "show"],
                             capture_output=True, text=True, timeout=30, check=True)
    for link in json.loads(listing.stdout or "[]"):
        if link.get("ifname") != "lo":
            run({"op": "run", "argv": ["nsenter", "-t", str(pid), "-n", "ip", "link", "del", link["ifname"]]})


def switch(parent: int, timeout: float = 10.0) -> int:
    """The child of ``parent`` in a network namespace of its own, once it has unshared it."""
    own = os.readlink("/proc/self/ns/net")
    deadline = time.monotonic() + timeout
    while True:
        for task in os.listdir(f"/proc/{parent}/task"):
            with open(f"/proc/{parent}/task/{task}/children") as f:
                for child in f.read().split():
                    try:
                        if os.readlink(f"/proc/{child}/ns/net") != own:
                            return int(child)
                    except OSError:
                        continue  # gone meanwhile
        if time.monotonic() >= deadline:
            raise RuntimeError(f"process {parent} has no child in a network namespace of its own "
                               f"after {timeout:.0f} s")
        time.sleep(0.01)


def write(pid: int, path: str, text: str) -> None:
    if not path.startswith("/") or ".." in path.split("/"):
        raise ValueError(f"not an absolute path: {path!r}")
    with open(f"/proc/{pid}/root{path}", "w") as f:
        f.write(text)


def probe(address: str, name: str, vni: int) -> dict[str, Any]:
    """The interface holding ``address`` and its MTU; and whether a VXLAN device ``name`` can be made."""
    found: dict[str, Any] = {"ifname": None, "mtu": None, "vxlan": False}
    listing = subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True, timeout=30, check=True)
    for link in json.loads(listing.stdout or "[]"):
        if any(a.get("local") == address for a in link.get("addr_info", [])):
            found.update(ifname=link["ifname"], mtu=link.get("mtu"))
    made = subprocess.run(["ip", "link", "add", name, "type", "vxlan", "id", str(vni), "dstport", "4790",
                           "local", address], capture_output=True, text=True, timeout=30)
    if made.returncode == 0:
        found["vxlan"] = True
        subprocess.run(["ip", "link", "del", name], capture_output=True, timeout=30)
    else:
        found["vxlan_error"] = made.stderr.strip()[:200]
    return found


def keep_on_stop(ops: list[dict[str, Any]]) -> None:
    """Keep ``ops`` for :func:`serve`: in a file of the container (an exec's mounts are its own; files are shared)."""
    os.makedirs(os.path.dirname(ON_STOP_FILE), exist_ok=True)
    with open(ON_STOP_FILE + ".new", "w") as f:
        json.dump(ops, f)
    os.replace(ON_STOP_FILE + ".new", ON_STOP_FILE)


def serve(with_switch: bool) -> int:
    """Wait for SIGTERM (``docker stop``), then carry out the kept on-stop operations; the exit code says how."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    switch_child = subprocess.Popen(["unshare", "--net", "sleep", "infinity"]) if with_switch else None
    if switch_child is not None:  # its PID, once it is in its own namespace: lab reads it from the logs
        print(json.dumps({"switch": switch(os.getpid())}), flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    if switch_child is not None:  # the switch's namespace, and the LAN bridges and VXLAN ports in it, go
        switch_child.kill()
        switch_child.wait()
    try:
        with open(ON_STOP_FILE) as f:
            ops = json.load(f)
    except FileNotFoundError:
        return NOTHING_TO_UNDO
    try:
        for op in ops:
            run(op)
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(f"on stop: {exc}", file=sys.stderr)
        return 1
    return 0


def writable_proc_sys() -> None:
    """A container's /proc/sys is read-only; a proc of our own, in a mount namespace of our own, is not.

    The programs this agent runs inherit both, so ``nsenter -n ... sysctl`` writes the sysctls of the
    namespace it entered (/proc/sys/net always shows the writer's network namespace).
    """
    if os.access("/proc/sys/net", os.W_OK) and not _read_only("/proc/sys"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS) failed")
    subprocess.run(["mount", "--make-rprivate", "/"], check=True, capture_output=True, timeout=30)
    subprocess.run(["mount", "-t", "proc", "proc", "/proc"], check=True, capture_output=True, timeout=30)


def _read_only(path: str) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


def main(argv: list[str] | None = None) -> int:
    """``--ops FILE`` (default /lab-agent/ops.json): carry out the operations in FILE and print the result.

    ``run -- PROGRAM ARGS...``: become PROGRAM (exec, so a signal sent to this PID reaches it) with a
    writable /proc/sys: how lab runs a fault's command or a capture in a node of this machine.
    """
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["serve"]:
        return serve(with_switch="--switch" in args[1:])
    if args[:1] == ["run"]:
        program = args[2:] if args[1:2] == ["--"] else args[1:]
        writable_proc_sys()
        os.execvp(program[0], program)
    path = args[1] if args[:1] == ["--ops"] and len(args) > 1 else OPS_FILE
    with open(path) as f:
        ops = json.load(f)
    result: dict[str, Any] = {"ok": True, "done": 0, "error": None}
    try:
        writable_proc_sys()
        for op in ops:
            if op["op"] == "run":
                run(op)
            elif op["op"] == "seal":
                seal(int(op["pid"]))
            elif op["op"] == "write":
                write(int(op["pid"]), str(op["path"]), str(op["text"]))
            elif op["op"] == "on-stop":
                keep_on_stop(list(op["ops"]))
            elif op["op"] == "probe":
                result["probe"] = probe(str(op["address"]), str(op["name"]), int(op["vni"]))
            else:
                raise RuntimeError(f"unknown operation {op['op']!r}")
            result["done"] += 1
    except (RuntimeError, OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
        result.update(ok=False, error=str(exc))
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
