"""What the tests on a two-machine local cluster share: a LAN across m1 and m2, and a look at a machine."""

from __future__ import annotations

import subprocess
from pathlib import Path

from lab.cli import main
from lab.cluster import local


def lan_across(lab: str, subnet: str) -> str:
    """A topology: nodes a (pinned to m1) and b (to m2) on one LAN, which VXLAN carries between them."""
    return f"""\
name: {lab}
networks:
  lan: {{subnet: {subnet}}}
nodes:
  a: {{machine: m1, interfaces: {{eth0: {{network: lan}}}}}}
  b: {{machine: m2, interfaces: {{eth0: {{network: lan}}}}}}
"""


def on_machine(cluster: str, machine: str, *argv: str) -> str:
    """``docker ARGV`` on the machine's engine through its socket: how a test looks, not how lab reaches it."""
    return subprocess.run(["docker", "-H", f"unix://{local.socket_path(cluster, machine)}", *argv],
                          capture_output=True, text=True, check=True, timeout=60).stdout


def lan_topology_file(directory: Path, lab: str, subnet: str) -> Path:
    """:func:`lan_across` written to ``directory/t.yaml``."""
    path = directory / "t.yaml"
    path.write_text(lan_across(lab, subnet))
    return path


def build_images_here() -> None:
    """The images a LAN lab needs, built in this machine's namespace, where the build reaches Debian.

    A test that runs ``lab`` from the underlay's namespace cannot build there: only the machines
    are reachable from it.
    """
    assert main(["images", "build", "-q", "base", "host", "agent"]) == 0
