"""An sshd on each machine of a local cluster, and a workstation that logs into them: ssh:// engines.

A real machine's ``ssh://root@ADDRESS`` engine is its sshd running ``docker system dial-stdio`` for
a key the workstation holds. Here each simulated machine gets an sshd of its own, in its network
namespace, listening on its underlay address only. The sshd comes from Debian's openssh-server,
which ``scripts/setup.sh`` unpacks into ``.cache/sshd`` without installing it, so this machine
gets no ssh service. Three things make a bare unpacked sshd run:

- its libwrap, unpacked beside it;
- a private mount namespace with a copy of ``/etc/passwd`` that has the ``sshd`` user it
  separates privileges into;
- ``/run/sshd``, its compiled-in empty directory. It is made only if missing, and removed again.

``SetEnv DOCKER_HOST`` points each login's docker CLI at that machine's engine socket.

The workstation is the underlay's namespace (198.18.0.254, the only place the machines'
addresses route to) with a PID namespace of its own and a home of its own: ssh reads its keys
and ``known_hosts`` from the home that ``/etc/passwd`` names (not ``$HOME``), so a private mount
of a copy of ``/etc/passwd`` names another, and this machine's root's own ``~/.ssh`` is never
read or written.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lab.cluster import local

UNPACKED = Path(__file__).resolve().parents[2] / ".cache" / "sshd"
SSHD = UNPACKED / "usr" / "sbin" / "sshd"
PRIVSEP_DIR = Path("/run/sshd")


class SshCluster:
    """A local cluster's machines with an sshd each, and where the workstation keeps its keys."""

    def __init__(self, cluster: str, machines: list[str], workdir: Path) -> None:
        self.cluster = cluster
        self.machines = machines
        self.workdir = workdir
        self.home = workdir / "home"
        self.file = workdir / "cluster-ssh.yaml"

    def address(self, machine: str) -> str:
        return str(local.underlay_address(self.machines.index(machine) + 1).ip)

    def from_workstation(self, *argv: str, home: Path | None = None, timeout: float = 600
                         ) -> subprocess.CompletedProcess[str]:
        """``argv`` on the workstation: the underlay's network, a PID namespace and a home of its own."""
        return subprocess.run(self.workstation_argv(*argv, home=home), capture_output=True, text=True,
                              timeout=timeout)

    def workstation_argv(self, *argv: str, home: Path | None = None) -> list[str]:
        home = home or self.home
        passwd = _passwd_copy(self.workdir / f"passwd-{home.parent.name}-{home.name}", root_home=home)
        return ["ip", "netns", "exec", local.netns_name(self.cluster, "_ul"),
                "unshare", "--pid", "--fork", "--mount-proc",
                "sh", "-c", f'mount --bind "{passwd}" /etc/passwd && exec "$@"', "sh", *argv]


@contextmanager
def sshd_on_machines(cluster: str, machines: list[str], workdir: Path) -> Iterator[SshCluster]:
    """Start an sshd on every machine, write ``cluster-ssh.yaml`` naming them; stop them (by PID) after."""
    if not SSHD.exists():
        raise RuntimeError(f"no unpacked sshd at {SSHD}: run scripts/setup.sh, which unpacks openssh-server there")
    libwrap = next(UNPACKED.glob("usr/lib/*/libwrap.so.0")).parent
    ssh = SshCluster(cluster, machines, workdir)
    (ssh.home / ".ssh").mkdir(parents=True, mode=0o700)
    _keygen(ssh.home / ".ssh" / "id_ed25519")
    passwd = _passwd_copy(workdir / "passwd-sshd", sshd_user=True)
    made_privsep_dir = not PRIVSEP_DIR.exists()
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    daemons: list[subprocess.Popen[bytes]] = []
    known_hosts = []
    try:
        for machine in machines:
            config, host_key = _machine_files(ssh, machine)
            known_hosts.append(f"{ssh.address(machine)} {' '.join(host_key.read_text().split()[:2])}")
            log = open(workdir / machine / "sshd.log", "wb")  # noqa: SIM115 - the daemon's, closed when it ends
            daemons.append(subprocess.Popen(
                ["ip", "netns", "exec", local.netns_name(cluster, machine),
                 "unshare", "--mount", "--propagation", "private", "sh", "-c",
                 f'mount --bind "{passwd}" /etc/passwd && exec "$0" -D -e -f "{config}"', str(SSHD)],
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LD_LIBRARY_PATH": str(libwrap)},
                stdout=log, stderr=log, start_new_session=True))
            log.close()
        (ssh.home / ".ssh" / "known_hosts").write_text("\n".join(known_hosts) + "\n")
        for machine in machines:
            _wait_listening(ssh, machine)
        ssh.file.write_text("machines:\n" + "".join(f"  {m}: {{engine: \"ssh://root@{ssh.address(m)}\"}}\n"
                                                    for m in machines))
        yield ssh
    finally:
        for daemon in daemons:
            daemon.send_signal(signal.SIGTERM)
        for daemon in daemons:
            daemon.wait(timeout=30)
        if made_privsep_dir:
            shutil.rmtree(PRIVSEP_DIR, ignore_errors=True)


def _passwd_copy(path: Path, root_home: Path | None = None, sshd_user: bool = False) -> Path:
    """This machine's /etc/passwd with root's home moved, or with the user sshd separates privileges into."""
    lines = Path("/etc/passwd").read_text().splitlines()
    if root_home is not None:
        lines = [":".join([*fields[:5], str(root_home), *fields[6:]]) if (fields := line.split(":"))[0] == "root"
                 else line for line in lines]
    if sshd_user:
        lines.append("sshd:x:65534:65534:sshd privilege separation:/run/sshd:/usr/sbin/nologin")
    path.write_text("\n".join(lines) + "\n")
    return path


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, timeout=30)


def _machine_files(ssh: SshCluster, machine: str) -> tuple[Path, Path]:
    """The machine's sshd_config and host key (its .pub), with the workstation's key authorised."""
    here = ssh.workdir / machine
    here.mkdir()
    _keygen(here / "host_key")
    (here / "authorized_keys").write_text((ssh.home / ".ssh" / "id_ed25519.pub").read_text())
    config = here / "sshd_config"
    config.write_text("\n".join([
        f"ListenAddress {ssh.address(machine)}",
        f"HostKey {here / 'host_key'}",
        f"PidFile {here / 'sshd.pid'}",
        f"AuthorizedKeysFile {here / 'authorized_keys'}",
        "PermitRootLogin prohibit-password", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
        "UsePAM no", "StrictModes no",  # the files live in a test's temporary directory
        "MaxStartups 64", "MaxSessions 64",  # lab opens several connections at once
        f"SetEnv DOCKER_HOST=unix://{local.socket_path(ssh.cluster, machine)}",
    ]) + "\n")
    return config, here / "host_key.pub"


def _wait_listening(ssh: SshCluster, machine: str) -> None:
    """Until the machine's sshd listens on port 22 (read with ss in its namespace: nothing is sent)."""
    for _ in range(100):
        listening = subprocess.run(["ip", "netns", "exec", local.netns_name(ssh.cluster, machine), "ss", "-Hltn"],
                                   capture_output=True, text=True, timeout=30).stdout
        if f"{ssh.address(machine)}:22 " in listening:
            return
        time.sleep(0.1)
    log = (ssh.workdir / machine / "sshd.log").read_text(errors="replace")
    raise RuntimeError(f"the sshd on {machine} did not listen within 10 s: {log[-500:]}")
