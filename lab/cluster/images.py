"""Lab images onto a cluster's machines through their engines: built here, saved once, loaded on each.

Without a registry every machine needs the images a lab's nodes run; ``docker save`` of several
tags in one archive carries the layers they share once, and the machines load it at the same time.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lab.cluster.engines import Engine
from lab.errors import EnvironmentProblem


def copy_images(engines: dict[str, Engine], short_names: list[str], progress: Any) -> dict[str, str]:
    """The lab images' tags; each machine that lacks one gets it through its engine (one save, many loads)."""
    from lab.images import ensure_images
    from lab.nodes.container import docker_client

    progress("images", 0, 1)
    local = docker_client()
    tags = ensure_images(local, short_names)
    wanted = sorted(set(tags.values()))
    missing = {m: [t for t in wanted if not has_image(e, t)] for m, e in engines.items()}
    missing = {m: tags_ for m, tags_ in missing.items() if tags_}
    if not missing:
        return tags
    union = sorted({t for tags_ in missing.values() for t in tags_})
    step = f"copying {len(union)} images to {len(missing)} machines"
    progress(step, 0, len(missing))
    _send_images_to([engines[m] for m in sorted(missing)], union, lambda done: progress(step, done, len(missing)))
    return tags


def send_images(engine: Engine, tags: list[str]) -> None:
    _send_images_to([engine], tags, lambda done: None)


def _send_images_to(targets: list[Engine], tags: list[str], done: Any) -> None:
    """``docker save`` here once, ``docker load`` on each target machine at once."""
    from lab.nodes.container import docker_client

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
    import docker.errors

    try:
        engine.client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def local_tag(short_name: str) -> str:
    from lab.images import ImageSet
    from lab.nodes.container import docker_client

    tag = ImageSet(docker_client()).tag(short_name, build=False)
    if tag is None:
        raise EnvironmentProblem(f"the {short_name} image is not built here", f"lab images build {short_name}")
    return tag
