"""Turning uploads into images and results into files, through the engine's safe codec.

``nst_engine.imaging`` (decode_image / encode_image) is the one place that knows how to open
untrusted bytes safely; the bot always goes through it. Until that module lands in this checkout,
a conservative Pillow fallback with the same contract keeps the bot usable (same limits, same
``InvalidImage`` errors), and disappears from the import path as soon as the real one exists.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps

from nst_engine.errors import InvalidImage

try:  # the engine's codec, preferred whenever it is present
    from nst_engine import imaging as _imaging
except ImportError:  # pragma: no cover - depends on the checkout
    _imaging = None


@dataclass(frozen=True)
class EncodedFile:
    data: bytes
    extension: str


def decode_upload(data: bytes, *, max_pixels: int, max_bytes: int | None = None) -> Image.Image:
    """An RGB image from an uploaded file, or :class:`InvalidImage` with a user-readable reason."""
    if _imaging is not None:
        return _imaging.decode_image(data, max_pixels=max_pixels, max_bytes=max_bytes)
    return _fallback_decode(data, max_pixels=max_pixels, max_bytes=max_bytes)


def encode_result(image: Image.Image, *, max_bytes: int) -> EncodedFile:
    """The result as a file no larger than ``max_bytes`` (PNG when it fits)."""
    if _imaging is not None:
        encoded = _imaging.encode_image(image, max_bytes=max_bytes)
        return EncodedFile(encoded.data, encoded.extension.lstrip("."))
    return _fallback_encode(image, max_bytes=max_bytes)


def _fallback_decode(data: bytes, *, max_pixels: int, max_bytes: int | None) -> Image.Image:
    if not data:
        raise InvalidImage("the file is empty")
    if max_bytes is not None and len(data) > max_bytes:
        raise InvalidImage(f"the file is larger than {max_bytes // (1024 * 1024)} MiB")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
            if width * height > max_pixels:
                raise InvalidImage(f"the image is too large ({width}x{height} pixels)")
            if min(width, height) < 16:
                raise InvalidImage(f"the image is too small ({width}x{height}); at least 16 px a side")
            if max(width, height) > 8 * min(width, height):
                raise InvalidImage("the image is too long and thin (aspect ratio over 8:1)")
            probe.seek(0)
            image = ImageOps.exif_transpose(probe)
            image.load()
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                rgba = image.convert("RGBA")
                background = Image.new("RGB", rgba.size, (255, 255, 255))
                background.paste(rgba, mask=rgba.getchannel("A"))
                return background
            if image.mode == "I;16" or image.mode.startswith("I"):
                image = image.point(lambda v: v / 256).convert("L")
            return image.convert("RGB")
    except InvalidImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImage("the image is too large") from None
    except Exception:
        raise InvalidImage("this file is not an image I can read (PNG, JPEG, WebP or GIF)") from None


def _fallback_encode(image: Image.Image, *, max_bytes: int) -> EncodedFile:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    if buffer.tell() <= max_bytes:
        return EncodedFile(buffer.getvalue(), "png")
    current = image
    for _ in range(8):
        for quality in (92, 85, 75):
            buffer = io.BytesIO()
            current.save(buffer, format="JPEG", quality=quality)
            if buffer.tell() <= max_bytes:
                return EncodedFile(buffer.getvalue(), "jpg")
        current = current.resize((max(1, current.width * 3 // 4), max(1, current.height * 3 // 4)))
    raise InvalidImage("the result could not be made small enough to upload")
