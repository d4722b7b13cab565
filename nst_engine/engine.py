"""Gatys et al. style transfer: the optimisation loop and its public entry point ``stylize``.

(Work in progress: the dataclasses below are the stable public API; ``stylize`` lands next.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from PIL import Image

from .params import StyleParams


@dataclass(frozen=True)
class StyleImage:
    """A style image with an optional blend weight override is just an image; this wrapper exists
    so callers can attach a human label (a preset name) that shows up in stats and logs."""

    image: Image.Image
    label: str = ""


@dataclass(frozen=True)
class Progress:
    """One report from a running job, sent to the ``progress`` callback from the worker thread."""

    step: int  #: iterations done so far, over all pyramid levels
    total: int  #: iterations the run will do
    level: int  #: pyramid level being optimised, 1-based
    levels: int  #: number of pyramid levels
    width: int  #: size of the level being optimised
    height: int
    content_loss: float
    style_loss: float
    tv_loss: float
    total_loss: float
    elapsed: float  #: seconds since the run started (model load excluded)
    eta: float | None  #: estimated seconds left, None until there is enough data
    preview: Image.Image | None = None  #: a small RGB preview, every ``preview_every`` steps

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total else 1.0


@dataclass(frozen=True)
class RunStats:
    iterations: int
    evaluations: int
    seconds: float
    content_loss: float
    style_loss: float
    tv_loss: float
    total_loss: float
    device: str
    precision: str
    peak_memory_bytes: int
    width: int
    height: int
    levels: int
    seed: int
    style_targets_cached: int  #: how many style images' Gram targets came from the disk cache

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Result:
    image: Image.Image  #: the painting, RGB, longest side == params.size
    stats: RunStats


ProgressCallback = Callable[[Progress], None]


def stylize(
    content: Image.Image,
    styles: Sequence[Image.Image | StyleImage],
    params: StyleParams | None = None,
    *,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    preview_every: int = 0,
    preview_size: int = 256,
    style_cache: Any = None,
) -> Result:
    """Paint ``content`` in the style of ``styles``. Blocking; run it in a worker thread.

    ``progress`` is called after every iteration (from this thread); ``cancel`` is checked at every
    loss evaluation and makes the run raise :class:`~nst_engine.errors.Cancelled`;
    ``preview_every`` > 0 attaches a preview image (longest side ``preview_size``) every N steps and
    at the end of each pyramid level; ``style_cache`` (a ``StyleTargetCache``) reuses style Gram
    targets across runs.
    """
    raise NotImplementedError("the engine lands in the next commit")
