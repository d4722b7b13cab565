"""Clips: animated GIF, WebP and PNG (Pillow) and short MP4, WebM and MOV videos (PyAV) in and out.

The animated counterpart of :mod:`nst_engine.imaging`, with the same care for untrusted files:

* :func:`probe_clip` reads only what the header says (size, frame count, length), so a caller
  can refuse a clip that is too long before decoding any frame;
* :func:`decode_clip` checks the probe against :class:`ClipLimits` first, then decodes frame by
  frame, and stops as soon as a limit is passed (a header may lie about the frame count);
* every failure is an :class:`~nst_engine.errors.InvalidImage` with one sentence a person can act
  on, as for stills.

A clip with more frames than ``ClipLimits.max_frames`` but within ``max_seconds`` is thinned
evenly in time (each kept frame shows for as long as the frames it stands for), so a 4-second
phone video at 30 frames a second is painted as 48 frames at 12 a second, its length unchanged.

Results leave through :func:`encode_clip`, the format chosen by the caller (:func:`clip_format_for`
maps a file extension): MP4 (H.264, yuv420p, even sides, the index at the front so a player can
start before the download ends), animated WebP, or GIF (256 colours, the fallback every client
plays). Frame durations and the loop count are kept.
"""

from __future__ import annotations

import io
import math
import os
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from .errors import InvalidImage, ParameterError
from .imaging import (
    EMPTY_MESSAGE,
    TRUNCATED_MESSAGE,
    ImageSource,
    _bytes_text,
    _check_dimensions,
    _composite_on_white,
    _fitted,
    _megapixels,
    _read_source,
    _to_rgb,
)
from .params import MIN_SIZE

ClipFormat = Literal["mp4", "webp", "gif"]
SourceKind = Literal["gif", "webp", "png", "video"]

#: Output formats by file extension (``nst CLIP STYLE -o OUT.mp4``).
CLIP_EXTENSIONS: dict[str, ClipFormat] = {".mp4": "mp4", ".webp": "webp", ".gif": "gif"}

#: What a frame shorter than this shows for. Browsers and Discord show a GIF frame of 0 or 10 ms
#: for 100 ms (old GIFs relied on it), so a 0-delay frame means 100 ms, not "skip me".
SHORTEST_FRAME_MS = 20
DEFAULT_FRAME_MS = 100

NOT_A_CLIP_MESSAGE = "This file is not an animation or video we can read (GIF, WebP, APNG, MP4, WebM or MOV)."


@dataclass(frozen=True)
class ClipLimits:
    """What an operator lets in: the defaults fit a 2-core CPU host (a 256 px frame after the first
    costs a few seconds there, see docs/benchmarks.md)."""

    #: Frames painted. A longer clip within ``max_seconds`` is thinned evenly in time to this many.
    max_frames: int = 48
    #: Length of the clip.
    max_seconds: float = 10.0
    #: Frames in the file: more is refused from the header, before any is decoded.
    max_source_frames: int = 600
    #: Pixels of one frame as sent (1920×1080 by default).
    max_pixels: int = 1920 * 1080

    def __post_init__(self) -> None:
        for name in ("max_frames", "max_source_frames"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParameterError(name, f"must be a whole number of at least 1, got {value!r}")
        if not isinstance(self.max_pixels, int) or self.max_pixels < MIN_SIZE * MIN_SIZE:
            raise ParameterError(
                "max_pixels", f"must be at least {MIN_SIZE * MIN_SIZE}, got {self.max_pixels!r}"
            )
        seconds = self.max_seconds
        if not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds <= 0:
            raise ParameterError("max_seconds", f"must be a positive number, got {seconds!r}")


#: ``temporal_weight``'s default. The temporal loss is a mean of squared 0-255 pixel changes;
#: at this weight a change of 10 grey levels over the trusted pixels costs about as much as the
#: content loss of a finished still, enough to hold strokes in place (docs/benchmarks.md, "Clips").
DEFAULT_TEMPORAL_WEIGHT = 20000.0
#: ``frame_iterations``' default: the fewest measured that keep each frame's judge terms within 20%
#: of a still painted from that frame (within 9% on a pan; 10 let its style drift 31-34% away,
#: docs/benchmarks.md, "Clips").
DEFAULT_FRAME_ITERATIONS = 20


@dataclass(frozen=True)
class ClipParams:
    """What a clip needs beyond a still's :class:`StyleParams`."""

    #: Weight of the temporal loss; 0 paints every frame on its own, as a still.
    temporal_weight: float = DEFAULT_TEMPORAL_WEIGHT
    #: Iterations of each frame after the first (which gets ``StyleParams.iterations``).
    frame_iterations: int = DEFAULT_FRAME_ITERATIONS

    def __post_init__(self) -> None:
        weight = self.temporal_weight
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight < float("inf"):
            raise ParameterError("temporal_weight", f"must be a number of at least 0, got {weight!r}")
        iterations = self.frame_iterations
        if isinstance(iterations, bool) or not isinstance(iterations, int) or not 1 <= iterations <= 100_000:
            raise ParameterError("frame_iterations", f"must be between 1 and 100000, got {iterations!r}")


@dataclass(frozen=True)
class Clip:
    """Frames (RGB, all the same size) with how long each shows and how many times the whole plays."""

    frames: tuple[Image.Image, ...]
    durations_ms: tuple[int, ...]
    #: Times the animation plays in all; 0 plays it forever (what GIFs and WebPs usually say).
    plays: int = 0

    def __post_init__(self) -> None:
        if not self.frames:
            raise ValueError("a clip needs at least one frame")
        if len(self.frames) != len(self.durations_ms):
            raise ValueError(f"{len(self.frames)} frames but {len(self.durations_ms)} durations")
        if any(d <= 0 for d in self.durations_ms):
            raise ValueError(f"frame durations must be positive, got {self.durations_ms}")
        if len({frame.size for frame in self.frames}) != 1:
            raise ValueError("the frames of a clip must all have the same size")
        if self.plays < 0:
            raise ValueError(f"plays must be 0 (forever) or more, got {self.plays}")

    @property
    def size(self) -> tuple[int, int]:
        return self.frames[0].size

    @property
    def seconds(self) -> float:
        return sum(self.durations_ms) / 1000

    def without_repeats(self) -> Clip:
        """The clip with each run of identical consecutive frames as one frame showing for their
        total time: what a GIF that holds a picture still does, painted once instead of N times."""
        frames: list[Image.Image] = []
        durations: list[int] = []
        previous: bytes | None = None
        for frame, duration in zip(self.frames, self.durations_ms, strict=True):
            pixels = frame.tobytes()
            if pixels == previous:
                durations[-1] += duration
                continue
            frames.append(frame)
            durations.append(duration)
            previous = pixels
        return replace(self, frames=tuple(frames), durations_ms=tuple(durations))


@dataclass(frozen=True)
class ClipInfo:
    """What a clip's header says (:func:`probe_clip`); nothing has been decoded."""

    kind: SourceKind
    width: int
    height: int
    #: Frames in the file; for a video, as its container states or estimated from length x rate.
    frames: int
    seconds: float


@dataclass(frozen=True)
class EncodedClip:
    data: bytes
    extension: ClipFormat
    width: int
    height: int
    frames: int
    durations_ms: tuple[int, ...]


# ---------------------------------------------------------------------------- probing
def _sniff(data: bytes) -> SourceKind | None:
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[4:8] == b"ftyp" or data[:4] == b"\x1a\x45\xdf\xa3":  # MP4/MOV (ISO BMFF), WebM (Matroska)
        return "video"
    return None


def is_clip(source: ImageSource, *, max_bytes: int | None = None) -> bool:
    """Whether ``source`` is an animation or video (more than one frame), from its header only.

    A one-frame GIF, WebP or PNG is a still (:func:`nst_engine.imaging.decode_image`); so is
    anything this module cannot read.
    """
    try:
        return probe_clip(source, max_bytes=max_bytes).frames > 1
    except InvalidImage:
        return False


def probe_clip(source: ImageSource, *, max_bytes: int | None = None) -> ClipInfo:
    """Size, frame count and length from the header, without decoding a frame.

    GIF: the frame blocks are walked (their pixel data skipped, not decompressed); WebP and APNG:
    the chunk headers are read (each frame's duration is stored there); video: the container's
    header. Raises :class:`InvalidImage` when ``source`` is neither an animation nor a video.
    """
    data = _read_source(source, max_bytes=max_bytes)
    return _probe(data)


def _probe(data: bytes, max_source_frames: int | None = None) -> ClipInfo:
    if not data:
        raise InvalidImage(EMPTY_MESSAGE)
    kind = _sniff(data)
    try:
        if kind == "gif":
            return _probe_gif(data, max_source_frames)
        if kind == "webp":
            return _probe_webp(data)
        if kind == "png":
            return _probe_png(data)
        if kind == "video":
            return _probe_video(data)
    except (struct.error, IndexError, ValueError, OSError, EOFError, SyntaxError):
        raise InvalidImage(TRUNCATED_MESSAGE) from None
    raise InvalidImage(NOT_A_CLIP_MESSAGE)


def _probe_gif(data: bytes, max_source_frames: int | None) -> ClipInfo:
    """Walk the frames with Pillow's seek, which skips each frame's compressed data unread; stop
    one past ``max_source_frames`` so a file claiming a million frames costs no more than that."""
    width, height = struct.unpack("<HH", data[6:10])
    if width * height > Image.MAX_IMAGE_PIXELS:  # Pillow would refuse to open it: no frame count
        return ClipInfo("gif", width, height, 1, DEFAULT_FRAME_MS / 1000)
    with Image.open(io.BytesIO(data), formats=("GIF",)) as image:
        frames = 0
        total_ms = 0
        while True:
            total_ms += _frame_ms(image.info.get("duration"))
            frames += 1
            if max_source_frames is not None and frames > max_source_frames:
                break
            try:
                image.seek(frames)
            except EOFError:
                break
    return ClipInfo("gif", width, height, frames, total_ms / 1000)


def _riff_chunks(data: bytes, start: int) -> Iterator[tuple[bytes, bytes]]:
    offset = start
    while offset + 8 <= len(data):
        name = data[offset : offset + 4]
        (length,) = struct.unpack("<I", data[offset + 4 : offset + 8])
        yield name, data[offset + 8 : offset + 8 + length]
        offset += 8 + length + (length & 1)


def _u24(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 3], "little")


def _probe_webp(data: bytes) -> ClipInfo:
    width = height = frames = total_ms = 0
    for name, payload in _riff_chunks(data, 12):
        if name == b"VP8X":
            width, height = _u24(payload, 4) + 1, _u24(payload, 7) + 1
        elif name == b"ANMF":
            frames += 1
            total_ms += _frame_ms(_u24(payload, 12))
    if frames == 0:  # a still WebP: its size from Pillow's header parser
        with Image.open(io.BytesIO(data), formats=("WEBP",)) as image:
            width, height = image.size
        return ClipInfo("webp", width, height, 1, DEFAULT_FRAME_MS / 1000)
    return ClipInfo("webp", width, height, frames, total_ms / 1000)


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    offset = 8
    while offset + 8 <= len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        name = data[offset + 4 : offset + 8]
        yield name, data[offset + 8 : offset + 8 + length]
        if name == b"IEND":
            return
        offset += 12 + length


def _probe_png(data: bytes) -> ClipInfo:
    width = height = frames = total_ms = 0
    animated = False
    for name, payload in _png_chunks(data):
        if name == b"IHDR":
            width, height = struct.unpack(">II", payload[:8])
        elif name == b"acTL":
            animated = True
        elif name == b"fcTL":
            numerator, denominator = struct.unpack(">HH", payload[20:24])
            frames += 1
            total_ms += _frame_ms(1000 * numerator / (denominator or 100))
    if not animated or frames == 0:
        return ClipInfo("png", width, height, 1, DEFAULT_FRAME_MS / 1000)
    return ClipInfo("png", width, height, frames, total_ms / 1000)


def _probe_video(data: bytes) -> ClipInfo:
    import av  # imported here: PyAV loads FFmpeg's libraries, which a still never needs

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                raise InvalidImage("This video has no picture track.")
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            if stream.duration is not None and stream.time_base is not None:
                seconds = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                seconds = container.duration / 1_000_000
            else:
                seconds = 0.0
            frames = stream.frames
            if frames <= 0 and stream.average_rate:
                frames = max(1, round(seconds * float(stream.average_rate)))
    except av.FFmpegError:
        raise InvalidImage(NOT_A_CLIP_MESSAGE) from None
    if width <= 0 or height <= 0:
        raise InvalidImage(NOT_A_CLIP_MESSAGE)
    return ClipInfo("video", width, height, max(1, frames), max(0.0, seconds))


def _frame_ms(value: object) -> int:
    """A frame's duration as viewers show it: missing, 0 or 10 ms is 100 ms (see SHORTEST_FRAME_MS)."""
    if not isinstance(value, int | float) or not math.isfinite(value) or value < SHORTEST_FRAME_MS:
        return DEFAULT_FRAME_MS
    return round(value)


def check_limits(info: ClipInfo, limits: ClipLimits) -> None:
    """Refuse, from the header, a clip over ``limits``: one sentence that says the limit."""
    _check_dimensions((info.width, info.height), limits.max_pixels, MIN_SIZE, 8.0)
    if info.frames > limits.max_source_frames:
        # A GIF's walk stops one past the limit: its count is only "more than the limit".
        count = f"more than {limits.max_source_frames}" if info.kind == "gif" else str(info.frames)
        raise InvalidImage(f"The clip has {count} frames; the limit is {limits.max_source_frames}.")
    if info.seconds > limits.max_seconds + 1e-3:
        raise InvalidImage(
            f"The clip is {info.seconds:.1f} seconds long; the limit is {limits.max_seconds:g} seconds."
        )


# ---------------------------------------------------------------------------- decoding
def decode_clip(
    source: ImageSource,
    limits: ClipLimits | None = None,
    *,
    max_bytes: int | None = None,
    max_side: int | None = None,
) -> Clip:
    """Decode an untrusted animation or video into a :class:`Clip` of upright RGB frames.

    Checks, in order: the byte size, the header against ``limits`` (:func:`check_limits`), then
    each frame as it is decoded (a frame count or duration past the limits stops the decode).
    Transparent pixels are composited on white, as for stills. ``max_side`` shrinks each frame as
    it is decoded (a 1080p video never sits in memory at full size when 512 px is all that is
    painted). A clip with more than ``limits.max_frames`` frames is thinned evenly in time.
    """
    limits = limits or ClipLimits()
    data = _read_source(source, max_bytes=max_bytes)
    info = _probe(data, limits.max_source_frames)
    check_limits(info, limits)
    if info.kind == "video":
        frames, durations, plays = _decode_video(data, limits, max_side)
    else:
        frames, durations, plays = _decode_animation(data, info, limits, max_side)
    if sum(durations) / 1000 > limits.max_seconds + 1e-3:  # the header understated the length
        raise InvalidImage(f"The clip is longer than the limit of {limits.max_seconds:g} seconds.")
    frames, durations = thin_evenly(frames, durations, limits.max_frames)
    return Clip(tuple(frames), tuple(durations), plays)


def _shrunk(frame: Image.Image, max_side: int | None) -> Image.Image:
    if max_side is not None and max(frame.size) > max_side:
        return frame.resize(_fitted(frame.size, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return frame


def _decode_animation(
    data: bytes, info: ClipInfo, limits: ClipLimits, max_side: int | None
) -> tuple[list[Image.Image], list[int], int]:
    pillow_format = {"gif": "GIF", "webp": "WEBP", "png": "PNG"}[info.kind]
    frames: list[Image.Image] = []
    durations: list[int] = []
    try:
        with Image.open(io.BytesIO(data), formats=(pillow_format,)) as image:
            count = getattr(image, "n_frames", 1)
            if count > limits.max_source_frames:
                raise InvalidImage(f"The clip has {count} frames; the limit is {limits.max_source_frames}.")
            for index in range(count):
                image.seek(index)
                image.load()
                durations.append(_frame_ms(image.info.get("duration")))
                rgba = image.convert("RGBA") if image.mode != "RGB" else image
                frame = _composite_on_white(rgba) if rgba.mode == "RGBA" else _to_rgb(rgba).copy()
                frames.append(_shrunk(frame, max_side))
            plays = _plays(info.kind, image.info.get("loop"))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImage(
            "The clip's frames have too many pixels; "
            f"the limit is {_megapixels(limits.max_pixels)} megapixels."
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, TypeError):
        raise InvalidImage(TRUNCATED_MESSAGE) from None
    return frames, durations, plays


def _plays(kind: SourceKind, loop: object) -> int:
    """How many times the animation plays in all (0: forever), from Pillow's ``loop`` field.

    A GIF without a loop block plays once, and its block counts repeats after the first play
    (so 2 plays it three times, as browsers do); WebP and APNG store the number of plays.
    """
    if kind == "gif":
        if not isinstance(loop, int):
            return 1
        return 0 if loop == 0 else loop + 1
    return loop if isinstance(loop, int) and loop >= 0 else 0


def _decode_video(
    data: bytes, limits: ClipLimits, max_side: int | None
) -> tuple[list[Image.Image], list[int], int]:
    import av

    frames: list[Image.Image] = []
    starts: list[float] = []
    last_duration = 0.0
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = float(stream.average_rate) if stream.average_rate else 1000 / DEFAULT_FRAME_MS
            for decoded in container.decode(stream):
                if len(frames) >= limits.max_source_frames:
                    raise InvalidImage(
                        f"The clip has more than {limits.max_source_frames} frames; "
                        f"the limit is {limits.max_source_frames}."
                    )
                if decoded.width * decoded.height > limits.max_pixels:
                    raise InvalidImage(
                        f"The clip's frames are {decoded.width}×{decoded.height} pixels; the limit is "
                        f"{_megapixels(limits.max_pixels)} megapixels."
                    )
                start = decoded.time if decoded.time is not None else len(frames) / rate
                if starts and start <= starts[-1]:
                    raise InvalidImage(
                        "This video's frame times are out of order (the file may be damaged); "
                        "please send it again or as a GIF."
                    )
                if start - (starts[0] if starts else start) > limits.max_seconds:
                    raise InvalidImage(
                        f"The clip is longer than the limit of {limits.max_seconds:g} seconds."
                    )
                starts.append(start)
                duration = decoded.duration
                time_base = decoded.time_base
                last_duration = (
                    float(duration * time_base) if duration and time_base is not None else 1 / rate
                )
                frames.append(
                    _shrunk(
                        _upright(Image.fromarray(decoded.to_ndarray(format="rgb24")), decoded.rotation),
                        max_side,
                    )
                )
    except av.FFmpegError:
        raise InvalidImage(TRUNCATED_MESSAGE) from None
    if not frames:
        raise InvalidImage(TRUNCATED_MESSAGE)
    ends = [*starts[1:], starts[-1] + last_duration]
    milliseconds = [round(1000 * end) - round(1000 * start) for start, end in zip(starts, ends, strict=True)]
    durations = [max(1, ms) for ms in milliseconds]
    return frames, durations, 0  # a video has no loop count; a clip made from one loops like a GIF


def _upright(image: Image.Image, rotation: int) -> Image.Image:
    """A phone video's frame turned as its display matrix says (PyAV's counter-clockwise degrees)."""
    turns = round(rotation / 90) % 4
    transposes = {1: Image.Transpose.ROTATE_90, 2: Image.Transpose.ROTATE_180, 3: Image.Transpose.ROTATE_270}
    rgb = image.convert("RGB")
    return rgb.transpose(transposes[turns]) if turns else rgb


def thin_evenly(
    frames: list[Image.Image], durations: list[int], max_frames: int
) -> tuple[list[Image.Image], list[int]]:
    """At most ``max_frames`` frames, chosen evenly in time, each showing until the next one.

    The frame kept for slot k is the one on screen at k/max_frames of the clip's length; the total
    length is unchanged.
    """
    if len(frames) <= max_frames:
        return frames, durations
    starts = [0]
    for duration in durations[:-1]:
        starts.append(starts[-1] + duration)
    total = starts[-1] + durations[-1]
    kept: list[int] = []
    index = 0
    for slot in range(max_frames):
        moment = total * slot / max_frames
        while index + 1 < len(starts) and starts[index + 1] <= moment:
            index += 1
        if not kept or kept[-1] != index:
            kept.append(index)
    new_starts = [starts[i] for i in kept]
    new_durations = [b - a for a, b in zip(new_starts, [*new_starts[1:], total], strict=True)]
    return [frames[i] for i in kept], new_durations


# ---------------------------------------------------------------------------- encoding
def clip_format_for(path: str | os.PathLike[str]) -> ClipFormat | None:
    """The output format an extension asks for (.mp4, .webp, .gif), or None."""
    return CLIP_EXTENSIONS.get(Path(path).suffix.lower())


#: Attempts per format when a byte limit forbids the first: (quality setting) best first. For MP4
#: it is x264's constant rate factor (lower is better), for WebP its quality, for GIF the colours.
_ATTEMPTS: dict[ClipFormat, tuple[int, ...]] = {
    "mp4": (20, 26, 32),
    "webp": (90, 75, 60),
    "gif": (256, 128),
}


def encode_clip(clip: Clip, clip_format: ClipFormat, *, max_bytes: int | None = None) -> EncodedClip:
    """Encode ``clip`` as MP4, animated WebP or GIF; under ``max_bytes`` when given.

    When the first attempt is too large: lower quality (see ``_ATTEMPTS``), then smaller frames,
    each step estimated from the overshoot, as :func:`nst_engine.imaging.encode_image` does.
    Raises ValueError when nothing fits even with tiny frames.
    """
    if clip_format not in _ATTEMPTS:
        raise ValueError(f"unknown clip format {clip_format!r}")
    if max_bytes is not None and max_bytes <= 0:
        raise ValueError(f"max_bytes must be positive, got {max_bytes}")
    current = clip
    while True:
        smallest: int | None = None
        for quality in _ATTEMPTS[clip_format]:
            data, size, durations = _encode_once(current, clip_format, quality)
            if max_bytes is None or len(data) <= max_bytes:
                return EncodedClip(data, clip_format, size[0], size[1], len(durations), durations)
            smallest = len(data) if smallest is None else min(smallest, len(data))
        assert max_bytes is not None and smallest is not None
        width, height = current.size
        if min(width, height) <= MIN_SIZE:
            raise ValueError(
                f"the clip cannot be encoded in {_bytes_text(max_bytes)}, even at {width}x{height} pixels"
            )
        factor = min(0.9, math.sqrt(max_bytes / smallest) * 0.9)
        shrink = max(factor, MIN_SIZE / min(width, height))
        dims = (max(MIN_SIZE, round(width * shrink)), max(MIN_SIZE, round(height * shrink)))
        frames = tuple(f.resize(dims, Image.Resampling.LANCZOS, reducing_gap=3.0) for f in clip.frames)
        current = replace(clip, frames=frames)


def _encode_once(
    clip: Clip, clip_format: ClipFormat, quality: int
) -> tuple[bytes, tuple[int, int], tuple[int, ...]]:
    if clip_format == "mp4":
        return _encode_mp4(clip, quality)
    if clip_format == "webp":
        buffer = io.BytesIO()
        first, *rest = clip.frames
        first.save(
            buffer,
            "WEBP",
            save_all=True,
            append_images=rest,
            duration=list(clip.durations_ms),
            loop=clip.plays,
            quality=quality,
            method=4,
        )
        return buffer.getvalue(), clip.size, clip.durations_ms
    return _encode_gif(clip, quality)


def _encode_gif(clip: Clip, colours: int) -> tuple[bytes, tuple[int, int], tuple[int, ...]]:
    """One palette for the whole clip, no dithering: a palette per frame, or dither noise, would
    change colours from frame to frame and bring back the flicker the painting avoided. GIF counts
    time in hundredths of a second, so each duration is rounded with the error carried to the next
    (the total stays right), and none is under 20 ms (see SHORTEST_FRAME_MS)."""
    width, height = clip.size
    sample_count = min(len(clip.frames), 8)
    picks = [
        clip.frames[round(k * (len(clip.frames) - 1) / max(1, sample_count - 1))] for k in range(sample_count)
    ]
    montage = Image.new("RGB", (width, height * len(picks)))
    for row, frame in enumerate(picks):
        montage.paste(frame, (0, row * height))
    palette = montage.quantize(colors=colours, method=Image.Quantize.MEDIANCUT)
    indexed = [frame.quantize(palette=palette, dither=Image.Dither.NONE) for frame in clip.frames]
    durations: list[int] = []
    carried = 0.0
    for duration in clip.durations_ms:
        wanted = duration + carried
        rounded = max(SHORTEST_FRAME_MS, round(wanted / 10) * 10)
        carried = wanted - rounded
        durations.append(rounded)
    options: dict[str, object] = {}
    if clip.plays != 1:  # no loop block: play once; the block counts repeats after the first play
        options["loop"] = 0 if clip.plays == 0 else clip.plays - 1
    buffer = io.BytesIO()
    first, *rest = indexed
    first.save(
        buffer, "GIF", save_all=True, append_images=rest, duration=durations, optimize=False, **options
    )
    return buffer.getvalue(), clip.size, tuple(durations)


def _encode_mp4(clip: Clip, crf: int) -> tuple[bytes, tuple[int, int], tuple[int, ...]]:
    """H.264 in yuv420p (what every phone and browser decodes), each side cut to an even number of
    pixels (yuv420p halves the colour planes), timed in milliseconds frame by frame (a GIF's
    uneven delays survive), without B-frames (so each packet's duration, set here, is the frame's:
    the MP4 muxer takes the last frame's display time from it). The index goes at the front
    ("faststart"), which FFmpeg writes by rewriting a finished file, hence the temporary file."""
    import av

    width, height = clip.size
    even = (width - width % 2, height - height % 2)
    if min(even) < 2:
        raise ValueError(f"a {width}x{height} clip is too small for MP4")
    starts: dict[int, int] = {}
    elapsed = 0
    for duration in clip.durations_ms:
        starts[elapsed] = duration
        elapsed += duration
    millisecond = Fraction(1, 1000)
    with tempfile.TemporaryDirectory(prefix="nst-clip-") as folder:
        path = os.path.join(folder, "clip.mp4")
        with av.open(path, mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264")
            stream.width, stream.height = even
            stream.pix_fmt = "yuv420p"
            stream.time_base = millisecond
            stream.codec_context.time_base = millisecond
            stream.options = {"crf": str(crf), "preset": "medium", "bf": "0"}

            def mux(packets: list[av.Packet[Any]]) -> None:
                for packet in packets:
                    if packet.pts is not None and packet.time_base is not None:
                        start_ms = round(packet.pts * packet.time_base * 1000)
                        packet.duration = round(Fraction(starts.get(start_ms, 0), 1000) / packet.time_base)
                    container.mux(packet)

            pts = 0
            for image, duration in zip(clip.frames, clip.durations_ms, strict=True):
                cropped = image if image.size == even else image.crop((0, 0, *even))
                frame = av.VideoFrame.from_ndarray(np.asarray(cropped.convert("RGB")), format="rgb24")
                frame.pts = pts
                frame.time_base = millisecond
                mux(stream.encode(frame))
                pts += duration
            mux(stream.encode(None))
        data = Path(path).read_bytes()
    return data, even, clip.durations_ms
