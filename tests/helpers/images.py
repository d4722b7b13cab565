"""Small synthetic images for tests: every test makes its own pictures, none are shipped."""

from __future__ import annotations

import io

from PIL import Image, ImageChops, ImageDraw


def content_image(width: int = 64, height: int = 48) -> Image.Image:
    """A 'photo': a sky gradient, a house-like block and a sun, so it has structure to keep."""
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        shade = int(120 + 100 * y / max(1, height - 1))
        draw.line([(0, y), (width, y)], fill=(shade // 2, shade // 2 + 40, shade))
    draw.rectangle([width // 4, height // 2, width * 3 // 4, height - 4], fill=(180, 60, 40))
    draw.ellipse([width * 3 // 4 - 6, 4, width * 3 // 4 + 6, 16], fill=(250, 220, 60))
    return image


def stripes_style(width: int = 64, height: int = 64, colours=((20, 40, 200), (250, 200, 30))) -> Image.Image:
    """A 'painting': diagonal stripes in two colours, a texture with an obvious Gram signature."""
    image = Image.new("RGB", (width, height), colours[0])
    draw = ImageDraw.Draw(image)
    for offset in range(-height, width, 8):
        draw.line([(offset, 0), (offset + height, height)], fill=colours[1], width=3)
    return image


def dots_style(
    width: int = 64, height: int = 64, background=(240, 240, 240), dot=(200, 20, 20)
) -> Image.Image:
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    for y in range(2, height, 10):
        for x in range(2, width, 10):
            draw.ellipse([x, y, x + 5, y + 5], fill=dot)
    return image


def moving_square_gif(frames: int = 3, size: int = 40, duration_ms: int = 120) -> bytes:
    """A square sliding right over a gradient (wrapping round), one frame per step: no frame is
    its predecessor (Pillow would merge them)."""
    images = []
    for index in range(frames):
        image = Image.new("RGB", (size, size))
        draw = ImageDraw.Draw(image)
        for y in range(size):
            draw.line([(0, y), (size, y)], fill=(60, 100 + 3 * y, 200 - 2 * y))
        left = 4 + 5 * index % (size - 16)  # wraps: consecutive frames always differ
        draw.rectangle([left, 12, left + 12, 24], fill=(230, 60, 30))
        images.append(image.convert("P", palette=Image.Palette.ADAPTIVE))
    buffer = io.BytesIO()
    images[0].save(buffer, "GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    return buffer.getvalue()


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def phone_photo_jpeg(width: int = 4000, height: int = 3000, seed: int = 0) -> bytes:
    """A phone-sized JPEG (12 MP by default) that is as big as a real one (about 4 MB).

    Smooth colour areas (a small random picture blown up) plus sensor-like noise: a flat synthetic
    picture would compress to a few hundred KB and hide the cost of decoding and storing a photo.
    Takes about a second; make it once per test session.
    """
    import random

    coarse_size = (max(1, width // 100), max(1, height // 100))
    coarse = Image.frombytes(
        "RGB", coarse_size, random.Random(seed).randbytes(coarse_size[0] * coarse_size[1] * 3)
    )
    base = coarse.resize((width, height), Image.Resampling.BICUBIC)
    noise = Image.effect_noise((width, height), 8).convert("RGB")  # grey noise centred on 128
    photo = ImageChops.add(base, noise, scale=1.0, offset=-128)
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


#: What :func:`jpeg_with_location` hides in its file, as the bytes that show it is still there.
LOCATION_MARKERS = (b"Exif\x00\x00", b"PhoneCo", b"at home")


def gps_exif(orientation: int = 1) -> Image.Exif:
    """A phone's EXIF: the camera, the orientation and a GPS block (Paris)."""
    from PIL import ExifTags

    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneCo"
    exif[ExifTags.Base.Orientation] = orientation
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (48.0, 51.0, 24.0)
    return exif


def jpeg_with_location(width: int = 48, height: int = 40, orientation: int = 1) -> bytes:
    """A small photo-like JPEG as a phone sends it: EXIF with the camera, its orientation and a GPS
    block (:func:`gps_exif`), and a comment. Noisy, so its JPEG is smaller than lossless WebP, as a
    photo's is."""
    with Image.open(io.BytesIO(phone_photo_jpeg(width, height))) as photo:
        picture = photo.convert("RGB")
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90, exif=gps_exif(orientation), comment=b"at home")
    return buffer.getvalue()
