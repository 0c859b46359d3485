"""The lab's Docker images: built from lab/recipes/<name>/, tagged by the hash of what went into them.

A short name (``host``, ``dns``, ``proxy``, ``web``, ``router``, ``base``) names a
directory under images/. Its tag is ``lab-<name>:<hash>``, where the hash covers
every byte of the build context (the Dockerfile, the files beside it, and any
project sources the Dockerfile asks for with a ``# lab: context PATH...`` line)
plus the identity of the image it is built FROM. So a changed Dockerfile, a
changed server in lab/servers, or a rebuilt base gives a new tag and a build;
an unchanged one finds its tag and builds nothing.

The chain is root → base → leaf. A leaf's Dockerfile says ``ARG BASE=lab-base``
and ``FROM ${BASE}``; lab passes the base's hash tag. The base says
``ARG ROOT=debian:bookworm-slim``: where a registry answers that is what it
builds on. Offline (no registry, as on our machines) lab makes the root itself:
``debootstrap --variant=minbase`` from the Debian mirror the machine's apt uses,
then ``docker import`` as ``lab-rootfs:<hash of the recipe>``.

Builds run with the host's network (``network_mode=host``): their only traffic
is apt fetching from that same mirror, and it then works whether or not dockerd
set up NAT for its bridge. Labs themselves never get that network.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.dockerbuild import (
    BUILD_TIMEOUT,
    LABEL_IMAGE,
    TAG_LENGTH,
    Progress,
    api_message,
    build_log_path,
    image_lock,
    no_progress,
)
from lab.errors import EnvironmentProblem, InputError
from lab.rootimage import ensure_root, find_root, local_image, pull

if TYPE_CHECKING:
    from docker import DockerClient


LABEL_HASH = "lab.hash"
SKIP_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache"}

_PARENT_RE = re.compile(r"^\s*ARG\s+BASE=lab-([a-z0-9-]+)\s*$", re.MULTILINE)
_ROOT_RE = re.compile(r"^\s*ARG\s+ROOT=", re.MULTILINE)
_CONTEXT_RE = re.compile(r"^#\s*lab:\s*context\s+(.+)$", re.MULTILINE)


PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # holds lab/: what a recipe's ``# lab: context`` names
RECIPES = Path(__file__).resolve().parent / "recipes"  # one directory per image, inside the package


def images_dir() -> Path:
    """The image recipes, lab/recipes/ (``$LAB_IMAGES_DIR`` overrides, e.g. for tests)."""
    return Path(os.environ.get("LAB_IMAGES_DIR") or RECIPES)


@dataclass(frozen=True)
class Recipe:
    """One buildable image: where its Dockerfile is, what it builds FROM, and what its context holds."""

    name: str
    directory: Path
    parent: str | None  # a lab image name; None means it builds FROM the root (only base)
    sources: tuple[str, ...]  # project paths copied into the context (``# lab: context``)

    @property
    def repository(self) -> str:
        return f"lab-{self.name}"


def recipes(directory: Path | None = None) -> dict[str, Recipe]:
    """Every lab/recipes/<name>/Dockerfile, parsed for its parent and extra context."""
    root = directory or images_dir()
    found: dict[str, Recipe] = {}
    if not root.is_dir():
        return found
    for sub in sorted(root.iterdir()):
        dockerfile = sub / "Dockerfile"
        if not dockerfile.is_file():
            continue
        text = dockerfile.read_text()
        parent = _PARENT_RE.search(text)
        if parent is None and not _ROOT_RE.search(text):
            raise EnvironmentProblem(f"{dockerfile}: no 'ARG BASE=lab-<image>' or 'ARG ROOT=' line",
                                     "a lab image builds FROM ${BASE} (a lab image) or ${ROOT} (the root)")
        sources = tuple(p for m in _CONTEXT_RE.finditer(text) for p in m.group(1).split())
        found[sub.name] = Recipe(sub.name, sub, parent.group(1) if parent else None, sources)
    for r in found.values():
        if r.parent is not None and r.parent not in found:
            raise EnvironmentProblem(f"{r.directory}/Dockerfile builds FROM lab-{r.parent}",
                                     f"there is no {root}/{r.parent}/Dockerfile")
    return found


def build_order(all_recipes: dict[str, Recipe], wanted: list[str]) -> list[list[str]]:
    """The wanted images and their ancestors in waves: each wave only needs images of earlier waves."""
    needed: set[str] = set()
    for name in wanted:
        chain: list[str] = []
        cur: str | None = name
        while cur is not None:
            if cur in chain:
                cycle = " -> ".join(chain + [cur])
                raise EnvironmentProblem(f"images {cycle} build FROM each other in a cycle")
            chain.append(cur)
            cur = all_recipes[cur].parent
        needed.update(chain)

    def depth(name: str) -> int:
        parent = all_recipes[name].parent
        return 0 if parent is None else 1 + depth(parent)

    waves: dict[int, list[str]] = {}
    for name in sorted(needed):
        waves.setdefault(depth(name), []).append(name)
    return [waves[d] for d in sorted(waves)]


# --- the build context and its hash -------------------------------------------------


@dataclass(frozen=True)
class Member:
    """One file of a build context: its path in the archive, mode (0644/0755) and bytes."""

    path: str
    mode: int
    data: bytes


def _walk(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for p in sorted(path.rglob("*")):
        if p.is_file() and not (SKIP_PARTS & set(p.parts)) and p.suffix not in (".pyc", ".pyo"):
            yield p


def context_members(recipe: Recipe, project_root: Path | None = None) -> list[Member]:
    """The files of the image's build context, sorted: its directory, then the project sources it asks for.

    Those sources (``lab/servers``, ...) are named from the directory that holds the ``lab``
    package: the source tree, or site-packages once lab is installed from its wheel.
    """
    project = project_root or PACKAGE_ROOT
    members: dict[str, Member] = {}
    for p in _walk(recipe.directory):
        rel = p.relative_to(recipe.directory).as_posix()
        members[rel] = Member(rel, _mode(p), p.read_bytes())
    for source in recipe.sources:
        src = (project / source).resolve()
        if not src.is_relative_to(project.resolve()) or not src.exists():
            raise EnvironmentProblem(f"{recipe.directory}/Dockerfile asks for {source!r} in its context, "
                                     f"which is not a path inside {project}")
        for p in _walk(src):
            rel = p.resolve().relative_to(project.resolve()).as_posix()
            members[rel] = Member(rel, _mode(p), p.read_bytes())
    return [members[k] for k in sorted(members)]


def _mode(path: Path) -> int:
    """0755 or 0644: only the executable bit matters, so a umask never changes a hash."""
    return 0o755 if path.stat().st_mode & 0o111 else 0o644


def content_hash(members: list[Member], parent_identity: str) -> str:
    """sha256 over every member (path, mode, bytes) and the identity of the image it builds FROM."""
    h = hashlib.sha256()
    h.update(f"lab-image-v1\0parent={parent_identity}\0".encode())
    for m in members:
        h.update(f"{m.path}\0{m.mode:o}\0{len(m.data)}\0".encode())
        h.update(m.data)
    return h.hexdigest()


def context_tar(members: list[Member]) -> io.BytesIO:
    """A deterministic tar of the members (mtime 0, owner root) to hand to the Docker build API."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            info = tarfile.TarInfo(m.path)
            info.size = len(m.data)
            info.mode = m.mode
            info.mtime = 0
            tar.addfile(info, io.BytesIO(m.data))
    buf.seek(0)
    return buf


def tag_for(recipe: Recipe, members: list[Member], parent_identity: str) -> str:
    return f"{recipe.repository}:{content_hash(members, parent_identity)[:TAG_LENGTH]}"


# --- building -----------------------------------------------------------------------


@dataclass
class Built:
    """What ``ensure`` did for one image: its tag, and whether it had to build it (and how long it took)."""

    name: str
    tag: str
    built: bool
    seconds: float = 0.0


def _build_client() -> DockerClient:
    import docker

    return docker.from_env(timeout=BUILD_TIMEOUT)


def build_image(client: DockerClient, recipe: Recipe, members: list[Member], tag: str,
                buildargs: dict[str, str], progress: Progress = no_progress) -> None:
    """Run one Docker build, streaming its steps to ``progress`` and its output to a log file."""
    import docker.errors

    log = build_log_path(recipe.name)
    step_re = re.compile(r"^Step (\d+)/(\d+) : (.*)")
    digest = tag.partition(":")[2]
    last: list[str] = []
    with open(log, "w") as out:
        try:
            stream = client.api.build(
                fileobj=context_tar(members), custom_context=True, tag=tag, buildargs=buildargs, rm=True,
                forcerm=True, pull=False, network_mode="host", decode=True,
                labels={LABEL_IMAGE: recipe.name, LABEL_HASH: digest},
            )
            for chunk in stream:
                if "error" in chunk:
                    out.write(str(chunk["error"]) + "\n")
                    raise EnvironmentProblem(
                        f"building image {recipe.name} failed: {str(chunk['error']).strip()[:300]}",
                        f"see its log: {log}")
                text = str(chunk.get("stream", ""))
                if not text:
                    continue
                out.write(text)
                for line in text.splitlines():
                    if line.strip():
                        last = (last + [line])[-20:]
                    m = step_re.match(line)
                    if m:
                        step, steps = int(m.group(1)), int(m.group(2))
                        progress(f"image {recipe.name}: {m.group(3)[:60]}", step - 1, steps)
        except (docker.errors.APIError, docker.errors.BuildError) as exc:
            raise EnvironmentProblem(f"building image {recipe.name} failed: {api_message(exc)}",
                                     f"see its log: {log}") from None
    if local_image(client, tag) is None:
        raise EnvironmentProblem(f"building image {recipe.name} ended without the image {tag}",
                                 f"see its log: {log}")


class ImageSet:
    """Resolves short names to hash tags and builds what is missing, parents first, siblings concurrently."""

    def __init__(self, client: DockerClient, directory: Path | None = None, root_mode: str = "auto") -> None:
        self.client = client
        self.recipes = recipes(directory)
        self.root_mode = root_mode
        self._root: str | None = None
        self._tags: dict[str, str] = {}

    def root(self, progress: Progress = no_progress, build: bool = True) -> str | None:
        if self._root is None and build:
            self._root = ensure_root(self.client, progress, self.root_mode)
        elif self._root is None:
            self._root = find_root(self.client)
        return self._root

    def _parent_identity(self, recipe: Recipe, progress: Progress, build: bool) -> tuple[str, str] | None:
        """(build-arg value, identity for the hash) of the image ``recipe`` builds FROM."""
        if recipe.parent is None:
            root = self.root(progress, build)
            if root is None:
                return None
            image = local_image(self.client, root)
            return root, (image.id if image is not None else root)
        parent_tag = self.tag(recipe.parent, progress, build)
        return (parent_tag, parent_tag) if parent_tag else None

    def tag(self, name: str, progress: Progress = no_progress, build: bool = True) -> str | None:
        """The hash tag of image ``name`` (None when it cannot be known without building its root)."""
        if name in self._tags:
            return self._tags[name]
        recipe = self.recipes[name]
        parent = self._parent_identity(recipe, progress, build)
        if parent is None:
            return None
        tag = tag_for(recipe, context_members(recipe), parent[1])
        self._tags[name] = tag
        return tag

    def is_built(self, name: str) -> bool:
        tag = self.tag(name, build=False)
        return tag is not None and local_image(self.client, tag) is not None

    def ensure(self, names: list[str], progress: Progress = no_progress, force: bool = False,
               concurrency: int = 3) -> list[Built]:
        """Make sure every named image (and its parents) exists; build the missing ones."""
        unknown = [n for n in names if n not in self.recipes]
        if unknown:
            raise InputError(f"no image {', '.join(unknown)} under {images_dir()}",
                             f"known: {', '.join(sorted(self.recipes))}")
        results: dict[str, Built] = {}
        for wave in build_order(self.recipes, names):
            def one(name: str) -> Built:
                return self._ensure_one(name, progress, force)

            if len(wave) == 1:
                built = [one(wave[0])]
            else:
                with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(wave)))) as pool:
                    built = list(pool.map(one, wave))
            for b in built:
                results[b.name] = b
        return [results[n] for n in sorted(results)]

    def _ensure_one(self, name: str, progress: Progress, force: bool) -> Built:
        recipe = self.recipes[name]
        parent = self._parent_identity(recipe, progress, True)
        assert parent is not None
        members = context_members(recipe)
        tag = tag_for(recipe, members, parent[1])
        self._tags[name] = tag
        with image_lock(name):
            if not force and local_image(self.client, tag) is not None:
                return Built(name, tag, False)
            start = time.monotonic()
            arg = "ROOT" if recipe.parent is None else "BASE"
            build_image(_build_client(), recipe, members, tag, {arg: parent[0]}, progress)
            return Built(name, tag, True, time.monotonic() - start)


def ensure_images(client: DockerClient, images: list[str], progress: Progress = no_progress
                  ) -> dict[str, str]:
    """Each node ``image:`` value → the reference to run.

    Lab images are built together (parents once, siblings concurrently); any
    other value is a Docker reference, pulled if it is not here.
    """
    known = recipes()
    ours = sorted({i for i in images if i in known})
    refs: dict[str, str] = {}
    if ours:
        tags = {b.name: b.tag for b in ImageSet(client).ensure(ours, progress)}
        refs.update({name: tags[name] for name in ours})
    for other in sorted(set(images) - set(ours)):
        if local_image(client, other) is None:
            pull(client, other, progress)
        refs[other] = other
    return refs


def ensure_image(client: DockerClient, image: str, progress: Progress = no_progress) -> str:
    """What to run for a node's ``image:``: a lab image by short name (built if missing), else as given."""
    return ensure_images(client, [image], progress)[image]


def list_images(client: DockerClient) -> list[dict[str, Any]]:
    """Every lab image recipe with its current tag and whether that tag is built here (no building)."""
    images = ImageSet(client)
    rows = []
    for name, recipe in sorted(images.recipes.items()):
        tag = images.tag(name, build=False)
        image = local_image(client, tag) if tag else None
        rows.append({
            "name": name, "tag": tag or "(root image not made yet)", "built": image is not None,
            "parent": f"lab-{recipe.parent}" if recipe.parent else (images.root(build=False) or "(root)"),
            "size_mb": round(image.attrs.get("Size", 0) / 1e6) if image is not None else None,
        })
    return rows


def stale_images(client: DockerClient) -> list[Any]:
    """Lab-built images (labelled ``lab.image``) that no current recipe produces: earlier builds."""
    images = ImageSet(client)
    current = {t for t in (images.tag(n, build=False) for n in images.recipes) if t}
    root = images.root(build=False)
    if root:
        current.add(root)
    return [img for img in client.images.list(filters={"label": LABEL_IMAGE})
            if not current.intersection(img.tags)]


def prune(client: DockerClient) -> tuple[list[str], list[str]]:
    """Remove stale lab images; return (removed, kept because a container still uses them)."""
    import docker.errors

    removed, kept = [], []
    for img in stale_images(client):
        label = ", ".join(img.tags) or img.short_id
        try:
            client.images.remove(img.id)
            removed.append(label)
        except docker.errors.APIError as exc:
            kept.append(f"{label}: {api_message(exc)}")
    return removed, kept
