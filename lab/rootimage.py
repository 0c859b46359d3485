"""The root image every lab image is built on: ``debian:bookworm-slim`` where a registry answers,
else made here: ``debootstrap --variant=minbase`` from the Debian mirror this machine's apt uses,
then ``docker import`` as ``lab-rootfs:<hash of the recipe>`` (lab.images builds the rest on it).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
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
from lab.errors import EnvironmentProblem

if TYPE_CHECKING:
    from docker import DockerClient


REGISTRY_ROOT = "debian:bookworm-slim"
SUITE = "bookworm"
ROOTFS_REPO = "lab-rootfs"
ROOTFS_RECIPE_VERSION = "2"  # bump when the debootstrap recipe below changes
PULL_TIMEOUT = 60


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


def local_image(client: DockerClient, ref: str) -> Any | None:
    import docker.errors

    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None


def find_root(client: DockerClient) -> str | None:
    """The root already on this machine, without building or pulling anything; None if there is none."""
    explicit = os.environ.get("LAB_ROOT_IMAGE")
    if explicit:
        return explicit if local_image(client, explicit) is not None else None
    for ref in (REGISTRY_ROOT, rootfs_tag()):
        if local_image(client, ref) is not None:
            return ref
    return None


def ensure_root(client: DockerClient, progress: Progress = no_progress, mode: str = "auto") -> str:
    """The image the base builds FROM: ``$LAB_ROOT_IMAGE``, debian:bookworm-slim, or a debootstrapped one.

    ``mode`` is ``auto`` (local, then a pull, then debootstrap), ``registry`` (pull only) or
    ``debootstrap`` (never touch a registry).
    """
    explicit = os.environ.get("LAB_ROOT_IMAGE")
    if explicit:
        if local_image(client, explicit) is None:
            pull(client, explicit, progress)
        return explicit
    if mode != "debootstrap" and local_image(client, REGISTRY_ROOT) is not None:
        return REGISTRY_ROOT
    tag = rootfs_tag()
    if mode != "registry" and local_image(client, tag) is not None:
        return tag
    if mode != "debootstrap":
        try:
            pull(client, REGISTRY_ROOT, progress)
            return REGISTRY_ROOT
        except EnvironmentProblem:
            if mode == "registry":
                raise
    with image_lock("rootfs"):
        if local_image(client, tag) is None:
            make_rootfs_image(client, tag, progress)
    return tag


def pull(client: DockerClient, ref: str, progress: Progress) -> None:
    import docker.errors

    progress(f"pulling {ref}", 0, 1)
    repo, _, tag = ref.rpartition(":") if ":" in ref.split("/")[-1] else (ref, "", "latest")
    old = client.api.timeout
    client.api.timeout = PULL_TIMEOUT
    try:
        client.api.pull(repo, tag=tag)
    except (docker.errors.APIError, OSError) as exc:
        raise EnvironmentProblem(f"cannot pull {ref}: {api_message(exc)}",
                                 "no registry answers; `lab images build` makes lab images offline") from None
    finally:
        client.api.timeout = old
    progress(f"pulling {ref}", 1, 1)


def make_rootfs_image(client: DockerClient, tag: str, progress: Progress = no_progress) -> None:
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
