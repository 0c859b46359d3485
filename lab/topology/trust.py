"""Refuse a topology file that any user of the machine could have written.

``lab up`` runs as root and builds what the file says, so a file in a
world-writable place is an invitation: another user could swap it between
your edit and your ``sudo lab up``. A directory that is world-writable *with*
the sticky bit (like /tmp) is fine: there only a file's owner may replace it.
``--force`` skips the check, for the rare case where this is really intended.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from lab.errors import InputError


def check_trusted_path(path: str | Path) -> None:
    """Raise InputError when the file, or a directory above it, is writable by every user.

    Both the path as written and the path with symlinks resolved are checked:
    a symlink in a safe directory pointing into an unsafe one is still unsafe.
    """
    given = Path(os.path.abspath(path))
    places = [given, *given.parents]
    try:
        real = Path(path).resolve()
        places += [real, *real.parents]
    except (OSError, RuntimeError):  # a symlink loop: loading will say so
        pass
    seen: set[Path] = set()
    for place in places:
        if place in seen:
            continue
        seen.add(place)
        try:
            mode = os.stat(place).st_mode
        except OSError:  # missing: loading the file reports it with a better message
            continue
        if not mode & stat.S_IWOTH or not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            continue  # a device or FIFO is refused by the loader, with its own message
        if stat.S_ISDIR(mode) and mode & stat.S_ISVTX:
            continue
        what = "directory" if stat.S_ISDIR(mode) else "file"
        raise InputError(
            f"{path}: refusing a topology from a world-writable place: the {what} {place} can be changed by any "
            "user (mode " + oct(stat.S_IMODE(mode)) + ")",
            f"chmod o-w {place}, or move the file somewhere only you can write; --force skips this check",
        )
