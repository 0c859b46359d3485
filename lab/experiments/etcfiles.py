"""A node's own /etc files (hosts, resolv.conf, gai.conf), read and written wherever they live.

A namespace node's are the files ``ip netns exec`` bind-mounts over /etc (its /etc/netns
entry, under the lab's state directory); a container's are the ones inside it.
"""

from __future__ import annotations

from pathlib import Path

from lab.errors import InputError
from lab.nodes import NodeHandle

ETC_NAMES = ("hosts", "resolv.conf", "gai.conf")


class EtcFiles:
    """A node's /etc/hosts, /etc/resolv.conf and /etc/gai.conf (getaddrinfo's order), wherever they live."""

    def read(self, name: str) -> str:
        raise NotImplementedError

    def write(self, name: str, text: str) -> None:
        raise NotImplementedError


class NamespaceEtc(EtcFiles):
    def __init__(self, lab: str, netns: str) -> None:
        self.lab, self.netns = lab, netns

    def read(self, name: str) -> str:
        """The node's own file; a gai.conf the node has none of is the machine's, as its programs see it."""
        from lab.deploy import node_etc_dir

        own = node_etc_dir(self.lab, self.netns) / _etc_name(name)
        if not own.exists() and name == "gai.conf":
            machine = Path("/etc/gai.conf")
            return machine.read_text() if machine.exists() else ""
        return own.read_text()

    def write(self, name: str, text: str) -> None:
        from lab.deploy import node_etc_dir

        (node_etc_dir(self.lab, self.netns) / _etc_name(name)).write_text(text)


class ContainerEtc(EtcFiles):
    """Inside the container: the file Docker bind-mounted keeps its place, its contents change."""

    def __init__(self, handle: NodeHandle) -> None:
        self.handle = handle

    def read(self, name: str) -> str:
        if name == "gai.conf":  # an image need not have one: none means glibc's built-in table
            return self.handle.exec(["sh", "-c", 'cat "/etc/$1" 2>/dev/null || true', "sh", name]).stdout
        return self.handle.exec(["cat", f"/etc/{_etc_name(name)}"], check=True).stdout

    def write(self, name: str, text: str) -> None:
        self.handle.exec(["sh", "-c", 'cat > "/etc/$1"', "sh", _etc_name(name)], input=text, check=True)


def _etc_name(name: str) -> str:
    if name not in ETC_NAMES:
        raise InputError(f"/etc/{name}: a node's own /etc files are {', '.join(ETC_NAMES)}")
    return name
