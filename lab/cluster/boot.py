"""Start one simulated machine's dockerd: its own hostname and its own /etc/docker, then exec it.

Run as ``nsenter --net=NS -- unshare --uts --mount --propagation slave -- python3 -m
lab.cluster.boot --hostname m1 --etc-docker DIR -- dockerd ...`` by :mod:`lab.cluster.local`.
The UTS namespace gives the engine the machine's name (Swarm calls a node by its hostname);
the private mount namespace hides the engine's overlay mounts from this machine's own and lets
a directory of the cluster's stand in for /etc/docker (its key.json is the engine's identity).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m lab.cluster.boot")
    parser.add_argument("--hostname", required=True)
    parser.add_argument("--etc-docker", required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run")
    socket.sethostname(args.hostname)
    if os.path.isdir("/etc/docker"):
        subprocess.run(["mount", "--bind", args.etc_docker, "/etc/docker"], check=True)
    os.execvp(command[0], command)
    return 127  # not reached: exec replaced this process


if __name__ == "__main__":
    sys.exit(main())
