"""Image verbs: ``lab images build``, ``lab images ls``, ``lab images prune``."""

from __future__ import annotations

import json
import re
import time

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from lab.cli.common import console, out
from lab.errors import InputError

ROOT_MODES = ("auto", "registry", "debootstrap")
_STEP = re.compile(r"^image (\S+): (.*)$")


def register(app: typer.Typer) -> None:
    images = typer.Typer(help="The lab's Docker images (lab/recipes/<name>/Dockerfile), tagged by content hash.",
                         no_args_is_help=True)
    app.add_typer(images, name="images")

    @images.command("build")
    def build(
        names: list[str] = typer.Argument(None, help="Images to build (default: all under lab/recipes/)."),
        force: bool = typer.Option(False, "--force", help="Rebuild even when the hash tag exists."),
        root: str = typer.Option("auto", "--root",
                                 help="Where the base comes from: auto (local, registry, else debootstrap), "
                                      "registry (pull debian:bookworm-slim) or debootstrap (never a registry)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    ) -> None:
        """Build the lab images that are missing (cached by content hash: an unchanged image is not rebuilt)."""
        from lab.dockerclient import docker_client
        from lab.images import ImageSet

        if root not in ROOT_MODES:
            raise InputError(f"--root {root!r}: expected one of {', '.join(ROOT_MODES)}")
        image_set = ImageSet(docker_client(), root_mode=root)
        wanted = list(names) if names else sorted(image_set.recipes)
        start = time.monotonic()
        if quiet:
            results = image_set.ensure(wanted, force=force)
        else:
            with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                          TimeElapsedColumn(), console=console, transient=True) as bar:
                tasks: dict[str, TaskID] = {}

                def report(step: str, done: int, total: int) -> None:
                    m = _STEP.match(step)
                    key, text = (m.group(1), m.group(2)) if m else ("root", step)
                    if key not in tasks:
                        tasks[key] = bar.add_task(key, total=max(total, 1))
                    bar.update(tasks[key], description=f"{key}: {text}"[:90], completed=done, total=max(total, 1))

                results = image_set.ensure(wanted, report, force=force)
        table = Table("image", "tag", "result", title=f"lab images ({time.monotonic() - start:.1f} s)")
        for r in results:
            table.add_row(r.name, r.tag, f"built in {r.seconds:.1f} s" if r.built else "cached")
        out.print(table)

    @images.command("ls")
    def list_images(as_json: bool = typer.Option(False, "--json", help="JSON output.")) -> None:
        """Each lab image: its current hash tag and whether it is built on this machine."""
        from lab.dockerclient import docker_client
        from lab.images import list_images as rows_of

        rows = rows_of(docker_client())
        if as_json:
            out.print_json(json.dumps(rows))
            return
        table = Table("image", "tag", "built", "size", "from")
        for row in rows:
            size = f"{row['size_mb']} MB" if row["size_mb"] is not None else "-"
            table.add_row(row["name"], row["tag"], "yes" if row["built"] else "no", size, row["parent"])
        out.print(table)

    @images.command("prune")
    def prune() -> None:
        """Remove lab images that no current Dockerfile produces (earlier builds)."""
        from lab.dockerclient import docker_client
        from lab.images import prune as prune_images

        removed, kept = prune_images(docker_client())
        out.print(f"removed {len(removed)} stale lab images" + (": " + ", ".join(removed) if removed else ""))
        for item in kept:
            console.print(f"kept: {item}")
