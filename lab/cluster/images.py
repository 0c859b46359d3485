"""Lab images onto a cluster's machines: built here, then pulled from the cluster's registry or sent.

With a registry in the cluster file the machines pull ``ADDRESS/lab-NAME:HASH`` at the same time,
after what the registry lacks was pushed once (from here, or through ``push_from``'s engine).
Without one, every machine gets the images through its engine: ``docker save`` of several tags in
one archive carries the layers they share once, and the machines load it at the same time.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lab.cluster.engines import Engine
from lab.cluster.model import Registry
from lab.errors import EnvironmentProblem


def distribute_images(engines: dict[str, Engine], short_names: list[str], progress: Any,
                      registry: Registry | None = None) -> dict[str, str]:
    """Each machine holds the lab images it lacked; return short name → the reference the machines use."""
    from lab.dockerclient import docker_client
    from lab.images import ensure_images

    progress("images", 0, 1)
    tags = ensure_images(docker_client(), short_names)
    refs = {short: registry.reference(tag) for short, tag in tags.items()} if registry else dict(tags)
    wanted = sorted(set(refs.values()))
    missing = {m: [t for t in wanted if not has_image(e, t)] for m, e in engines.items()}
    missing = {m: refs_ for m, refs_ in missing.items() if refs_}
    if not missing:
        return refs
    union = sorted({t for refs_ in missing.values() for t in refs_})
    if registry is None:
        step = f"copying {len(union)} images to {len(missing)} machines"
        progress(step, 0, len(missing))
        _send_images_to([engines[m] for m in sorted(missing)], union, lambda done: progress(step, done, len(missing)))
        return refs
    push_missing(registry, engines, sorted({tags[short] for short, ref in refs.items() if ref in union}), progress)
    step = f"pulling {len(union)} images from {registry.address} on {len(missing)} machines"
    progress(step, 0, len(missing))

    def pull(machine: str) -> None:
        for ref in missing[machine]:
            pull_image(engines[machine], ref)

    with ThreadPoolExecutor(max_workers=len(missing)) as pool:
        for count, _ in enumerate(pool.map(pull, sorted(missing)), start=1):
            progress(step, count, len(missing))
    return refs


def push_missing(registry: Registry, engines: dict[str, Engine], tags: list[str], progress: Any) -> None:
    """Push the local ``tags`` the registry does not have, through the engine that reaches it.

    That is this machine's engine, or ``push_from``'s: the images are then sent to that machine
    first (through its engine API), tagged there and pushed from there.
    """
    import docker.errors

    from lab.dockerclient import docker_client

    if registry.push_from is None:
        pusher, where = docker_client(), "this machine's engine"
    else:
        engine = engines.get(registry.push_from)
        if engine is None:
            raise EnvironmentProblem(f"registry {registry.address}: machine {registry.push_from} (push_from) does "
                                     "not answer", "start its engine, or push from elsewhere: lab cluster doctor")
        pusher, where = engine.client, f"machine {registry.push_from}'s engine"
    absent = [t for t in tags if not _in_registry(pusher, registry.reference(t), registry, where)]
    if not absent:
        return
    step = f"pushing {len(absent)} images to {registry.address}"
    progress(step, 0, len(absent))
    if registry.push_from is not None:
        lacking = [t for t in absent if not _holds(pusher, t)]
        if lacking:
            _send_images_to([engines[registry.push_from]], lacking, lambda done: None)
    for count, tag in enumerate(absent, start=1):
        ref = registry.reference(tag)
        repository, _, version = ref.rpartition(":")
        try:
            pusher.images.get(tag).tag(repository, version)
            for line in pusher.images.push(repository, version, stream=True, decode=True):
                if line.get("error"):
                    raise EnvironmentProblem(f"registry {registry.address}: {where} could not push {ref}: "
                                             f"{line['error']}", _trust_fix(registry))
        except docker.errors.APIError as exc:
            raise EnvironmentProblem(f"registry {registry.address}: {where} could not push {ref}: "
                                     f"{exc.explanation or exc}", _trust_fix(registry)) from None
        progress(step, count, len(absent))


class RegistryUnreachable(Exception):
    """An engine asked the registry for a manifest and got no answer (why: the exception's text)."""


def registry_holds(client: Any, ref: str) -> bool:
    """Whether the registry has ``ref``, asked through ``client``'s engine (which is what must reach it)."""
    import docker.errors

    try:
        client.api.inspect_distribution(ref)
        return True
    except docker.errors.APIError as exc:
        text = str(exc.explanation or exc)
        if exc.status_code in (401, 403, 404) or "manifest unknown" in text or "not found" in text:
            return False
        raise RegistryUnreachable(text[:200]) from None


def _in_registry(client: Any, ref: str, registry: Registry, where: str) -> bool:
    try:
        return registry_holds(client, ref)
    except RegistryUnreachable as exc:
        raise EnvironmentProblem(f"registry {registry.address}: {where} cannot reach it ({exc})",
                                 _trust_fix(registry)) from None


def _trust_fix(registry: Registry) -> str:
    return (f"check that the engine reaches {registry.address} and trusts it (TLS, or insecure-registries "
            "for plain HTTP), or set registry.push_from to a machine whose engine does")


def pull_image(engine: Engine, ref: str) -> None:
    """``docker pull REF`` on one machine, through its engine."""
    import docker.errors

    repository, _, version = ref.rpartition(":")
    try:
        engine.client.images.pull(repository, tag=version)
    except docker.errors.APIError as exc:
        raise EnvironmentProblem(f"machine {engine.machine}: could not pull {ref}: {exc.explanation or exc}",
                                 f"lab cluster doctor: is the registry reachable and trusted from {engine.machine}?"
                                 ) from None


def ensure_image(engine: Engine, ref: str, registry: Registry | None) -> None:
    """One image on one machine (a later ``down`` needs the agent): pulled, or sent from here."""
    if has_image(engine, ref):
        return
    if registry is not None and ref.startswith(registry.address + "/"):
        pull_image(engine, ref)
    else:
        send_images(engine, [ref])


def send_images(engine: Engine, tags: list[str]) -> None:
    _send_images_to([engine], tags, lambda done: None)


def _send_images_to(targets: list[Engine], tags: list[str], done: Any) -> None:
    """``docker save`` here once, ``docker load`` on each target machine at once."""
    from lab.dockerclient import docker_client

    with tempfile.TemporaryDirectory(prefix="lab-images-") as tmp:
        archive = Path(tmp) / "images.tar"
        with open(archive, "wb") as f:
            for chunk in _save_images(docker_client(), tags):
                f.write(chunk)

        def load(engine: Engine) -> None:
            with open(archive, "rb") as f:
                for _ in engine.client.api.load_image(f):
                    pass

        with ThreadPoolExecutor(max_workers=len(targets)) as pool:
            for count, _ in enumerate(pool.map(load, targets), start=1):
                done(count)


def _save_images(client: Any, tags: list[str]) -> Any:
    """``docker save TAG...``: one archive for several images, so the layers they share travel once.

    docker-py's ``get_image`` takes one name; the engine's ``/images/get`` takes many.
    """
    response = client.api._get(client.api._url("/images/get"), params={"names": tags}, stream=True)
    client.api._raise_for_status(response)
    return response.iter_content(chunk_size=1 << 21)


def has_image(engine: Engine, tag: str) -> bool:
    return _holds(engine.client, tag)


def _holds(client: Any, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def local_tag(short_name: str) -> str:
    from lab.dockerclient import docker_client
    from lab.images import ImageSet

    tag = ImageSet(docker_client()).tag(short_name, build=False)
    if tag is None:
        raise EnvironmentProblem(f"the {short_name} image is not built here", f"lab images build {short_name}")
    return tag
