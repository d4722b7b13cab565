"""Painting a clip frame by frame without flicker: :func:`stylize_clip`.

Painted one by one, the frames of a clip flicker: each optimisation finds its own brush strokes,
and they jump from frame to frame. Ruder, Dosovitskiy and Brox ("Artistic style transfer for
videos", 2016) cure it with two changes, both here:

* each frame after the first starts from the previous painting, moved along the optical flow
  between the two photo frames (:mod:`nst_engine.flow`), so its strokes start where they were;
* a temporal loss keeps every pixel whose flow can be trusted close to that moved painting; where
  the flow is unreliable (something appears, a motion boundary) the frame paints freely.

Starting from the moved painting, a frame needs far fewer iterations than a still: the first frame
gets a still's whole plan (its pyramid and ``StyleParams.iterations``), the later ones
``ClipParams.frame_iterations`` at full size only (see docs/benchmarks.md, "Clips", for how few
keep the look). The style targets are computed once for the clip. A temporal weight of 0 paints
every frame as a still, on its own.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from . import device as devices
from . import vgg
from .cache import StyleTargetCache
from .clips import Clip, ClipParams
from .engine import (
    Progress,
    ProgressCallback,
    RunStats,
    StyleImage,
    StyleTargetMemo,
    _Run,
    checked_inputs,
    split_iterations,
)
from .errors import Cancelled
from .flow import flicker, flow_between, flow_tensor, reliable_mask, temporal_loss, warp
from .params import StyleParams
from .tensors import image_to_tensor, luminance_as_rgb, resize, scaled_dimensions


@dataclass(frozen=True)
class ClipStats:
    frames: int  #: frames painted (repeated frames are painted once)
    source_frames: int  #: frames of the clip that came in
    seconds: float
    frame_seconds: tuple[float, ...]  #: seconds of each painted frame, flow included
    iterations: int  #: over the whole clip
    first_frame: RunStats  #: the first frame's run (device, precision, losses, size...)
    temporal_weight: float
    #: Mean absolute change (0-255) between consecutive painted frames after moving the earlier one
    #: along the photo's flow, over the pixels whose flow is trusted (:func:`nst_engine.flow.flicker`).
    flicker: float
    photo_flicker: float  #: the same for the photo frames: the floor


@dataclass(frozen=True)
class _Motion:
    backward: torch.Tensor  #: flow from a frame to the previous one, (1, 2, H, W)
    mask: torch.Tensor  #: 1 where that flow can be trusted, (1, 1, H, W)


@dataclass(frozen=True)
class ClipResult:
    clip: Clip  #: the painted frames, with the input's timing and loop count
    stats: ClipStats


def stylize_clip(
    clip: Clip,
    styles: Sequence[Image.Image | StyleImage],
    params: StyleParams | None = None,
    clip_params: ClipParams | None = None,
    *,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    preview_every: int = 0,
    preview_size: int = 256,
    style_cache: StyleTargetCache | None = None,
) -> ClipResult:
    """Paint every frame of ``clip`` in the style of ``styles``. Blocking; run it in a worker thread.

    The arguments mean what they mean for :func:`nst_engine.stylize`. ``progress`` reports carry
    ``frame`` and ``frames``, ``step`` and ``total`` count iterations over the whole clip, and
    ``eta`` is the time left for the whole clip. ``cancel`` is checked at every loss evaluation
    and between frames.
    """
    params = params or StyleParams()
    clip_params = clip_params or ClipParams()
    style_images = checked_inputs([], styles, preview_every)
    painter = _ClipPainter(
        clip=clip,
        styles=[s.convert("RGB") for s in style_images],
        params=params,
        clip_params=clip_params,
        progress=progress,
        cancel=cancel,
        preview_every=preview_every,
        preview_size=preview_size,
        style_cache=style_cache,
    )
    return painter.paint()


def pyramid_cost_in_top_iterations(params: StyleParams, levels: int) -> float:
    """A still's plan in iterations at full size: each coarser level has a quarter of the pixels.

    Before the second frame has run, this turns the first frame's time into an estimate of a later
    frame's (``frame_iterations`` at full size).
    """
    counts = split_iterations(params.iterations, levels)
    return float(sum(count * 0.25 ** (levels - 1 - index) for index, count in enumerate(counts)))


class _ClipPainter:
    def __init__(
        self,
        *,
        clip: Clip,
        styles: list[Image.Image],
        params: StyleParams,
        clip_params: ClipParams,
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
        preview_every: int,
        preview_size: int,
        style_cache: StyleTargetCache | None,
    ) -> None:
        self.source = clip
        self.clip = clip.without_repeats()
        self.styles = styles
        self.params = params
        self.clip_params = clip_params
        self.progress = progress
        self.cancel = cancel
        self.preview_every = preview_every
        self.preview_size = preview_size
        self.style_cache = style_cache
        self.blend = params.style_blend_for(len(styles))
        self.setup = devices.resolve(params.device, params.precision)
        self.model = vgg.get_model(params.weights, params.pooling, self.setup.device)
        self.memo: StyleTargetMemo = {}
        self.temporal = clip_params.temporal_weight > 0
        #: Later frames: the previous painting moved along the flow, refined at full size only.
        self.frame_params = params.replace(scales=1, iterations=clip_params.frame_iterations)
        frames = len(self.clip.frames)
        later = self.frame_params.iterations if self.temporal else params.iterations
        self.total = params.iterations + (frames - 1) * later
        self.started = 0.0
        self.frame_seconds: list[float] = []
        self.time_fraction = 0.0

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled()

    def paint(self) -> ClipResult:
        self.started = time.perf_counter()
        width, height = self.clip.size
        dims = scaled_dimensions(width, height, self.params.size)
        photos = [resize(frame, dims) for frame in self.clip.frames]
        painted: list[Image.Image] = []
        motions: list[_Motion] = []
        first_stats: RunStats | None = None
        done = 0
        for index, frame in enumerate(self.clip.frames):
            self._check_cancel()
            frame_started = time.perf_counter()
            if index > 0:
                motions.append(self._motion(photos[index - 1], photos[index]))
            if index == 0 or not self.temporal:
                run = self._run(frame, self.params, index, done)
            else:
                previous = image_to_tensor(painted[-1], self.setup.device)
                run = self._temporal_run(frame, previous, motions[-1], index, done)
            result = run.execute()
            done += run.params.iterations
            first_stats = first_stats or result.stats
            painted.append(result.image)
            self.frame_seconds.append(time.perf_counter() - frame_started)
        assert first_stats is not None
        backward = [motion.backward for motion in motions]
        masks = [motion.mask for motion in motions]
        device = self.setup.device
        stats = ClipStats(
            frames=len(painted),
            source_frames=len(self.source.frames),
            seconds=time.perf_counter() - self.started,
            frame_seconds=tuple(self.frame_seconds),
            iterations=done,
            first_frame=first_stats,
            temporal_weight=self.clip_params.temporal_weight,
            flicker=flicker([image_to_tensor(p, device) for p in painted], backward, masks),
            photo_flicker=flicker([image_to_tensor(p, device) for p in photos], backward, masks),
        )
        return ClipResult(clip=dataclasses.replace(self.clip, frames=tuple(painted)), stats=stats)

    def _motion(self, previous_photo: Image.Image, photo: Image.Image) -> _Motion:
        """The flow between two photo frames (at the painting's size) and where it can be trusted."""
        device = self.setup.device
        before, after = np.asarray(previous_photo), np.asarray(photo)
        backward = flow_tensor(flow_between(after, before), device)
        forward = flow_tensor(flow_between(before, after), device)
        return _Motion(backward=backward, mask=reliable_mask(backward, forward))

    def _run(
        self,
        frame: Image.Image,
        params: StyleParams,
        index: int,
        done: int,
        *,
        start: torch.Tensor | None = None,
        target: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> _Run:
        extra = None
        if target is not None:
            warped, mask = target
            weight = self.clip_params.temporal_weight

            def extra(image: torch.Tensor) -> torch.Tensor:
                return weight * temporal_loss(image, warped, mask)

        return _Run(
            model=self.model,
            setup=self.setup,
            params=params,
            content=frame.convert("RGB"),
            styles=self.styles,
            blend=self.blend,
            progress=self._frame_progress(index, done) if self.progress else None,
            cancel=self.cancel,
            preview_every=self.preview_every,
            preview_size=self.preview_size,
            style_cache=self.style_cache,
            start_image=start,
            extra_loss=extra,
            style_memo=self.memo,
            lbfgs_dtype=torch.float64 if start is not None else torch.float32,
        )

    def _temporal_run(
        self, frame: Image.Image, previous: torch.Tensor, motion: _Motion, index: int, done: int
    ) -> _Run:
        moved = warp(previous, motion.backward)
        if self.params.preserve_color:
            # The run optimises luminance (its content is grey); the painting it gets back carries
            # the photo's colours, which the temporal loss must not pull towards.
            moved = luminance_as_rgb(moved)
        return self._run(frame, self.frame_params, index, done, start=moved, target=(moved, motion.mask))

    def _frame_progress(self, index: int, done: int) -> ProgressCallback:
        """Re-label a frame's reports for the whole clip: frame k of n, steps and ETA over the clip."""
        assert self.progress is not None
        report = self.progress
        frames = len(self.clip.frames)
        frame_started = time.perf_counter()

        def on_progress(update: Progress) -> None:
            eta = None
            elapsed = time.perf_counter() - self.started
            if update.eta is not None:
                frame_total = (time.perf_counter() - frame_started) + update.eta
                later = self._later_frame_seconds(index, update, frame_total)
                eta = update.eta + (frames - index - 1) * later
                # The share of the clip done by time, never going back (a frame's own restarts).
                share = elapsed / (elapsed + eta) if elapsed + eta > 0 else 1.0
                self.time_fraction = max(self.time_fraction, share)
            report(
                dataclasses.replace(
                    update,
                    step=done + update.step,
                    total=self.total,
                    elapsed=elapsed,
                    eta=eta,
                    time_fraction=self.time_fraction if eta is not None else None,
                    frame=index + 1,
                    frames=frames,
                )
            )

        return on_progress

    def _later_frame_seconds(self, index: int, update: Progress, frame_total: float) -> float:
        """Seconds a frame still to come will take: the mean of the later frames painted so far;
        from the current frame's estimate while there are none."""
        later = self.frame_seconds[1:]
        if later:
            return sum(later) / len(later)
        if index > 0 or not self.temporal:
            return frame_total
        pyramid = pyramid_cost_in_top_iterations(self.params, update.levels)
        return frame_total * self.frame_params.iterations / pyramid


__all__ = ["ClipResult", "ClipStats", "stylize_clip"]
