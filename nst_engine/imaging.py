"""Safe decoding of untrusted images and size-capped encoding of results (Pillow only).

Everything that reaches the engine from outside (a Discord attachment, a CLI path, a downloaded
preset) comes through :func:`decode_image`, so this is the one place that has to be careful:
it never trusts a filename or a content type, checks the pixel count from the header *before*
any pixels are decoded (decompression bombs), and turns every failure into
:class:`~nst_engine.errors.InvalidImage` with a message a Discord user can act on.

Results leave through :func:`encode_image`, which prefers lossless PNG and only falls back to
high-quality JPEG/WebP, then smaller dimensions, when a byte limit (Discord's upload limit)
requires it.
"""

from __future__ import annotations

import io
import math
import os
import struct
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InvalidImage
from .params import MIN_SIZE

#: Pixel cap used when callers do not pass one: 50 megapixels is larger than any phone photo,
#: and bounds the memory a single decode can take (about 150 MB as 8-bit RGB).
DEFAULT_MAX_PIXELS = 50_000_000

#: Formats Pillow may try. Limiting the list keeps rarely used (and rarely audited) decoders away
#: from untrusted bytes. (Camera "MPO" JPEGs open through the JPEG entry.)
ALLOWED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")

NOT_AN_IMAGE_MESSAGE = "This file is not an image we can read (PNG, JPEG, WebP, GIF, BMP, TIFF)."
SVG_MESSAGE = "SVG (vector) images aren't supported; please send a PNG, JPEG, WebP or GIF image instead."
EMPTY_MESSAGE = "The file is empty (0 bytes); please send the image again."
TRUNCATED_MESSAGE = (
    "This image is damaged or incomplete (the file may have been cut off); please send it again."
)

# Errors Pillow's decoders raise on malformed data. MemoryError is deliberately not listed:
# the pixel cap is what keeps allocations bounded.
_DECODER_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, TypeError)

ImageSource = bytes | bytearray | memoryview | str | os.PathLike[str]


def decode_image(
    source: ImageSource,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = MIN_SIZE,
    max_aspect_ratio: float = 8.0,
    max_bytes: int | None = None,
    max_side: int | None = None,
) -> Image.Image:
    """Decode untrusted bytes or a file into a fully loaded, upright, 8-bit RGB image.

    ``max_side``: the longest side the caller will ever use. A larger image is shrunk to it while
    it is decoded (a JPEG decodes straight at 1/2, 1/4 or 1/8 of its size, Pillow's ``draft``),
    so a 40 MP photo never exists in memory at full size when 768 px is all that is needed. The
    size checks still apply to the image as it was sent.

    Checks, in order: size in bytes (before reading anything large), empty input, SVG, that the
    data is an image of an allowed format, the pixel count / smallest side / aspect ratio from
    the header (before decoding pixels), then the decode itself (truncation). Animated files
    give their first frame. Transparent pixels are composited on white, because a painting
    has no alpha and black (what dropping alpha gives) would dominate the style transfer. The
    image carries none of the file's metadata (``info`` is empty).

    Raises :class:`InvalidImage` with a user-readable message for every unusable input.
    """
    data = _read_source(source, max_bytes=max_bytes)
    if not data:
        raise InvalidImage(EMPTY_MESSAGE)
    if _looks_like_svg(data):
        raise InvalidImage(SVG_MESSAGE)

    try:
        opened = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own guard fires while reading the header for absurd sizes; report it in the
        # same words as our cap (we do not know the size here without re-parsing).
        raise InvalidImage(
            f"The image has too many pixels; the limit is {_megapixels(max_pixels)} megapixels."
        ) from None
    except UnidentifiedImageError:
        raise InvalidImage(NOT_AN_IMAGE_MESSAGE) from None
    except _DECODER_ERRORS:
        raise InvalidImage(NOT_AN_IMAGE_MESSAGE) from None

    with opened:
        _check_dimensions(opened.size, max_pixels, min_side, max_aspect_ratio)
        try:
            opened.seek(0)  # first frame of an animation (already current, but be explicit)
            if max_side is not None and max(opened.size) > max_side:
                # At least the target size on each side: draft only ever scales by 1/2^n.
                opened.draft(None, _fitted(opened.size, max_side))
            opened.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise InvalidImage(
                f"The image has too many pixels; the limit is {_megapixels(max_pixels)} megapixels."
            ) from None
        except _DECODER_ERRORS:
            raise InvalidImage(TRUNCATED_MESSAGE) from None
        upright = _apply_exif_orientation(opened)
        try:
            rgb = _to_rgb(upright)
        except _DECODER_ERRORS:
            raise InvalidImage(
                f"This image uses a colour format we can't convert ({opened.mode}); "
                "please send it as PNG or JPEG."
            ) from None
        if max_side is not None and max(rgb.size) > max_side:
            rgb = rgb.resize(_fitted(rgb.size, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
        if rgb is opened:  # never hand back the object tied to the BytesIO
            rgb = rgb.copy()
    rgb.load()
    # The file's metadata (EXIF with GPS, comments, XMP) stays behind: Pillow writes some of it
    # again when a picture is saved (a JPEG's comment), and the picture is upright already.
    rgb.info = {}
    return rgb


def _fitted(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """``size`` scaled so its longest side is ``max_side`` (the aspect ratio kept)."""
    width, height = size
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _read_source(source: ImageSource, *, max_bytes: int | None) -> bytes:
    """The raw bytes of ``source``; an oversized file is refused from its size, unread."""
    limit_text = _bytes_text(max_bytes) if max_bytes is not None else ""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if max_bytes is not None and len(data) > max_bytes:
            raise InvalidImage(f"The file is {_bytes_text(len(data))}; the limit is {limit_text}.")
        return data
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"decode_image needs bytes or a path, not {type(source).__name__}")
    path = os.fspath(source)
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if max_bytes is not None and size > max_bytes:
                raise InvalidImage(f"The file is {_bytes_text(size)}; the limit is {limit_text}.")
            # Read at most one byte past the cap so a file that grows while read is still caught.
            data = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise InvalidImage(f"The image file {os.path.basename(path)!r} does not exist.") from None
    except IsADirectoryError:
        raise InvalidImage(f"{os.path.basename(path)!r} is a folder, not an image file.") from None
    except OSError as error:
        raise InvalidImage(
            f"The image file {os.path.basename(path)!r} could not be read ({error.strerror})."
        ) from None
    if max_bytes is not None and len(data) > max_bytes:
        raise InvalidImage(f"The file is larger than the limit of {limit_text}.")
    return data


def _looks_like_svg(data: bytes) -> bool:
    """Sniff SVG text (optionally behind a BOM, XML declaration, comments or a DOCTYPE)."""
    head = data[:4096]
    if head.startswith(b"\x1f\x8b"):  # .svgz is gzip; a gzip file is no image we read either
        return False
    head = head.lstrip(b"\xef\xbb\xbf").lstrip().lower()
    if not head.startswith(b"<"):
        return False
    return b"<svg" in head or b"<!doctype svg" in head


def _check_dimensions(size: tuple[int, int], max_pixels: int, min_side: int, max_aspect_ratio: float) -> None:
    """Refuse from the header: too many pixels, a side too short, or a banner-like shape."""
    width, height = size
    if width * height > max_pixels:
        raise InvalidImage(
            f"The image is {width}×{height} pixels ({_megapixels(width * height)} megapixels); "
            f"the limit is {_megapixels(max_pixels)} megapixels."
        )
    if min(width, height) < min_side:
        raise InvalidImage(
            f"The image is {width}×{height} pixels, too small; it needs to be at least {min_side} "
            "pixels on each side."
        )
    aspect = max(width, height) / min(width, height)
    if aspect > max_aspect_ratio:
        raise InvalidImage(
            f"The image is {width}×{height} pixels, too long and thin (more than "
            f"{max_aspect_ratio:g}:1); please crop it closer to a normal photo shape."
        )


def _apply_exif_orientation(image: Image.Image) -> Image.Image:
    """Rotate/flip as the EXIF orientation says; a broken EXIF block is ignored, not fatal."""
    try:
        transposed = ImageOps.exif_transpose(image)
    except _DECODER_ERRORS:
        return image
    return image if transposed is None else transposed


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB with the colours a viewer would show."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P":
        if "transparency" in image.info:
            return _composite_on_white(image.convert("RGBA"))
        return image.convert("RGB")
    if mode in ("RGBA", "RGBa", "LA", "La", "PA"):
        return _composite_on_white(image.convert("RGBA"))
    if mode == "CMYK":
        return _cmyk_to_rgb(image)
    if mode.startswith("I;16") or mode == "I":
        return _wide_grey_to_rgb(image)
    if mode == "F":
        return _float_grey_to_rgb(image)
    return image.convert("RGB")  # 1, L, YCbCr, ...


def _composite_on_white(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    background.alpha_composite(rgba)
    return background.convert("RGB")


def _cmyk_to_rgb(image: Image.Image) -> Image.Image:
    """CMYK through its embedded ICC profile when there is one (print files need it for true
    colours), else Pillow's plain conversion (Adobe's inverted JPEG CMYK is undone by the
    JPEG decoder already)."""
    icc = image.info.get("icc_profile")
    if icc:
        try:
            from PIL import ImageCms

            source_profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(
                image, source_profile, ImageCms.createProfile("sRGB"), outputMode="RGB"
            )
            if converted is not None:
                return converted
        except Exception:
            pass
    return image.convert("RGB")


def _wide_grey_to_rgb(image: Image.Image) -> Image.Image:
    """16/32-bit greyscale scaled to 0..255 (Pillow's own conversion clips, so mid-grey
    65535/2 would come out white)."""
    if image.mode != "I":
        image = image.convert("I")
    low, high = _band_range(image)
    if low >= 0 and high <= 255 and not image.mode.startswith("I;16"):
        scaled = image  # an I image that already holds 8-bit values
    elif low >= 0 and high <= 65535:
        scaled = image.point(lambda value: value / 257)
    else:  # unusual signed or 32-bit data: stretch its actual range
        span = max(1, high - low)
        scaled = image.point(lambda value: (value - low) * 255 / span)
    return scaled.convert("L").convert("RGB")


def _float_grey_to_rgb(image: Image.Image) -> Image.Image:
    """Float greyscale: 0..1 is the usual convention; anything else is stretched to fit."""
    low, high = _band_range(image)
    if low >= 0.0 and high <= 1.0:
        scaled = image.point(lambda value: value * 255)
    else:
        span = max(1e-12, high - low)
        scaled = image.point(lambda value: (value - low) * 255 / span)
    return scaled.convert("L").convert("RGB")


def _band_range(image: Image.Image) -> tuple[float, float]:
    """The lowest and highest value of a single-band image."""
    low, high = image.getextrema()
    assert isinstance(low, int | float) and isinstance(high, int | float), "a single-band image"
    return low, high


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:.1f}".rstrip("0").rstrip(".")


def _bytes_text(count: int) -> str:
    """A byte count the way Discord shows limits (MiB/KiB)."""
    if count >= 1024 * 1024:
        return f"{count / (1024 * 1024):.1f}".rstrip("0").rstrip(".") + " MiB"
    if count >= 1024:
        return f"{count / 1024:.1f}".rstrip("0").rstrip(".") + " KiB"
    return f"{count} bytes"


def make_preview(image: Image.Image, size: int) -> Image.Image:
    """A small RGB copy whose longest side is at most ``size`` (never enlarged), for progress
    messages where a full-size image would waste upload bandwidth."""
    preview = _to_rgb(image).copy()
    preview.thumbnail((size, size), Image.Resampling.LANCZOS)
    return preview


@dataclass(frozen=True)
class EncodedImage:
    """An encoded result ready to upload: the bytes plus what a filename and embed need."""

    data: bytes
    extension: Literal["png", "jpg", "webp"]
    width: int
    height: int


_EXTENSIONS: dict[str, Literal["png", "jpg", "webp"]] = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
# Lossy attempts at each size, best-looking first. 4:4:4 chroma at high quality keeps the
# painted colour edges; WebP usually wins on size at equal quality.
_LOSSY_ATTEMPTS: tuple[tuple[Literal["JPEG", "WEBP"], int], ...] = (
    ("JPEG", 95),
    ("WEBP", 92),
    ("JPEG", 90),
    ("WEBP", 85),
    ("JPEG", 85),
    ("JPEG", 80),
    ("WEBP", 80),
)
_WEBP_MAX_SIDE = 16383


def encode_image(image: Image.Image, *, max_bytes: int | None = None) -> EncodedImage:
    """Encode ``image`` as PNG, or, when ``max_bytes`` forbids that, the best lossy file that fits.

    Order: lossless PNG at full size; high-quality JPEG/WebP at full size (quality 95 down to 80);
    then the same at smaller sizes, each step estimated from how far over the limit the last
    attempt was. Raises ValueError when nothing fits even with a tiny image.
    """
    if max_bytes is not None and max_bytes <= 0:
        raise ValueError(f"max_bytes must be positive, got {max_bytes}")
    rgb = _to_rgb(image)
    png = _encode(rgb, "PNG", None)
    if max_bytes is None or len(png) <= max_bytes:
        return EncodedImage(png, "png", rgb.width, rgb.height)

    current = rgb
    while True:
        smallest = len(png)
        for image_format, quality in _LOSSY_ATTEMPTS:
            if image_format == "WEBP" and max(current.size) > _WEBP_MAX_SIDE:
                continue
            data = _encode(current, image_format, quality)
            if len(data) <= max_bytes:
                return EncodedImage(data, _EXTENSIONS[image_format], current.width, current.height)
            smallest = min(smallest, len(data))
        if min(current.size) <= MIN_SIZE:  # a smaller picture is no use to anyone
            raise ValueError(
                f"the image cannot be encoded in {max_bytes} bytes, even at {current.width}x"
                f"{current.height} pixels"
            )
        # File size grows roughly with pixel count: shrink by the square root of the overshoot,
        # with a margin, and by at least 10% so the loop always progresses.
        factor = min(0.9, math.sqrt(max_bytes / smallest) * 0.9)
        new_width = max(1, round(current.width * factor))
        new_height = max(1, round(current.height * factor))
        if min(new_width, new_height) < MIN_SIZE:
            shrink = MIN_SIZE / min(current.size)
            new_width = max(MIN_SIZE, round(current.width * shrink))
            new_height = max(MIN_SIZE, round(current.height * shrink))
            new_width, new_height = min(new_width, current.width), min(new_height, current.height)
        current = rgb.resize((new_width, new_height), Image.Resampling.LANCZOS, reducing_gap=3.0)


def _encode(image: Image.Image, image_format: str, quality: int | None) -> bytes:
    buffer = io.BytesIO()
    if image_format == "PNG":
        image.save(buffer, "PNG", compress_level=6)
    elif image_format == "JPEG":
        image.save(
            buffer,
            "JPEG",
            quality=quality,
            subsampling=0 if quality is not None and quality >= 90 else 2,
            optimize=True,
        )
    else:
        image.save(buffer, "WEBP", quality=quality, method=4)
    return buffer.getvalue()
