"""A job's clip: an animated upload checked while it downloads, decoded, and kept for re-runs.

An animated GIF, WebP or APNG, or an MP4, WebM or MOV video, given as /stylize's photo is painted
as an animation (:attr:`~bot.core.requests.JobKind.ANIMATE`). Three things happen to it here:

* :func:`early_refusal` reads the header of what has arrived so far and refuses a clip over the
  operator's limits (frames, seconds, pixels) before the download has finished: a GIF's frames
  and length are counted from its blocks as they arrive (here: Pillow cannot walk a file cut
  short), a WebP's and an APNG's from their chunks, a video's header says them
  (:func:`nst_engine.probe_clip`);
* :func:`prepare_clip_input` decodes it (checked again frame by frame, thinned and shrunk as the
  engine does) and chooses what is kept of it;
* :func:`load_clip` reads a kept clip back for a re-run.

What is kept: an animation (GIF, WebP, APNG) as the bytes the user sent with their metadata
blocks removed (comments, XMP, EXIF, text chunks), which is smaller than any re-encoding and
loses nothing; a video as the frames that are painted (already thinned to the frame limit and
shrunk to ``animation_size``, upright), encoded as H.264 MP4 at high quality. A video's metadata
(GPS position of a phone video, the camera, dates) lives in container atoms that cannot be
removed by walking bytes as safely as an animation's blocks, and its rotation is side data a
stream copy may lose; the re-encoded frames carry neither, are upright, and are usually smaller
than the original. Either is stored under the same retention and byte cap as a photo.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path
from typing import TYPE_CHECKING

from nst_engine.clips import (
    DEFAULT_FRAME_MS,
    SHORTEST_FRAME_MS,
    ClipInfo,
    check_limits,
    decode_clip,
    encode_clip,
    probe_clip,
)
from nst_engine.errors import InvalidImage

from .inputs import InputImage

if TYPE_CHECKING:
    from nst_engine.clips import Clip, ClipLimits

log = logging.getLogger(__name__)


def is_animation(data: bytes, *, max_bytes: int | None = None) -> bool:
    """Whether ``data`` is an animation or a video (more than one frame, or any video), from its
    header only; a one-frame GIF, WebP or PNG and every other picture is a still."""
    try:
        info = probe_clip(data, max_bytes=max_bytes)
    except InvalidImage:
        return False
    return info.kind == "video" or info.frames > 1


def early_refusal(prefix: bytes, limits: ClipLimits) -> str | None:
    """Why the clip whose first bytes are ``prefix`` is refused, or None (a still, or within the
    limits so far, or not enough has arrived to tell).

    What a partial file says is a lower bound (a GIF's frames and length counted so far; a
    video's header is complete once it has arrived), so a clip is never refused for bytes it has
    not sent. Blocks for a few milliseconds per megabyte: call it in a thread.
    """
    partial_gif = prefix[:6] in (b"GIF87a", b"GIF89a")
    try:
        info = _gif_prefix_info(prefix) if partial_gif else probe_clip(prefix)
    except Exception:  # a still, a header cut short, a parser tripped by a partial file: the
        return None  # whole file is checked as it is decoded anyway, so nothing is let through
    refusal = _limit_refusal(info, limits)
    if refusal is not None and partial_gif and info.seconds > limits.max_seconds:
        # Only the length so far is known: the sentence the engine says of a clip it decodes.
        return f"The clip is longer than the limit of {limits.max_seconds:g} seconds."
    return refusal


def _gif_prefix_info(prefix: bytes) -> ClipInfo:
    """What the first bytes of a GIF say: its size, and the frames and length so far (Pillow's
    reader, which :func:`probe_clip` uses, cannot walk a file cut short)."""
    width, height = struct.unpack("<HH", prefix[6:10])
    position = 13 + _colour_table_bytes(prefix[10])
    frames = total_ms = 0
    delay_ms: int | None = None
    try:
        while position < len(prefix) and prefix[position] != 0x3B:
            introducer = prefix[position]
            if introducer == 0x21:
                if prefix[position + 1] == _GIF_GRAPHIC_CONTROL:
                    delay_ms = 10 * int.from_bytes(prefix[position + 4 : position + 6], "little")
                position = _gif_sub_blocks_end(prefix, position + 2)
            elif introducer == 0x2C:  # a frame begins: it counts, with the delay its control block gave
                frames += 1
                total_ms += (
                    delay_ms if delay_ms is not None and delay_ms >= SHORTEST_FRAME_MS else DEFAULT_FRAME_MS
                )
                delay_ms = None
                position += 10 + _colour_table_bytes(prefix[position + 9]) + 1
                position = _gif_sub_blocks_end(prefix, position)
            else:
                raise ValueError(f"unknown GIF block {introducer:#x}")
    except IndexError:  # the prefix ends inside a block: what came before it counts
        pass
    return ClipInfo("gif", width, height, max(1, frames), total_ms / 1000)


def _limit_refusal(info: ClipInfo, limits: ClipLimits) -> str | None:
    if info.kind != "video" and info.frames <= 1:
        return None
    try:
        check_limits(info, limits)
    except InvalidImage as refusal:
        return str(refusal)
    return None


def prepare_clip_input(data: bytes, *, limits: ClipLimits, max_side: int, max_bytes: int) -> InputImage:
    """Decode an animated upload (checked against ``limits``, thinned, frames shrunk to
    ``max_side``) and choose what to keep of it (see the module's docstring). Raises
    :class:`~nst_engine.errors.InvalidImage` with the user's sentence. Blocks: call it in a thread.
    """
    clip = decode_clip(data, limits, max_bytes=max_bytes, max_side=max_side)
    kind = probe_clip(data).kind
    kept = without_metadata(data, kind)
    if kept is None:  # encode_clip's first MP4 attempt: x264 at CRF 20, hard to tell from the frames
        stored = encode_clip(clip, "mp4").data
        extension = "mp4"
    else:
        stored, extension = kept, kind
    return InputImage(clip.frames[0], data=stored, extension=extension, clip=clip)


def load_clip(path: str | None, *, limits: ClipLimits, max_side: int) -> Clip | None:
    """A kept clip decoded again (the same checks as an upload), or None when it is gone or no
    longer passes (the operator lowered the limits since)."""
    if not path or not Path(path).is_file():
        return None
    try:
        return decode_clip(path, limits, max_side=max_side)
    except Exception as error:  # an unreadable stored file is as good as expired
        log.warning("a stored clip cannot be read again: %s", error)
        return None


# ---------------------------------------------------------------------------- metadata
def without_metadata(data: bytes, kind: str) -> bytes | None:
    """The animation ``data`` without its metadata blocks, frame for frame the same file; None
    for a video or a file whose blocks do not parse (then its frames are stored instead)."""
    strip = {"gif": _strip_gif, "webp": _strip_webp, "png": _strip_png}.get(kind)
    if strip is None:
        return None
    try:
        stripped = strip(data)
        before, after = probe_clip(data), probe_clip(stripped)
    except (ValueError, IndexError, struct.error, InvalidImage):
        return None
    if (before.width, before.height, before.frames) != (after.width, after.height, after.frames):
        return None
    return stripped


#: GIF application extensions that say how the animation plays (its loop count); others (XMP...)
#: are metadata.
_GIF_PLAYBACK_APPS = (b"NETSCAPE2.0", b"ANIMEXTS1.0")
_GIF_GRAPHIC_CONTROL, _GIF_PLAIN_TEXT, _GIF_APPLICATION = 0xF9, 0x01, 0xFF


def _gif_sub_blocks_end(data: bytes, position: int) -> int:
    while True:
        length = data[position]
        position += 1 + length
        if length == 0:
            return position


def _colour_table_bytes(flags: int) -> int:
    return 3 * 2 ** ((flags & 0x07) + 1) if flags & 0x80 else 0


def _strip_gif(data: bytes) -> bytes:
    """Keeps the header, colour tables, frames, their timing and the loop count; drops comments,
    XMP and every other application block."""
    position = 13 + _colour_table_bytes(data[10])
    out = bytearray(data[:position])
    while position < len(data):
        introducer = data[position]
        if introducer == 0x3B:  # trailer
            break
        if introducer == 0x21:
            label = data[position + 1]
            end = _gif_sub_blocks_end(data, position + 2)
            keep = label in (_GIF_GRAPHIC_CONTROL, _GIF_PLAIN_TEXT)
            if label == _GIF_APPLICATION:
                keep = data[position + 3 : position + 14] in _GIF_PLAYBACK_APPS
            if keep:
                out += data[position:end]
            position = end
        elif introducer == 0x2C:  # image descriptor, local colour table, LZW data
            start = position
            position += 10 + _colour_table_bytes(data[position + 9]) + 1
            position = _gif_sub_blocks_end(data, position)
            out += data[start:position]
        else:
            raise ValueError(f"unknown GIF block {introducer:#x}")
    if position > len(data):
        raise ValueError("a GIF block runs past the end")
    out.append(0x3B)
    return bytes(out)


#: WebP chunks that make the picture (the ICC profile says what its colours mean, nothing personal).
_WEBP_KEPT = {b"VP8X", b"ICCP", b"ANIM", b"ANMF", b"ALPH", b"VP8 ", b"VP8L"}
_VP8X_EXIF, _VP8X_XMP = 0x08, 0x04


def _strip_webp(data: bytes) -> bytes:
    body = bytearray(b"WEBP")
    offset = 12
    while offset + 8 <= len(data):
        name = data[offset : offset + 4]
        (length,) = struct.unpack("<I", data[offset + 4 : offset + 8])
        end = offset + 8 + length + (length & 1)
        if offset + 8 + length > len(data):
            raise ValueError("a WebP chunk runs past the end")
        chunk = bytearray(data[offset:end])
        if name == b"VP8X":
            chunk[8] &= ~(_VP8X_EXIF | _VP8X_XMP) & 0xFF
        if name in _WEBP_KEPT:
            body += chunk
        offset = end
    return b"RIFF" + struct.pack("<I", len(body)) + bytes(body)


#: PNG chunks that make the picture and its animation; text, EXIF, times and the rest are dropped.
_PNG_KEPT = {
    b"IHDR", b"PLTE", b"IDAT", b"IEND", b"acTL", b"fcTL", b"fdAT",
    b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"bKGD",
}  # fmt: skip


def _strip_png(data: bytes) -> bytes:
    out = bytearray(data[:8])
    offset = 8
    while offset + 8 <= len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        name = data[offset + 4 : offset + 8]
        end = offset + 12 + length
        if end > len(data):
            raise ValueError("a PNG chunk runs past the end")
        if name in _PNG_KEPT:
            out += data[offset:end]
        offset = end
        if name == b"IEND":
            break
    return bytes(out)
