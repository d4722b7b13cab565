"""Image files that carry pixels and nothing else: no EXIF (GPS, camera, time), XMP, IPTC or comments.

A program that keeps people's pictures (the bot stores each job's photo for re-runs) must not keep
where and when they were taken. :func:`without_metadata` gives the smallest file showing exactly
the decoded picture and nothing more, without any lossy re-compression:

- a JPEG whose decoded pixels are the picture (upright already, not shrunk) keeps its compressed
  data as it is, and loses every metadata segment (:func:`strip_jpeg_metadata`);
- anything else, and a JPEG that only its EXIF orientation turned upright (dropping the EXIF
  block would turn it back), is the decoded picture as lossless WebP, written with no metadata.

Kept from a JPEG: what decoding needs (tables, frame, scans), the JFIF header without its
thumbnail, the Adobe marker (it says how CMYK is stored) and the ICC colour profile (the decoder
uses it for CMYK; it describes the colours, not the person or the place). The stripped file is
decoded once more and compared with the picture pixel for pixel, so a JPEG this module misreads
is stored as WebP rather than wrong.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

from PIL import Image

from .imaging import decode_image

#: JPEG markers that stand alone (no length field): TEM, RST0-7, SOI, EOI.
_STANDALONE = {0x01, *range(0xD0, 0xD8), 0xD8, 0xD9}
_SOS, _EOI, _COM = 0xDA, 0xD9, 0xFE
_APP0, _APP2, _APP14, _APP15 = 0xE0, 0xE2, 0xEE, 0xEF
#: The JFIF header up to its thumbnail's size (identifier, version, units, densities).
_JFIF_FIXED = 12


@dataclass(frozen=True)
class PlainImage:
    """An encoded image without metadata, and the file extension it is stored under."""

    data: bytes
    extension: str


def without_metadata(original: bytes, picture: Image.Image) -> PlainImage:
    """The smallest metadata-free file that decodes to exactly ``picture``.

    ``original`` is the file ``picture`` was decoded from (with :func:`~nst_engine.imaging.decode_image`,
    which applied its orientation). Its JPEG data is kept when it shows ``picture`` as it is and
    is smaller than lossless WebP; otherwise the result is that WebP. Encoding the WebP takes a
    while for a large picture: call this in a thread.
    """
    webp = io.BytesIO()
    picture.save(webp, format="WEBP", lossless=True, quality=80, method=4)  # no exif=, xmp=, icc=
    stripped = strip_jpeg_metadata(original) if _jpeg_size(original) == picture.size else None
    if stripped is not None and len(stripped) <= webp.tell() and _shows(stripped, picture):
        return PlainImage(stripped, "jpeg")
    return PlainImage(webp.getvalue(), "webp")


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """A JPEG's size from its header (before any EXIF rotation), or None for any other file."""
    try:
        with Image.open(io.BytesIO(data), formats=("JPEG",)) as header:
            return header.size
    except Exception:  # not a JPEG (or one Pillow cannot read): the pixels are re-encoded
        return None


def _shows(data: bytes, picture: Image.Image) -> bool:
    """Whether ``data`` decodes (as the stored input will be) to exactly ``picture``'s pixels."""
    try:
        decoded = decode_image(data, max_pixels=picture.width * picture.height)
    except Exception:  # anything this module misread is not stored as it is
        return False
    expected = picture if picture.mode == "RGB" else picture.convert("RGB")
    return decoded.size == picture.size and decoded.tobytes() == expected.tobytes()


def strip_jpeg_metadata(data: bytes) -> bytes | None:
    """``data`` without its metadata segments and without anything after the image, or None when
    it is not a JPEG this function can walk (the caller then re-encodes the pixels).

    Dropped: every APPn segment but the JFIF header (its thumbnail removed), the ICC profile and
    the Adobe marker, so EXIF (with its GPS block and thumbnail), XMP, IPTC/Photoshop, MPF and
    maker data; COM (comments); and what follows the end of the image (a phone's second picture).
    The compressed picture is copied byte for byte.
    """
    if not data.startswith(b"\xff\xd8"):
        return None
    kept = bytearray(b"\xff\xd8")
    position = 2
    try:
        while True:
            if data[position] != 0xFF:
                return None
            while data[position] == 0xFF:  # fill bytes before a marker
                position += 1
            marker = data[position]
            position += 1
            if marker == _EOI:
                kept += b"\xff\xd9"
                return bytes(kept)
            if marker in _STANDALONE:
                kept += bytes((0xFF, marker))
                continue
            (length,) = struct.unpack_from(">H", data, position)
            if length < 2 or position + length > len(data):
                return None
            payload = data[position + 2 : position + length]
            end = position + length
            if marker == _SOS:
                end = _end_of_scan(data, end)
                kept += b"\xff" + bytes((marker,)) + data[position:end]
            else:
                segment = _kept_segment(marker, payload)
                if segment is not None:
                    kept += b"\xff" + bytes((marker,)) + struct.pack(">H", len(segment) + 2) + segment
            position = end
    except (IndexError, ValueError, struct.error):  # cut off before its end
        return None


def _kept_segment(marker: int, payload: bytes) -> bytes | None:
    """The payload of a segment to keep (changed for JFIF), or None to drop it."""
    if marker == _COM:
        return None
    if not _APP0 <= marker <= _APP15:
        return payload  # tables, frame headers, restart intervals: the picture itself
    if marker == _APP0 and payload.startswith(b"JFIF\x00") and len(payload) >= _JFIF_FIXED + 2:
        return payload[:_JFIF_FIXED] + b"\x00\x00"  # no thumbnail
    if marker == _APP2 and payload.startswith(b"ICC_PROFILE\x00"):
        return payload
    if marker == _APP14 and payload.startswith(b"Adobe"):
        return payload
    return None


def _end_of_scan(data: bytes, position: int) -> int:
    """Where the entropy-coded data from ``position`` ends: at the next marker that is neither a
    stuffed 0xFF (``FF 00``) nor a restart marker (``FF D0``-``FF D7``)."""
    while True:
        position = data.index(b"\xff", position)
        following = data[position + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:
            position += 2
        elif following == 0xFF:
            position += 1  # a fill byte: the marker follows
        else:
            return position
