"""nst_engine.metadata: what is kept of a picture carries pixels only. A JPEG loses its EXIF (GPS),
XMP, IPTC, comments, thumbnails and trailing pictures and keeps its compressed data byte for byte;
a picture that only EXIF turned upright, and any other format, becomes lossless WebP of the upright
pixels. Images are made here, small and in memory."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image

from nst_engine.imaging import decode_image
from nst_engine.metadata import strip_jpeg_metadata, without_metadata
from tests.helpers.images import (
    LOCATION_MARKERS,
    content_image,
    gps_exif,
    jpeg_with_location,
    phone_photo_jpeg,
)

SECRETS = (b"PhoneCo", b"secret-xmp", b"at home", b"iptc-caption", b"Exif\x00\x00")


def noisy_picture(width: int = 96, height: int = 72) -> Image.Image:
    """Photo-like (noise): its JPEG is much smaller than lossless WebP, as a real photo's is."""
    with Image.open(io.BytesIO(phone_photo_jpeg(width, height))) as photo:
        return photo.convert("RGB")


def jpeg_with_everything(picture: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    picture.save(
        buffer,
        "JPEG",
        quality=90,
        exif=gps_exif(),
        xmp=b"<x:xmpmeta xmlns:x='adobe:ns:meta/'>secret-xmp</x:xmpmeta>",
        comment=b"at home",
        **options,
    )
    return with_segment(buffer.getvalue(), 0xED, b"Photoshop 3.0\x00iptc-caption")


def with_segment(jpeg: bytes, marker: int, payload: bytes) -> bytes:
    """``jpeg`` with one more segment right after its start marker."""
    return jpeg[:2] + bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def scan_data(jpeg: bytes) -> bytes:
    """The compressed picture: from the first start-of-scan to the end of the image."""
    start = jpeg.index(b"\xff\xda")
    return jpeg[start : jpeg.index(b"\xff\xd9", start) + 2]


def assert_no_metadata(data: bytes) -> None:
    for secret in SECRETS:
        assert secret not in data, secret
    with Image.open(io.BytesIO(data)) as stored:
        assert not stored.getexif(), "no EXIF"
        assert not {"exif", "xmp", "comment", "photoshop"} & set(stored.info), stored.info


@pytest.mark.parametrize(
    "options",
    [{}, {"progressive": True}, {"restart_marker_blocks": 2}],
    ids=["baseline", "progressive", "restarts"],
)
def test_an_upright_jpeg_keeps_its_compressed_data_and_nothing_else(options: dict[str, object]) -> None:
    original = jpeg_with_everything(noisy_picture(), **options)
    assert all(secret in original for secret in SECRETS)
    picture = decode_image(original)
    kept = without_metadata(original, picture)
    assert kept.extension == "jpeg" and len(kept.data) < len(original)
    assert_no_metadata(kept.data)
    assert scan_data(kept.data) == scan_data(original), "not recompressed"
    assert decode_image(kept.data).tobytes() == picture.tobytes()


def test_an_icc_profile_and_the_jfif_header_stay_and_a_jfif_thumbnail_goes() -> None:
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buffer = io.BytesIO()
    noisy_picture().save(buffer, "JPEG", quality=90, icc_profile=icc)
    plain = buffer.getvalue()
    assert plain[2:4] == b"\xff\xe0"  # Pillow writes a JFIF header first; give it a 1x1 thumbnail
    (length,) = struct.unpack(">H", plain[4:6])
    jfif = plain[6 : 4 + length - 2] + b"\x01\x01" + b"\xfe\xfd\xfc"
    original = plain[:2] + b"\xff\xe0" + struct.pack(">H", len(jfif) + 2) + jfif + plain[4 + length :]
    stripped = strip_jpeg_metadata(original)
    assert stripped is not None and b"\xfe\xfd\xfc" not in stripped
    with Image.open(io.BytesIO(stripped)) as image:
        assert image.info["icc_profile"] == icc and image.info["jfif_version"] == (1, 1)


def test_a_second_picture_after_the_end_is_dropped() -> None:
    """A phone's multi-picture file (MPO) carries more images after the first one's end."""
    first = jpeg_with_everything(noisy_picture())
    stripped = strip_jpeg_metadata(first + jpeg_with_everything(content_image(64, 48)))
    assert stripped is not None and stripped.endswith(scan_data(first)) and stripped.count(b"\xff\xd8") == 1


def test_a_jpeg_that_exif_turned_upright_is_stored_upright_as_webp() -> None:
    """Dropping the EXIF block would drop its orientation: the upright pixels are kept instead."""
    buffer = io.BytesIO()
    noisy_picture(96, 72).save(buffer, "JPEG", quality=90, exif=gps_exif(orientation=6))
    picture = decode_image(buffer.getvalue())
    assert picture.size == (72, 96)
    kept = without_metadata(buffer.getvalue(), picture)
    assert kept.extension == "webp"
    assert_no_metadata(kept.data)
    with Image.open(io.BytesIO(kept.data)) as stored:
        assert stored.convert("RGB").tobytes() == picture.tobytes(), "lossless and upright"


def test_a_shrunk_picture_is_stored_as_webp_at_its_shrunk_size() -> None:
    original = jpeg_with_everything(noisy_picture(192, 144))
    picture = decode_image(original, max_side=96)
    kept = without_metadata(original, picture)
    assert kept.extension == "webp"
    assert_no_metadata(kept.data)
    with Image.open(io.BytesIO(kept.data)) as stored:
        assert stored.size == (96, 72)


def test_a_png_with_text_and_exif_becomes_lossless_webp_without_them() -> None:
    from PIL import PngImagePlugin

    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "at home")
    buffer = io.BytesIO()
    content_image(64, 48).save(buffer, "PNG", pnginfo=text, exif=gps_exif())
    picture = decode_image(buffer.getvalue())
    kept = without_metadata(buffer.getvalue(), picture)
    assert kept.extension == "webp"
    assert_no_metadata(kept.data)
    with Image.open(io.BytesIO(kept.data)) as stored:
        assert stored.convert("RGB").tobytes() == picture.tobytes()


@pytest.mark.parametrize(
    "data",
    [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe1\x00", b"\xff\xd8\x00\x00"],
    ids=["empty", "png", "cut-in-a-segment", "no-marker"],
)
def test_what_is_not_a_whole_jpeg_is_not_stripped(data: bytes) -> None:
    assert strip_jpeg_metadata(data) is None


def test_a_jpeg_cut_off_in_its_scan_is_not_stripped() -> None:
    original = jpeg_with_everything(noisy_picture())
    assert strip_jpeg_metadata(original[: original.index(b"\xff\xda") + 40]) is None


def test_a_decoded_picture_carries_none_of_its_files_metadata() -> None:
    """Pillow writes a picture's comment into any JPEG it is saved as (a preview, a result)."""
    picture = decode_image(jpeg_with_location())
    assert picture.info == {}
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG")
    assert not [marker for marker in LOCATION_MARKERS if marker in buffer.getvalue()]
