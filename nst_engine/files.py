"""Files written whole or not at all: the engine's outputs and caches, and the bot's stored inputs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory, then rename it.

    A crash, a parallel reader or a full disk (ENOSPC) never leaves half a file at ``path``: the
    data is flushed to the disk before the rename, and the temporary file (mode 0600, named
    ``.NAME.*.part``) is removed on any error, which then propagates.
    """
    path = Path(path)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


#: The ending of a temporary file :func:`write_atomically` left behind only if the process died.
TEMPORARY_SUFFIX = ".part"
