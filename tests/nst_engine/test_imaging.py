"""nst_engine.imaging: every bad input is refused with its own message, every good one decodes to
upright 8-bit RGB with the right colours, and encoding honours a byte cap. All images are made
here, small and in memory."""

from __future__ import annotations

import io
import random
import struct
import zlib

import pytest
from PIL import Image

from nst_engine.errors import InvalidImage
from nst_engine.imaging import (
    DEFAULT_MAX_PIXELS,
    EncodedImage,
    decode_image,
    encode_image,
    make_preview,
)


def _save(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def _close(actual, expected, tolerance: int = 6) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def _bomb_png(width: int = 40_000, height: int = 40_000, rows: int | None = 64) -> bytes:
    """A PNG whose header says width x height (8-bit grey), built without allocating the pixels.

    With ``rows`` set, IDAT only holds that many rows (a few KB): a decoder that trusted the
    header and started decoding would allocate the whole canvas before noticing; the cap must
    refuse it from IHDR alone. ``rows=None`` writes every row (a complete, valid file).
    """
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    compressor = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte + pixels
    parts = [compressor.compress(row) for _ in range(height if rows is None else rows)]
    parts.append(compressor.flush())
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def _noise(width: int, height: int, seed: int = 1) -> Image.Image:
    generator = random.Random(seed)
    return Image.frombytes("RGB", (width, height), generator.randbytes(width * height * 3))


# --- bad inputs -------------------------------------------------------------------------------


def test_text_file_named_png_is_not_an_image(tmp_path):
    path = tmp_path / "photo.png"
    path.write_text("hello, this is not a picture\n" * 5)
    with pytest.raises(InvalidImage, match="not an image we can read"):
        decode_image(path)


def test_zero_bytes_is_empty(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(InvalidImage, match="empty"):
        decode_image(path)
    with pytest.raises(InvalidImage, match="empty"):
        decode_image(b"")


def test_truncated_jpeg_is_damaged():
    data = _save(_noise(64, 64), "JPEG", quality=90)
    with pytest.raises(InvalidImage, match="damaged or incomplete"):
        decode_image(data[: len(data) // 2])


def test_decompression_bomb_is_refused_from_the_header():
    bomb = _bomb_png()
    assert len(bomb) < 10_000
    with pytest.raises(InvalidImage, match="too many pixels"):
        decode_image(bomb)


def test_pixel_cap_below_pillows_own_guard_names_the_size():
    data = _bomb_png(3000, 3000, rows=None)  # 9 MP, complete: under Pillow's guard, over 4 MP
    with pytest.raises(InvalidImage, match=r"3000×3000 pixels \(9 megapixels\); the limit is 4 megapixels"):
        decode_image(data, max_pixels=4_000_000)
    assert DEFAULT_MAX_PIXELS >= 9_000_000


def test_one_pixel_image_is_too_small():
    with pytest.raises(
        InvalidImage,
        match="The image is 1×1 pixels, too small; it needs to be at least 16 pixels on each side",
    ):
        decode_image(_save(Image.new("RGB", (1, 1), "red"), "PNG"))


def test_banner_is_too_long_and_thin():
    with pytest.raises(InvalidImage, match="2000×20 pixels, too long and thin"):
        decode_image(_save(Image.new("RGB", (2000, 20), "blue"), "PNG"))


@pytest.mark.parametrize(
    "svg",
    [
        b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
        b'<rect width="64" height="64"/></svg>',
        b'\xef\xbb\xbf<?xml version="1.0"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "x">\n<svg/>',
    ],
)
def test_svg_is_named_and_alternatives_suggested(tmp_path, svg):
    path = tmp_path / "drawing.png"
    path.write_bytes(svg)
    with pytest.raises(InvalidImage, match="SVG") as caught:
        decode_image(path)
    assert "PNG, JPEG, WebP or GIF" in str(caught.value)


def test_max_bytes_refuses_before_opening(tmp_path):
    data = _save(_noise(64, 64), "PNG")
    with pytest.raises(InvalidImage, match="the limit is 1 KiB"):
        decode_image(data, max_bytes=1024)
    path = tmp_path / "big.png"
    path.write_bytes(data)
    with pytest.raises(InvalidImage, match="the limit is 1 KiB"):
        decode_image(path, max_bytes=1024)
    assert decode_image(path, max_bytes=len(data)).size == (64, 64)


def test_missing_file_is_invalid_image(tmp_path):
    with pytest.raises(InvalidImage, match="does not exist"):
        decode_image(tmp_path / "nope.png")


def test_unlisted_format_is_refused():
    data = _save(Image.new("RGB", (32, 32), "red"), "PPM")
    with pytest.raises(InvalidImage, match="not an image we can read"):
        decode_image(data)


# --- good inputs --------------------------------------------------------------------------------


def test_bytes_and_path_sources_give_the_same_rgb_image(tmp_path):
    original = Image.new("RGB", (40, 30), (10, 200, 30))
    data = _save(original, "PNG")
    path = tmp_path / "no_extension"
    path.write_bytes(data)
    from_bytes = decode_image(data)
    from_path = decode_image(str(path))
    for image in (from_bytes, from_path):
        assert image.mode == "RGB" and image.size == (40, 30)
        assert image.getpixel((5, 5)) == (10, 200, 30)
    assert from_bytes.tobytes() == from_path.tobytes()


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (32, 32), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    image = decode_image(data)
    assert image.mode == "RGB"
    assert _close(image.getpixel((16, 16)), (255, 0, 0))


def test_animated_webp_gives_first_frame():
    frames = [Image.new("RGB", (32, 32), colour) for colour in ((0, 255, 0), (255, 0, 255))]
    data = _save(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    assert _close(decode_image(data).getpixel((16, 16)), (0, 255, 0))


def test_cmyk_jpeg_has_correct_colours():
    cmyk = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # pure magenta + yellow = red
    image = decode_image(_save(cmyk, "JPEG", quality=95))
    assert image.mode == "RGB"
    assert _close(image.getpixel((16, 16)), (255, 0, 0), tolerance=12)


def test_sixteen_bit_png_mid_grey_becomes_128():
    grey = Image.new("I;16", (32, 32), 32896)  # 128 * 257
    image = decode_image(_save(grey, "PNG"))
    assert image.mode == "RGB"
    assert _close(image.getpixel((3, 3)), (128, 128, 128), tolerance=1)


def test_rgba_is_composited_on_white():
    rgba = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    rgba.paste((255, 0, 0, 255), (0, 0, 16, 32))
    rgba.paste((0, 0, 255, 128), (16, 0, 32, 32))
    image = decode_image(_save(rgba, "PNG"))
    assert image.getpixel((4, 4)) == (255, 0, 0)
    assert _close(image.getpixel((24, 4)), (127, 127, 255), tolerance=2)
    assert decode_image(_save(Image.new("RGBA", (32, 32), (0, 0, 0, 0)), "PNG")).getpixel((0, 0)) == (
        255,
        255,
        255,
    )


def test_la_is_composited_on_white():
    la = Image.new("LA", (32, 32), (0, 0))
    la.paste((50, 255), (0, 0, 16, 32))
    image = decode_image(_save(la, "PNG"))
    assert image.getpixel((4, 4)) == (50, 50, 50)
    assert image.getpixel((24, 4)) == (255, 255, 255)


def test_palette_with_transparency_is_composited_on_white():
    palette_image = Image.new("P", (32, 32), 0)
    palette_image.putpalette([0, 0, 0, 0, 128, 0] + [0] * (254 * 3))
    palette_image.paste(1, (0, 0, 16, 32))
    data = _save(palette_image, "PNG", transparency=0)
    image = decode_image(data)
    assert image.getpixel((4, 4)) == (0, 128, 0)
    assert image.getpixel((24, 4)) == (255, 255, 255)


def test_grayscale_and_one_bit():
    assert decode_image(_save(Image.new("L", (32, 32), 77), "PNG")).getpixel((1, 1)) == (77, 77, 77)
    bilevel = Image.new("1", (32, 32), 1)
    assert decode_image(_save(bilevel, "BMP")).getpixel((1, 1)) == (255, 255, 255)


def test_float_tiff_is_scaled():
    image = decode_image(_save(Image.new("F", (32, 32), 0.5), "TIFF"))
    assert _close(image.getpixel((0, 0)), (128, 128, 128), tolerance=1)


def test_exif_rotated_jpeg_comes_out_upright():
    # Stored landscape 64x32 with a red marker in the stored top-left corner. Orientation 6 means
    # "rotate 90° clockwise to view", so upright it is 32x64 with the marker at the top-right.
    stored = Image.new("RGB", (64, 32), (255, 255, 255))
    stored.paste((255, 0, 0), (0, 0, 12, 12))
    exif = Image.Exif()
    exif[0x0112] = 6
    image = decode_image(_save(stored, "JPEG", quality=95, exif=exif.tobytes()))
    assert image.size == (32, 64)
    assert _close(image.getpixel((image.width - 4, 4)), (255, 0, 0), tolerance=20)
    assert _close(image.getpixel((4, 4)), (255, 255, 255), tolerance=20)


def test_max_side_decodes_a_large_jpeg_small_and_upright(monkeypatch):
    # Stored landscape 1600x800 with a red marker in the stored top-left corner, EXIF orientation
    # 6: upright it is portrait, and shrunk to 200 px on its longest side it is 100x200.
    stored = Image.new("RGB", (1600, 800), (255, 255, 255))
    stored.paste((255, 0, 0), (0, 0, 200, 200))
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _save(stored, "JPEG", quality=95, exif=exif.tobytes())
    decoded_sizes = []
    real_load = Image.Image.load

    def recording_load(self):
        pixels = real_load(self)
        if self.format == "JPEG":
            decoded_sizes.append(self.size)
        return pixels

    monkeypatch.setattr(Image.Image, "load", recording_load)
    image = decode_image(data, max_side=200)
    assert image.size == (100, 200)
    assert _close(image.getpixel((image.width - 8, 8)), (255, 0, 0), tolerance=30)
    # the JPEG itself was decoded at 1/8 scale (200x100), never at 1600x800
    assert decoded_sizes and max(max(size) for size in decoded_sizes) == 200


def test_max_side_shrinks_a_png_and_leaves_a_small_image_alone():
    assert decode_image(_save(_noise(300, 150), "PNG"), max_side=100).size == (100, 50)
    assert decode_image(_save(_noise(60, 40), "PNG"), max_side=100).size == (60, 40)


def test_result_is_detached_and_loaded(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(_save(Image.new("RGB", (32, 32), (1, 2, 3)), "PNG"))
    image = decode_image(path)
    path.unlink()
    assert image.copy().getpixel((0, 0)) == (1, 2, 3)
    assert getattr(image, "fp", None) is None


# --- resizing ------------------------------------------------------------------------------------


def test_make_preview_only_shrinks():
    assert make_preview(Image.new("RGB", (200, 100)), 50).size == (50, 25)
    assert make_preview(Image.new("RGBA", (20, 10)), 50).size == (20, 10)


# --- encoding ------------------------------------------------------------------------------------


def test_encode_png_without_cap_is_lossless():
    original = _noise(48, 32)
    encoded = encode_image(original)
    assert isinstance(encoded, EncodedImage)
    assert (encoded.extension, encoded.width, encoded.height) == ("png", 48, 32)
    with Image.open(io.BytesIO(encoded.data)) as decoded:
        assert decoded.format == "PNG" and decoded.convert("RGB").tobytes() == original.tobytes()


def _smooth(width: int, height: int) -> Image.Image:
    """Gradients: compress well lossy, poorly as PNG with noise overlaid lightly."""
    image = Image.new("RGB", (width, height))
    pixels = [
        ((x * 255) // width, (y * 255) // height, ((x + y) * 3) % 256)
        for y in range(height)
        for x in range(width)
    ]
    image.putdata(pixels)
    return Image.blend(image, _noise(width, height, seed=3), 0.1)


def test_encode_falls_back_to_lossy_at_full_size():
    original = _smooth(96, 96)
    png_size = len(encode_image(original).data)
    cap = png_size // 2
    encoded = encode_image(original, max_bytes=cap)
    assert encoded.extension in ("jpg", "webp")
    assert len(encoded.data) <= cap
    decoded = Image.open(io.BytesIO(encoded.data))
    assert decoded.format == {"jpg": "JPEG", "webp": "WEBP"}[encoded.extension]
    assert decoded.size == (encoded.width, encoded.height) == (96, 96)


def test_encode_shrinks_when_lossy_is_not_enough():
    original = _noise(96, 96)
    cap = 3000  # far below noise at 96x96 even at quality 80
    encoded = encode_image(original, max_bytes=cap)
    assert len(encoded.data) <= cap
    assert encoded.width < 96 and encoded.width == encoded.height
    decoded = decode_image(encoded.data)
    assert decoded.size == (encoded.width, encoded.height)


def test_encode_impossible_cap_raises():
    with pytest.raises(ValueError):
        encode_image(_noise(64, 64), max_bytes=50)
    with pytest.raises(ValueError):
        encode_image(_noise(8, 8), max_bytes=0)
