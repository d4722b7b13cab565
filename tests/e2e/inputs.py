"""Awkward and hostile files a user can attach, built byte by byte in the test (nothing shipped).

Each builder returns an :class:`Upload`: the bytes, the filename and the content type Discord
would report. Some are broken (must be refused with a clear message), some are merely unusual
(must be accepted and painted correctly).
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from dataclasses import dataclass

from PIL import Image, ImageDraw

from tests.helpers.images import content_image


@dataclass(frozen=True)
class Upload:
    data: bytes
    filename: str
    content_type: str | None


def _save(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


# ---------------------------------------------------------------------------- broken or hostile
def text_named_png() -> Upload:
    return Upload(b"this is a shopping list, not a picture\n" * 20, "holiday.png", "image/png")


def zero_bytes() -> Upload:
    return Upload(b"", "empty.png", "image/png")


def truncated_jpeg() -> Upload:
    data = _save(content_image(64, 48), "JPEG", quality=90)
    return Upload(data[: len(data) // 2], "cut.jpg", "image/jpeg")


@functools.lru_cache(maxsize=1)
def decompression_bomb_png() -> Upload:
    """A *valid* 40000x40000 1-bit PNG (1.6 Gpx once decoded) of ~200 KB: rows of zeros,
    deflated. A decoder that trusts the header allocates gigabytes."""
    width = height = 40_000
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + width // 8)  # filter byte + packed bits
    block = row * 1000
    body = b"".join(compressor.compress(block) for _ in range(height // 1000)) + compressor.flush()
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", body)
        + _png_chunk(b"IEND", b"")
    )
    return Upload(data, "bomb.png", "image/png")


def bomb_header_only_png() -> Upload:
    """A few-KB PNG whose header claims 40000x40000 (8-bit RGB, 4.8 GB) but whose pixel data stops
    after a few rows: it must be refused from the header, before anything is allocated."""
    width = height = 40_000
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = (b"\x00" + b"\x00" * (3 * width)) * 4
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows, 9))
        + _png_chunk(b"IEND", b"")
    )
    return Upload(data, "bomb-header.png", "image/png")


def one_pixel() -> Upload:
    return Upload(_save(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"), "dot.png", "image/png")


def banner_2000x20() -> Upload:
    return Upload(_save(Image.new("RGB", (2000, 20), (10, 120, 200)), "PNG"), "banner.png", "image/png")


def svg() -> Upload:
    data = (
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
        b'<circle cx="32" cy="32" r="20" fill="red"/></svg>'
    )
    return Upload(data, "drawing.svg", "image/svg+xml")


# ---------------------------------------------------------------------------- unusual but usable
def animated_gif() -> Upload:
    frames = [content_image(48, 48).convert("P"), Image.new("RGB", (48, 48), (0, 200, 0)).convert("P")]
    data = _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return Upload(data, "anim.gif", "image/gif")


def cmyk_jpeg() -> Upload:
    return Upload(_save(content_image(48, 40).convert("CMYK"), "JPEG", quality=90), "print.jpg", "image/jpeg")


def png_16_bit() -> Upload:
    grey = content_image(48, 40).convert("L")
    deep = Image.frombytes("I;16", grey.size, bytes(b for v in grey.tobytes() for b in (0, v)))
    return Upload(_save(deep, "PNG"), "deep.png", "image/png")


def alpha_png() -> Upload:
    image = content_image(48, 40).convert("RGBA")
    image.putalpha(Image.linear_gradient("L").resize(image.size))
    return Upload(_save(image, "PNG"), "alpha.png", "image/png")


def greyscale_jpeg() -> Upload:
    return Upload(_save(content_image(48, 40).convert("L"), "JPEG", quality=90), "grey.jpg", "image/jpeg")


def exif_rotated_jpeg() -> Upload:
    """Stored landscape (60x36: red left half, blue right half) with EXIF orientation 6, which
    viewers rotate 90 degrees clockwise: upright it is portrait, red on top, blue below."""
    image = Image.new("RGB", (60, 36), (0, 0, 230))
    ImageDraw.Draw(image).rectangle([0, 0, 29, 35], fill=(230, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    return Upload(_save(image, "JPEG", quality=95, exif=exif), "phone.jpg", "image/jpeg")


def path_characters_name(data: bytes) -> Upload:
    """A good picture whose filename tries to walk out of any directory it is joined to."""
    return Upload(data, "../../../etc/passwd/..\\evil:name?.png", "image/png")
