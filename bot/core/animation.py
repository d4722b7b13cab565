"""Animations as jobs: what a backend returns for one, what it will cost, and the file that is posted.

An animation job (:attr:`~bot.core.requests.JobKind.ANIMATE`) paints a clip with
:func:`nst_engine.stylize_clip`. Its result, :class:`AnimatedResult`, is an engine
:class:`~nst_engine.Result` (its first frame and the stats of the whole clip) that also carries the
painted frames (painted in this process) or the file the workers encoded them into, so the rest of
a job's life (records, buttons, re-runs) is a still's. :func:`fit_animation` makes the file posted
under the channel's upload limit; :class:`Pace` estimates how long a clip will take, for the
acknowledgement, from the clips this bot painted before.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nst_engine.engine import Result

from . import texts

if TYPE_CHECKING:
    from nst_engine import RunStats, StyleParams
    from nst_engine.animation import ClipResult, ClipStats
    from nst_engine.clips import Clip, ClipFormat, ClipParams


@dataclass(frozen=True)
class AnimatedResult(Result):
    """A painted clip. ``image`` is its first frame; ``stats`` are the first frame's run with the
    iterations and seconds of the whole clip (what the embed and the record show)."""

    frames: int = 1  #: frames painted (a frame repeated in the input is painted once)
    clip: Clip | None = None  #: the painted frames with the input's timing (painted in this process)
    file: bytes | None = None  #: or the file the workers encoded them into, in ``file_format``
    file_format: ClipFormat | None = None

    @classmethod
    def painted(cls, result: ClipResult) -> AnimatedResult:
        return cls(
            image=result.clip.frames[0],
            stats=clip_run_stats(result.stats),
            frames=result.stats.frames,
            clip=result.clip,
        )


def clip_run_stats(stats: ClipStats) -> RunStats:
    """A clip's stats as one run's: the first frame's, with the whole clip's iterations and time."""
    return dataclasses.replace(stats.first_frame, iterations=stats.iterations, seconds=stats.seconds)


# ---------------------------------------------------------------------------- the posted file
@dataclass(frozen=True)
class PostedAnimation:
    data: bytes
    extension: ClipFormat
    #: Said with the result when the file is not what was painted: smaller frames, another format.
    note: str | None = None


#: The formats tried, in order, after the chosen one when it cannot fit at any size.
_FALLBACKS: tuple[ClipFormat, ...] = ("mp4", "gif")


def fit_animation(result: AnimatedResult, wanted: ClipFormat, max_bytes: int) -> PostedAnimation:
    """The file to post: ``wanted`` (the ``animation_format`` setting) under ``max_bytes``.

    The workers' file is posted as it is when it is in that format and fits. Otherwise the frames
    are encoded under the limit (:func:`nst_engine.encode_clip` lowers the quality, then the size);
    when the chosen format cannot fit even with tiny frames, MP4, then GIF. Raises ValueError when
    nothing fits. Blocks (encoding): call it in a thread.
    """
    if result.file is not None and result.file_format == wanted and len(result.file) <= max_bytes:
        return PostedAnimation(result.file, wanted)
    from nst_engine.clips import encode_clip

    clip = result.clip if result.clip is not None else _decoded(result)
    formats = [wanted, *(f for f in _FALLBACKS if f != wanted)]
    for clip_format in formats:
        try:
            encoded = encode_clip(clip, clip_format, max_bytes=max_bytes)
        except ValueError:
            continue
        note = None
        if clip_format != wanted:
            note = texts.animation_other_format(clip_format)
        elif encoded.width < clip.size[0] - 1:  # MP4 may drop one column to make the side even
            note = texts.animation_shrunk(encoded.width, encoded.height)
        return PostedAnimation(encoded.data, clip_format, note)
    raise ValueError(f"no clip format fits in {max_bytes} bytes")


def _decoded(result: AnimatedResult) -> Clip:
    """The workers' file read back (it came from our own encoder, within the job's limits)."""
    from nst_engine.clips import ClipLimits, decode_clip
    from nst_engine.params import MAX_SIZE

    assert result.file is not None
    frames = max(1, result.frames)
    limits = ClipLimits(
        max_frames=frames, max_seconds=24 * 3600.0, max_source_frames=frames, max_pixels=MAX_SIZE * MAX_SIZE
    )
    return decode_clip(result.file, limits)


# ---------------------------------------------------------------------------- the estimate
#: What one L-BFGS iteration costs on a 2-core CPU before this bot has painted a clip: a fixed part
#: (per-operation overheads, which dominate small frames) and a part per megapixel. From
#: docs/benchmarks.md: 0.27 s an evaluation at 256 px (256x192), about 1.2 evaluations an
#: iteration, so 0.32 s; 0.07 s an evaluation at 128 px. A 96x54 clip painted by the bot on the
#: same (busy) CPU took 0.16 s an iteration, frames' flow and set-up included.
FIXED_SECONDS_PER_ITERATION = 0.08
SECONDS_PER_MEGAPIXEL_ITERATION = 4.9


class Pace:
    """How long a clip will take: the cost model above, scaled by what the clips painted so far
    (by this process) took against it."""

    #: Weight of the newest clip in the running scale.
    SMOOTHING = 0.5

    def __init__(self) -> None:
        self.scale = 1.0

    def estimate(
        self, frames: int, size: tuple[int, int], params: StyleParams, clip_params: ClipParams
    ) -> float:
        """Seconds to paint ``frames`` frames of ``size`` (the clip's frames) with ``params``."""
        return self.scale * self._model(frames, size, params, clip_params)

    def learn(
        self, seconds: float, frames: int, size: tuple[int, int], params: StyleParams, clip_params: ClipParams
    ) -> None:
        modelled = self._model(frames, size, params, clip_params)
        if modelled > 0 and seconds > 0:
            self.scale = (1 - self.SMOOTHING) * self.scale + self.SMOOTHING * seconds / modelled

    @staticmethod
    def _model(frames: int, size: tuple[int, int], params: StyleParams, clip_params: ClipParams) -> float:
        """The first frame's pyramid (each coarser level half the side), then ``frame_iterations``
        per later frame at full size."""
        from nst_engine.engine import split_iterations
        from nst_engine.tensors import scaled_dimensions

        width, height = scaled_dimensions(size[0], size[1], params.size)
        megapixels = width * height / 1e6
        levels = max(1, min(params.scales, params.iterations))
        counts = split_iterations(params.iterations, levels)

        def iteration(level_megapixels: float) -> float:
            return FIXED_SECONDS_PER_ITERATION + SECONDS_PER_MEGAPIXEL_ITERATION * level_megapixels

        first = sum(
            count * iteration(megapixels * 0.25 ** (levels - 1 - k)) for k, count in enumerate(counts)
        )
        return first + (frames - 1) * clip_params.frame_iterations * iteration(megapixels)
