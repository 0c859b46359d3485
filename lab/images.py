"""The lab's Docker images: built from images/<name>/, tagged by the hash of what went into them.

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

import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.errors import EnvironmentProblem, InputError

if TYPE_CHECKING:
    from docker import DockerClient

Progress = Callable[[str, int, int], None]

REGISTRY_ROOT = "debian:bookworm-slim"
SUITE = "bookworm"
ROOTFS_REPO = "lab-rootfs"
ROOTFS_RECIPE_VERSION = "2"  # bump when the debootstrap recipe below changes
LABEL_IMAGE = "lab.image"
LABEL_HASH = "lab.hash"
TAG_LENGTH = 16
BUILD_TIMEOUT = 1800  # seconds the Docker client waits for build output before giving up
PULL_TIMEOUT = 60
SKIP_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache"}

_PARENT_RE = re.compile(r"^\s*ARG\s+BASE=lab-([a-z0-9-]+)\s*$", re.MULTILINE)
_ROOT_RE = re.compile(r"^\s*ARG\s+ROOT=", re.MULTILINE)
_CONTEXT_RE = re.compile(r"^#\s*lab:\s*context\s+(.+)$", re.MULTILINE)


def _no_progress(step: str, done: int, total: int) -> None:
    return None


def images_dir() -> Path:
    """images/ of the project (``$LAB_IMAGES_DIR`` overrides, e.g. for tests)."""
    return Path(os.environ.get("LAB_IMAGES_DIR") or Path(__file__).resolve().parent.parent / "images")


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
    """Every images/<name>/Dockerfile, parsed for its parent and extra context."""
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
    """The files of the image's build context, sorted: its directory, then the project sources it asks for."""
    project = project_root or recipe.directory.parent.parent
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


# --- the root image -----------------------------------------------------------------


def debian_sources(suite: str = SUITE, apt: Path = Path("/etc/apt")) -> list[tuple[str, str]]:
    """(mirror URI, suite) pairs for ``suite*`` from this machine's apt sources, both file formats.

    ``$LAB_DEBIAN_MIRROR`` overrides; with nothing configured, deb.debian.org.
    """
    override = os.environ.get("LAB_DEBIAN_MIRROR")
    if override:
        return [(override, suite)]
    pairs: list[tuple[str, str]] = []
    one_line = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]
    for f in one_line:
        if not f.is_file():
            continue
        for line in f.read_text().splitlines():
            words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb" and words[2].startswith(suite):
                pairs.append((words[1], words[2]))
    for f in sorted((apt / "sources.list.d").glob("*.sources")) if (apt / "sources.list.d").is_dir() else []:
        for stanza in re.split(r"\n\s*\n", f.read_text()):
            fields = _deb822(stanza)
            if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
                continue
            for uri in fields.get("uris", "").split():
                for s in fields.get("suites", "").split():
                    if s.startswith(suite):
                        pairs.append((uri, s))
    seen: list[tuple[str, str]] = []
    for pair in pairs:
        if pair not in seen:
            seen.append(pair)
    main = [p for p in seen if p[1] == suite]
    if not main:
        return [("http://deb.debian.org/debian", suite)]
    return main + [p for p in seen if p[1] != suite]


def _deb822(stanza: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = None
    for line in stanza.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line[0].isspace() and key:
            fields[key] += " " + line.strip()
            continue
        k, sep, v = line.partition(":")
        if sep:
            key = k.strip().lower()
            fields[key] = v.strip()
    return fields


def _apt_skips_valid_until() -> bool:
    """True when this machine's apt accepts expired Release files (a snapshot mirror): the root must too."""
    try:
        out = subprocess.run(["apt-config", "dump", "Acquire::Check-Valid-Until"], capture_output=True,
                             text=True, timeout=10).stdout
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False
    return '"false"' in out


def rootfs_recipe() -> dict[str, Any]:
    """Everything that decides the debootstrapped root: its hash names the image."""
    sources = debian_sources()
    return {
        "version": ROOTFS_RECIPE_VERSION,
        "suite": SUITE,
        "variant": "minbase",
        "mirror": sources[0][0],
        "sources": [f"deb {uri} {suite} main" for uri, suite in sources],
        "no_valid_until": _apt_skips_valid_until(),
    }


def rootfs_tag(recipe: dict[str, Any] | None = None) -> str:
    blob = json.dumps(recipe or rootfs_recipe(), sort_keys=True).encode()
    return f"{ROOTFS_REPO}:{hashlib.sha256(blob).hexdigest()[:TAG_LENGTH]}"


def _local_image(client: DockerClient, ref: str) -> Any | None:
    import docker.errors

    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def find_root(client: DockerClient) -> str | None:
    """The root already on this machine, without building or pulling anything; None if there is none."""
    explicit = os.environ.get("LAB_ROOT_IMAGE")
    if explicit:
        return explicit if _local_image(client, explicit) is not None else None
    for ref in (REGISTRY_ROOT, rootfs_tag()):
        if _local_image(client, ref) is not None:
            return ref
    return None


def ensure_root(client: DockerClient, progress: Progress = _no_progress, mode: str = "auto") -> str:
    """The image the base builds FROM: ``$LAB_ROOT_IMAGE``, debian:bookworm-slim, or a debootstrapped one.

    ``mode`` is ``auto`` (local, then a pull, then debootstrap), ``registry`` (pull only) or
    ``debootstrap`` (never touch a registry).
    """
    explicit = os.environ.get("LAB_ROOT_IMAGE")
    if explicit:
        if _local_image(client, explicit) is None:
            _pull(client, explicit, progress)
        return explicit
    if mode != "debootstrap" and _local_image(client, REGISTRY_ROOT) is not None:
        return REGISTRY_ROOT
    tag = rootfs_tag()
    if mode != "registry" and _local_image(client, tag) is not None:
        return tag
    if mode != "debootstrap":
        try:
            _pull(client, REGISTRY_ROOT, progress)
            return REGISTRY_ROOT
        except EnvironmentProblem:
            if mode == "registry":
                raise
    with _image_lock("rootfs"):
        if _local_image(client, tag) is None:
            make_rootfs_image(client, tag, progress)
    return tag


def _pull(client: DockerClient, ref: str, progress: Progress) -> None:
    import docker.errors

    progress(f"pulling {ref}", 0, 1)
    repo, _, tag = ref.rpartition(":") if ":" in ref.split("/")[-1] else (ref, "", "latest")
    old = client.api.timeout
    client.api.timeout = PULL_TIMEOUT
    try:
        client.api.pull(repo, tag=tag)
    except (docker.errors.APIError, OSError) as exc:
        raise EnvironmentProblem(f"cannot pull {ref}: {_api_message(exc)}",
                                 "no registry answers; `lab images build` makes lab images offline") from None
    finally:
        client.api.timeout = old
    progress(f"pulling {ref}", 1, 1)


def make_rootfs_image(client: DockerClient, tag: str, progress: Progress = _no_progress) -> None:
    """debootstrap a minimal bookworm into a temporary directory, tar it, ``docker import`` it as ``tag``."""
    if shutil.which("debootstrap") is None:
        raise EnvironmentProblem("no registry answers and debootstrap is missing: no root image can be made",
                                 "install it: apt-get install debootstrap (or run scripts/setup.sh)")
    recipe = rootfs_recipe()
    work = Path(tempfile.mkdtemp(prefix="lab-rootfs-", dir="/var/tmp"))
    rootfs = work / "rootfs"
    log = build_log_path("rootfs")
    try:
        progress("debootstrap bookworm (minbase)", 0, 3)
        with open(log, "w") as out:
            rc = subprocess.run(["debootstrap", "--variant=minbase", SUITE, str(rootfs), recipe["mirror"]],
                                stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT).returncode
        if rc != 0:
            raise EnvironmentProblem(f"debootstrap of the root image failed (exit {rc})",
                                     f"see its log: {log}")
        _finish_rootfs(rootfs, recipe)
        progress("packing the root image", 1, 3)
        archive = work / "rootfs.tar"
        subprocess.run(["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(archive), "."],
                       check=True, capture_output=True, timeout=600)
        progress("importing the root image", 2, 3)
        repo, _, version = tag.partition(":")
        client.api.import_image_from_file(str(archive), repository=repo, tag=version,
                                          changes=['CMD ["bash"]', f"LABEL {LABEL_IMAGE}=rootfs"])
        progress("root image ready", 3, 3)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _finish_rootfs(rootfs: Path, recipe: dict[str, Any]) -> None:
    """Point apt at the machine's mirror, drop caches, and leave no machine identity inside."""
    (rootfs / "etc/apt/sources.list").write_text("".join(line + "\n" for line in recipe["sources"]))
    if recipe["no_valid_until"]:
        (rootfs / "etc/apt/apt.conf.d/10lab-snapshot").write_text('Acquire::Check-Valid-Until "false";\n')
    caches = ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*_*", "var/log/*.log")
    for pattern in caches:
        for p in rootfs.glob(pattern):
            p.unlink()
    for name in ("etc/hostname", "etc/resolv.conf"):
        p = rootfs / name
        if p.exists() or p.is_symlink():
            p.unlink()
    (rootfs / "etc/machine-id").write_text("")


# --- building -----------------------------------------------------------------------


def build_log_path(name: str) -> Path:
    from lab.state import ensure_root_dir

    d = ensure_root_dir() / "images"
    d.mkdir(exist_ok=True)
    return d / f"{name}.build.log"


@contextmanager
def _image_lock(name: str) -> Iterator[None]:
    """One build of an image at a time on this machine; the second waiter then finds it built."""
    from lab.state import ensure_root_dir

    fd = os.open(ensure_root_dir() / f".image-{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


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
                buildargs: dict[str, str], progress: Progress = _no_progress) -> None:
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
            raise EnvironmentProblem(f"building image {recipe.name} failed: {_api_message(exc)}",
                                     f"see its log: {log}") from None
    if _local_image(client, tag) is None:
        raise EnvironmentProblem(f"building image {recipe.name} ended without the image {tag}",
                                 f"see its log: {log}")


def _api_message(exc: BaseException) -> str:
    text = str(getattr(exc, "explanation", None) or exc).strip()
    return text.splitlines()[0][:300] if text else repr(exc)


class ImageSet:
    """Resolves short names to hash tags and builds what is missing, parents first, siblings concurrently."""

    def __init__(self, client: DockerClient, directory: Path | None = None, root_mode: str = "auto") -> None:
        self.client = client
        self.recipes = recipes(directory)
        self.root_mode = root_mode
        self._root: str | None = None
        self._tags: dict[str, str] = {}

    def root(self, progress: Progress = _no_progress, build: bool = True) -> str | None:
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
            image = _local_image(self.client, root)
            return root, (image.id if image is not None else root)
        parent_tag = self.tag(recipe.parent, progress, build)
        return (parent_tag, parent_tag) if parent_tag else None

    def tag(self, name: str, progress: Progress = _no_progress, build: bool = True) -> str | None:
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
        return tag is not None and _local_image(self.client, tag) is not None

    def ensure(self, names: list[str], progress: Progress = _no_progress, force: bool = False,
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
        with _image_lock(name):
            if not force and _local_image(self.client, tag) is not None:
                return Built(name, tag, False)
            start = time.monotonic()
            arg = "ROOT" if recipe.parent is None else "BASE"
            build_image(_build_client(), recipe, members, tag, {arg: parent[0]}, progress)
            return Built(name, tag, True, time.monotonic() - start)


def ensure_images(client: DockerClient, images: list[str], progress: Progress = _no_progress
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
        if _local_image(client, other) is None:
            _pull(client, other, progress)
        refs[other] = other
    return refs


def ensure_image(client: DockerClient, image: str, progress: Progress = _no_progress) -> str:
    """What to run for a node's ``image:``: a lab image by short name (built if missing), else as given."""
    return ensure_images(client, [image], progress)[image]


def list_images(client: DockerClient) -> list[dict[str, Any]]:
    """Every lab image recipe with its current tag and whether that tag is built here (no building)."""
    images = ImageSet(client)
    rows = []
    for name, recipe in sorted(images.recipes.items()):
        tag = images.tag(name, build=False)
        image = _local_image(client, tag) if tag else None
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
            kept.append(f"{label}: {_api_message(exc)}")
    return removed, kept
