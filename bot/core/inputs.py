"""A job's inputs: an upload decoded and prepared for keeping, and a stored input read back.

Each input is stored once, no larger than the largest output size, without metadata (no
EXIF/GPS, XMP or comments), as the JPEG the user sent or as lossless WebP, whichever is smaller;
a re-run's job refers to the same files
(:class:`~bot.core.store.JobStore` writes and deletes them). Everything here blocks for a while on
a photo: call it in a thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from nst_engine.imaging import decode_image
from nst_engine.metadata import without_metadata

if TYPE_CHECKING:
    from nst_engine.clips import Clip


@dataclass(eq=False)
class InputImage:
    """One decoded input of a job, and what is kept of it on disk for re-runs.

    ``image`` is at most the largest output size (no full-size photo waits in the queue).
    ``data`` (bytes still to store, the original file or lossless WebP) or ``path`` (already
    stored: a re-run shares its job's files). Storing it replaces ``data`` by ``path``.
    """

    image: Image.Image
    data: bytes | None = None
    extension: str = "webp"
    path: str | None = None
    #: An animation's frames (``image`` is then its first); see :mod:`bot.core.clip_inputs`.
    clip: Clip | None = None


def prepare_input(data: bytes, *, max_side: int, max_pixels: int, max_bytes: int) -> InputImage:
    """Decode an upload (shrunk to ``max_side`` while decoding) and choose what to keep of it:
    the sent JPEG without its metadata when it shows the decoded picture as it is and is smaller
    than that picture as lossless WebP, else that WebP; never EXIF (GPS), XMP or comments
    (:func:`nst_engine.metadata.without_metadata`). Blocks for a while on a photo: call it in a
    thread. Raises :class:`~nst_engine.errors.InvalidImage`.
    """
    image = decode_image(data, max_pixels=max_pixels, max_bytes=max_bytes, max_side=max_side)
    kept = without_metadata(data, image)
    return InputImage(image, data=kept.data, extension=kept.extension)


def load_input(path: str | None, *, max_side: int) -> Image.Image | None:
    """A stored input decoded (the same safe decoder as uploads), or None when it is gone."""
    if not path or not Path(path).is_file():
        return None
    try:
        return decode_image(path, max_side=max_side, max_pixels=max_side * max_side)
    except Exception:  # an unreadable stored file is as good as expired
        return None
