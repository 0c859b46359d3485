"""What building Docker images needs wherever it happens (lab.rootimage, lab.images): the labels
and limits, the build log, one build of an image at a time, and the API's error in one line."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

LABEL_IMAGE = "lab.image"
TAG_LENGTH = 16
BUILD_TIMEOUT = 1800  # seconds the Docker client waits for build output before giving up
Progress = Callable[[str, int, int], None]


def no_progress(step: str, done: int, total: int) -> None:
    return None


def build_log_path(name: str) -> Path:
    from lab.state import ensure_root_dir

    d = ensure_root_dir() / "images"
    d.mkdir(exist_ok=True)
    return d / f"{name}.build.log"


@contextmanager
def image_lock(name: str) -> Iterator[None]:
    """One build of an image at a time on this machine; the second waiter then finds it built."""
    from lab.state import ensure_root_dir

    fd = os.open(ensure_root_dir() / f".image-{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def api_message(exc: BaseException) -> str:
    text = str(getattr(exc, "explanation", None) or exc).strip()
    return text.splitlines()[0][:300] if text else repr(exc)
