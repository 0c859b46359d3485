"""Cluster verbs: ``lab cluster local up N`` / ``local down`` (a simulated cluster) and ``lab cluster doctor FILE``."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from lab.cli.common import console, out


def register(app: typer.Typer) -> None:
    cluster = typer.Typer(help="Machines for labs spread over several: check a cluster, or simulate one here.",
                          no_args_is_help=True)
    local = typer.Typer(help="A simulated cluster on this machine: each machine a namespace with its own dockerd.",
                        no_args_is_help=True)
    app.add_typer(cluster, name="cluster")
    cluster.add_typer(local, name="local")

    @local.command("up")
    def local_up(
        count: int = typer.Argument(3, help="How many machines (1-9)."),
        name: str = typer.Option("local", "--name", help="The cluster's name (several may be up at once)."),
        mtu: int = typer.Option(1550, "--mtu", help="The underlay's MTU (1550 carries 1500-byte frames in VXLAN)."),
        registry: bool = typer.Option(False, "--registry", help="Also run a registry on the underlay; the "
                                      "machines then pull the lab images from it."),
        tls: bool = typer.Option(False, "--tls", help="Also have every engine listen on tcp://ADDRESS:2376 with "
                                 "TLS, and write cluster-tcp.yaml naming them so (usable from the underlay)."),
        copy_to: Path | None = typer.Option(None, "--out", help="Also write the cluster file here."),
    ) -> None:
        """Make COUNT machines on this one, join them into a Docker Swarm, and write their cluster file."""
        from lab.cluster import local as local_cluster

        with console.status("local cluster"):
            path = local_cluster.up(count, name, mtu, progress=lambda step: console.log(step), registry=registry,
                                    tls=tls)
        if copy_to is not None:
            shutil.copyfile(path, copy_to)
            path = copy_to
        out.print(f"cluster file: {path}")
        if tls:
            tcp_file = local_cluster.tcp_cluster_file(name)
            out.print(f"engines over TCP with TLS: {tcp_file}, from the underlay: "
                      f"ip netns exec {local_cluster.netns_name(name, '_ul')} lab cluster doctor {tcp_file}")
        out.print(f"next: lab cluster doctor {path}")

    @local.command("down")
    def local_down(name: str = typer.Option("local", "--name", help="The cluster's name.")) -> None:
        """Remove a simulated cluster: its engines, namespaces, data and cgroups (exactly what its journal names)."""
        from lab.cluster import local as local_cluster
        from lab.errors import EnvironmentProblem

        if not local_cluster.is_up(name):
            out.print(f"cluster {name}: nothing to remove")
            return
        with console.status("local cluster down"):
            problems = local_cluster.down(name, progress=lambda step: console.log(step))
        if problems:
            raise EnvironmentProblem(f"cluster {name}: {len(problems)} things could not be removed: "
                                     + "; ".join(problems), f"lab cluster local down --name {name} again")
        out.print(f"cluster {name}: removed")

    @cluster.command("doctor")
    def doctor(
        file: Path = typer.Argument(..., help="The cluster file."),
        as_json: bool = typer.Option(False, "--json", help="JSON output."),
    ) -> None:
        """Check every machine of a cluster through its engine (answers, Swarm member, ready, images)."""
        from lab.cli.doctor import print_checks
        from lab.cluster.doctor import check_cluster
        from lab.cluster.model import load_cluster

        print_checks(check_cluster(load_cluster(file), _local_lab_images()), as_json, title=f"cluster {file}")


def _local_lab_images() -> list[str] | None:
    """The lab image tags this machine's engine holds (None when it has no engine)."""
    import docker.errors

    from lab.dockerclient import docker_client
    from lab.errors import LabError
    from lab.images import list_images

    try:
        return sorted(str(row["tag"]) for row in list_images(docker_client()) if row["built"])
    except (LabError, docker.errors.DockerException):  # no engine here: the machines' images are not compared
        return None
