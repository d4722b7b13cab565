"""Gatys et al. style transfer: the optimisation loop and its public entry point ``stylize``.

One run is a small pyramid: the picture is first painted at a fraction of the final size, where
an evaluation is cheap, then upsampled and refined at each larger level. The objective is Gatys et
al.'s as neural-style (jcjohnson/neural-style) scales it, with its default weights (see
:mod:`nst_engine.losses`): what most people know as "the" neural style look. neural-style gets
there with 1000 L-BFGS iterations at full size from noise; this engine starts from the photo and
spends most of its iterations where they are cheap (see ``split_iterations`` and
docs/benchmarks.md, "vs neural-style").
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from . import device as devices
from . import tiling, timebudget, vgg
from .cache import StyleTargetCache
from .errors import Cancelled, InvalidImage, ParameterError
from .eta import EtaModel
from .losses import content_loss, gram_matrix, style_loss, tv_loss
from .params import MIN_SIZE, StyleParams
from .tensors import (
    image_to_tensor,
    luminance_as_rgb,
    resize,
    resize_style,
    scaled_dimensions,
    tensor_to_image,
    with_chroma_of,
)

log = logging.getLogger(__name__)

#: Pyramid levels whose longest side would be under this are skipped: VGG19's deepest style layer
#: sees a 4x4 grid at 64 px, too coarse for brush strokes to mean anything.
PYRAMID_MIN_SIDE = 128
#: Memory L-BFGS may use for its history of steps (see ``lbfgs_history``).
LBFGS_HISTORY_BYTES = 1 << 30
#: Share of a memory budget L-BFGS's history may take (at 1024 px its default 50 steps are 0.9 GB).
HISTORY_BUDGET_SHARE = 0.1
#: Share of a pyramid run's iterations spent at full size (see ``split_iterations``).
TOP_LEVEL_SHARE = 0.22
#: A run continued from an earlier result (``start_from``) gives each new level this share of the
#: iterations it would get in a run from scratch (see ``continued_iterations``): 22 of the default
#: 33 at full size. Measured on a 2x upscale (tubingen x starry_night, 256 -> 512 px, judge's
#: terms): after 11, 22 and 33 iterations the style term was 1985, 1226 and 1149 against the
#: bicubic resize's 102700 and a run from scratch's 1073, the content term 4.45e5, 3.69e5 and 3.37e5
#: against 4.16e5 and 3.34e5, for 0.21, 0.45 and 0.67 of the time from scratch. At 22 the content is
#: already better than the bicubic resize's and the objective within 11% of the run from scratch,
#: at under half its time (docs/benchmarks.md, "Bigger pictures").
CONTINUE_SHARE = 2 / 3


@dataclass(frozen=True)
class StyleImage:
    """A style image with a label (e.g. a preset name) for the caller; the run reads only the image."""

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
    #: Share of the run done by time: elapsed / (elapsed + eta), never going back, 1.0 at the end.
    #: None in a report made without it (then ``fraction`` counts iterations).
    time_fraction: float | None = None
    frame: int = 1  #: the clip's frame being painted, 1-based (a still is frame 1 of 1)
    frames: int = 1  #: frames the clip has to paint

    @property
    def fraction(self) -> float:
        """How much of the run is done, 0..1, for progress bars: by time once the ETA is known.

        Iterations are a poor measure: a default run spends half of them at the coarsest level,
        where one costs a sixteenth of one at full size, so a count reached 50% after 14 s of a
        94 s job and then crawled.
        """
        if self.time_fraction is not None:
            return self.time_fraction
        return self.step / self.total if self.total else 1.0


@dataclass(frozen=True)
class RunStats:
    iterations: int
    evaluations: int
    seconds: float
    content_loss: float  #: weighted losses at the last evaluation of the final level
    style_loss: float
    tv_loss: float
    total_loss: float
    device: str
    precision: str
    peak_memory_bytes: int  #: GPU allocator peak on CUDA, process peak RSS on the CPU
    width: int
    height: int
    levels: int
    seed: int
    style_targets_cached: int  #: how many style targets came from the disk cache

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Result:
    image: Image.Image  #: the painting, RGB, longest side == params.size
    stats: RunStats


ProgressCallback = Callable[[Progress], None]
#: An extra term added to a run's loss, of the image being optimised (a clip's temporal loss).
ExtraLoss = Callable[[torch.Tensor], torch.Tensor]
#: Blended style Gram targets by level size, shared by the runs of one clip's frames.
StyleTargetMemo = dict[tuple[int, int], dict[str, torch.Tensor]]


# ---------------------------------------------------------------------------- public API
def preload(params: StyleParams | None = None) -> None:
    """Load (and cache) the model ``params`` would use, so the first job doesn't pay for it."""
    params = params or StyleParams()
    setup = devices.resolve(params.device, params.precision)
    vgg.get_model(params.weights, params.pooling, setup.device)


def stylize(
    content: Image.Image,
    styles: Sequence[Image.Image | StyleImage],
    params: StyleParams | None = None,
    *,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    preview_every: int = 0,
    preview_size: int = 256,
    style_cache: StyleTargetCache | None = None,
    start_from: Image.Image | None = None,
) -> Result:
    """Paint ``content`` in the style of ``styles``. Blocking; run it in a worker thread.

    ``progress`` is called after every iteration (from this thread); ``cancel`` is checked at every
    loss evaluation and makes the run raise :class:`~nst_engine.errors.Cancelled`;
    ``preview_every`` > 0 attaches a preview image (longest side ``preview_size``) every N steps and
    at the end of each pyramid level; ``style_cache`` reuses style Gram targets across runs.

    ``start_from`` continues an earlier result of the same photo (e.g. a 512 px painting to paint
    at 1024 px): only the pyramid levels larger than it are painted, starting from it upsampled
    with the photo's detail added back, against style targets at the new size (see
    ``continued_iterations``). It must have the photo's aspect ratio (up to rounding) and be at
    most ``params.size``; otherwise :class:`~nst_engine.errors.ParameterError`.
    """
    params = params or StyleParams()
    style_images = checked_inputs([content], styles, preview_every)
    blend = params.style_blend_for(len(style_images))
    if start_from is not None:
        check_start_from(content.size, start_from, params.size)
    setup = devices.resolve(params.device, params.precision)
    model = vgg.get_model(params.weights, params.pooling, setup.device)
    run = _Run(
        model=model,
        setup=setup,
        params=params,
        content=content.convert("RGB"),
        styles=[s.convert("RGB") for s in style_images],
        blend=blend,
        progress=progress,
        cancel=cancel,
        preview_every=preview_every,
        preview_size=preview_size,
        style_cache=style_cache,
        start_from=None if start_from is None else start_from.convert("RGB"),
    )
    return run.execute()


def check_start_from(photo_size: tuple[int, int], start_from: Image.Image, size: int) -> None:
    """Refuse an earlier result that is not of this photo's shape, or larger than the new size.

    An earlier result of the photo at longest side L is ``scaled_dimensions(photo, L)``: anything
    more than a pixel off that (rounding) is another picture, or a crop.
    """
    if not isinstance(start_from, Image.Image):
        raise ParameterError("start_from", f"expected a PIL image, got {type(start_from).__name__}")
    width, height = start_from.size
    expected = scaled_dimensions(*photo_size, max(width, height))
    if abs(expected[0] - width) > 1 or abs(expected[1] - height) > 1:
        raise ParameterError(
            "start_from",
            f"the earlier result is {width}×{height} but the photo is {photo_size[0]}×{photo_size[1]}; "
            "continue from a result of this photo (same aspect ratio)",
        )
    if max(width, height) > size:
        raise ParameterError(
            "start_from",
            f"the earlier result ({width}×{height}) is larger than the size asked for ({size} px)",
        )


def continued_iterations(counts: Sequence[int]) -> list[int]:
    """Iterations of the levels a continued run paints: ``CONTINUE_SHARE`` of those they get in a
    run from scratch (``counts``), at least one each."""
    return [max(1, round(n * CONTINUE_SHARE)) for n in counts]


def checked_inputs(
    pictures: Sequence[Image.Image], styles: Sequence[Image.Image | StyleImage], preview_every: int
) -> list[Image.Image]:
    """The style pictures of a run (a still's or a clip's), after checking what the caller passed:
    at least one style, PIL images only, and a preview cadence that is 0 or positive."""
    style_images = [s.image if isinstance(s, StyleImage) else s for s in styles]
    if not style_images:
        raise ParameterError("styles", "at least one style image is needed")
    for image in [*pictures, *style_images]:
        if not isinstance(image, Image.Image):
            raise ParameterError("images", f"expected PIL images, got {type(image).__name__}")
    if preview_every < 0:
        raise ParameterError("preview_every", "must be 0 (off) or a positive number of steps")
    return style_images


# ---------------------------------------------------------------------------- the run
@dataclass
class _Level:
    index: int
    width: int
    height: int
    iterations: int
    content_target: torch.Tensor
    style_targets: dict[str, torch.Tensor]
    content_image: torch.Tensor  # what the content looks like at this level (luminance if preserving)
    forward_seconds: float = 0.0  #: one warm forward pass at this size (the ETA's cost ratio of levels)
    #: The tiles an evaluation is split into when it does not fit the memory budget; () = whole.
    tiles: tuple[tiling.Tile, ...] = ()

    @property
    def pixels(self) -> int:
        return self.width * self.height


def split_iterations(total: int, levels: int) -> list[int]:
    """Iterations per pyramid level, coarsest first.

    The finest level gets ``TOP_LEVEL_SHARE`` of them: it costs four times the next one per
    iteration and sets the final detail. The coarser levels share the rest, halving per level,
    since they are cheap and fix the layout. Every level gets at least one.
    """
    if levels == 1:
        return [total]
    if total < levels:
        raise ParameterError("iterations", f"must be at least {levels} for {levels} scales")
    top = max(1, round(total * TOP_LEVEL_SHARE))
    rest = total - top
    shares = [2.0 ** (levels - 2 - k) for k in range(levels - 1)]
    counts = [max(1, int(rest * share / sum(shares))) for share in shares] + [top]
    counts[0] += total - sum(counts)
    if counts[0] < 1:  # tiny totals: take the shortfall from the largest count
        counts[counts.index(max(counts))] -= 1 - counts[0]
        counts[0] = 1
    return counts


def lbfgs_history(numel: int, max_bytes: int = LBFGS_HISTORY_BYTES) -> int:
    """L-BFGS keeps two vectors the size of the image per remembered step: 50 steps are 240 MB at
    512 px but 15 GB at 4096x3072, more than the activations. Above ``LBFGS_HISTORY_BYTES`` the
    memory is shorter (never under 5 steps, where L-BFGS still converges well). Under a memory
    budget, ``max_bytes`` is ``HISTORY_BUDGET_SHARE`` of it when that is less."""
    fits = max_bytes // (2 * 4 * max(1, numel))
    return int(max(5, min(50, fits)))


def upsample_with_detail(image: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The start of a finer level: the coarser level's painting upsampled to ``content``'s size,
    with the photo's fine detail added back.

    A coarse level cannot hold what lies above its resolution, so a plain upsample is blurred; the
    finer level would spend its expensive iterations re-drawing the photo's edges. Adding the band
    the coarse level could not see (the content minus its own down-and-up-sampled copy, one step
    of a Laplacian pyramid) gives it those edges at once, and it paints strokes at its own scale.

    This engine used to also pull each start 70% of the way back to the photo, tuned when each
    style layer's loss was normalised by its own target's energy. Measured against neural-style's
    objective, that pull undid most of what the coarse levels had painted (the painting's colours
    above all), so it is gone: the coarse levels now hand over their colours and layout as they are.
    """
    size = (content.shape[2], content.shape[3])
    coarse = (image.shape[2], image.shape[3])
    upsampled = F.interpolate(image, size=size, mode="bicubic", align_corners=False)
    blurred_content = F.interpolate(
        F.interpolate(content, size=coarse, mode="area"), size=size, mode="bicubic", align_corners=False
    )
    return (upsampled + (content - blurred_content)).clamp(0, 255)


class _OutOfTime(Exception):
    """The time budget has no room for another evaluation at this level."""


class _Run:
    #: The clock every timing of a run reads (tests put a simulated one here).
    clock: Callable[[], float] = staticmethod(time.perf_counter)

    def __init__(
        self,
        *,
        model: vgg.VGGFeatures,
        setup: devices.ComputeSetup,
        params: StyleParams,
        content: Image.Image,
        styles: list[Image.Image],
        blend: tuple[float, ...],
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
        preview_every: int,
        preview_size: int,
        style_cache: StyleTargetCache | None,
        start_from: Image.Image | None = None,
        start_image: torch.Tensor | None = None,
        extra_loss: ExtraLoss | None = None,
        style_memo: StyleTargetMemo | None = None,
        lbfgs_dtype: torch.dtype = torch.float32,
    ) -> None:
        self.model = model
        self.setup = setup
        self.params = params
        self.content = content
        self.styles = styles
        self.blend = blend
        self.progress = progress
        self.cancel = cancel
        self.preview_every = preview_every
        self.preview_size = preview_size
        self.style_cache = style_cache
        self.device = setup.device
        self.evaluations = 0
        self.cached_targets = 0
        self.last_losses: tuple[torch.Tensor, ...] | None = None
        self.current: torch.Tensor | None = None  # the picture being optimised, for previews
        #: Precision of the loss evaluations: the run's, until reduced precision stalls a level.
        self.loss_setup = setup
        self.start_from = start_from
        #: Clock time by which the run must end (``params.time_budget``), and what an evaluation at
        #: the current level costs: no evaluation starts that would end after the deadline.
        self.deadline: float | None = None
        self.evaluation_seconds = 0.0
        #: The lowest-loss picture of the current level (kept under a time budget; see ``_OutOfTime``).
        self.best: tuple[float, torch.Tensor] | None = None
        self.reported_fraction = 0.0
        self.memory_budget: int | None = None
        self.memory_at_start = 0
        self.history_bytes = LBFGS_HISTORY_BYTES  #: L-BFGS's history, less under a tight budget
        #: A clip's later frames (nst_engine.animation): the first level starts from this picture
        #: instead of the photo, ``extra_loss`` joins the loss, and ``style_memo`` keeps the style
        #: targets from one frame's run to the next.
        self.start_image = start_image
        self.extra_loss = extra_loss
        self.style_memo = style_memo
        #: The dtype of L-BFGS's variables and history. float64 for a run that starts near an
        #: optimum (a clip's later frame): its first step is then often rejected, and the line
        #: search's cubic fit squares directional derivatives of ~1e20 (the losses are scaled
        #: up, see ``_lbfgs_pass``), which overflows float32 into NaN. The network stays float32.
        self.lbfgs_dtype = lbfgs_dtype

    # -- set-up ---------------------------------------------------------------
    def _level_sizes(self) -> list[tuple[int, int]]:
        width, height = self.content.size
        full = scaled_dimensions(width, height, self.params.size)
        if min(full) < MIN_SIZE:
            raise InvalidImage(
                f"At {full[0]}×{full[1]} pixels the picture is too thin to paint; "
                "use a less elongated image or a larger size."
            )
        sizes = [full]
        for k in range(1, self.params.scales):
            longest = round(self.params.size / 2**k)
            dims = scaled_dimensions(width, height, longest)
            if longest < PYRAMID_MIN_SIDE or min(dims) < MIN_SIZE:
                break
            sizes.insert(0, dims)
        return sizes

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled()

    def _features(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        with devices.no_grad_autocast(self.setup):
            return {k: v.float() for k, v in self.model(image).items()}

    def _style_targets(
        self, dims: tuple[int, int], content_image: torch.Tensor, tiled: bool = False
    ) -> dict[str, torch.Tensor]:
        """Blended Gram targets of all style images at the level's scale (``tiled``: computed in
        tiles, when the level is painted in tiles)."""
        if self.style_memo is not None and dims in self.style_memo:
            return self.style_memo[dims]
        blended: dict[str, torch.Tensor] = {}
        longest = max(dims)
        for style, weight in zip(self.styles, self.blend, strict=True):
            if weight == 0:
                continue
            self._check_cancel()
            image = resize_style(style, scaled_dimensions(*style.size, longest))
            tensor = image_to_tensor(image, self.device)
            if self.params.preserve_color:
                tensor = luminance_as_rgb(tensor, match=content_image)
            grams = self._cached_grams(tensor, tiled)
            for name, gram in grams.items():
                blended[name] = blended.get(name, 0) + weight * gram.to(self.device)
        if self.style_memo is not None:
            self.style_memo[dims] = blended
        return blended

    def _cached_grams(self, tensor: torch.Tensor, tiled: bool = False) -> dict[str, torch.Tensor]:
        key = None
        if self.style_cache is not None:
            pixels = tensor.round().clamp(0, 255).to(torch.uint8).cpu().numpy().tobytes()
            parts = (
                self.model.source, self.params.pooling, self.setup.precision,
                self.setup.device.type, tuple(tensor.shape), vgg.STYLE_LAYERS,
            )  # fmt: skip
            key = StyleTargetCache.key(pixels, parts=parts)
            cached = self.style_cache.load(key)
            if cached is not None and set(cached) == set(vgg.STYLE_LAYERS):
                self.cached_targets += 1
                return cached
        tiles = self._tiles(tensor.shape[3], tensor.shape[2]) if tiled else ()
        if tiles:
            grams = tiling.tiled_grams(self._features, tensor, tiles, vgg.STYLE_LAYERS)
        else:
            features = self._features(tensor)
            grams = {name: gram_matrix(features[name]) for name in vgg.STYLE_LAYERS}
        if self.style_cache is not None and key is not None:
            self.style_cache.store(key, grams)
        return grams

    def _prepare_levels(self) -> list[_Level]:
        sizes = self._level_sizes()
        counts = split_iterations(self.params.iterations, len(sizes))
        if self.start_from is not None:  # paint only the levels larger than the earlier result
            earlier = max(self.start_from.size)
            new = [i for i, dims in enumerate(sizes) if max(dims) > earlier] or [len(sizes) - 1]
            sizes = [sizes[i] for i in new]
            counts = continued_iterations([counts[i] for i in new])
        self.memory_budget = tiling.memory_budget_bytes(self.params.memory_budget, self.device)
        self.memory_at_start = tiling.memory_in_use(self.device)
        if self.params.memory_budget is not None and self.memory_budget is not None:
            self.history_bytes = min(LBFGS_HISTORY_BYTES, int(self.memory_budget * HISTORY_BUDGET_SHARE))
        timed = len(sizes) > 1 or self.params.time_budget is not None
        levels = []
        for index, (dims, count) in enumerate(zip(sizes, counts, strict=True)):
            self._check_cancel()
            content_image = image_to_tensor(resize(self.content, dims), self.device)
            if self.params.preserve_color:
                content_image = luminance_as_rgb(content_image)
            tiles = self._tiles(*dims)
            if tiles:
                content_target = tiling.tiled_feature_map(
                    self._features, content_image, tiles, vgg.CONTENT_LAYERS[0]
                )
            else:
                content_target = self._features(content_image)[vgg.CONTENT_LAYERS[0]]
            levels.append(
                _Level(
                    index=index,
                    width=dims[0],
                    height=dims[1],
                    iterations=count,
                    content_target=content_target,
                    style_targets=self._style_targets(dims, content_image, tiled=bool(tiles)),
                    content_image=content_image,
                    forward_seconds=self._timed_forward(content_image, tiles) if timed else 0.0,
                    tiles=tiles,
                )
            )
            if tiles:
                log.info(
                    "level %d (%dx%d) is painted in %d tiles to fit the memory budget",
                    index + 1,
                    *dims,
                    len(tiles),
                )
        return levels

    def _tiles(self, width: int, height: int) -> tuple[tiling.Tile, ...]:
        """The tiles an evaluation at this size is split into to fit the memory budget; () = whole.

        Planned with fp32's memory whatever the run's precision: a level that stalls in reduced
        precision goes on in fp32 (``_optimise_lbfgs``).
        """
        if self.memory_budget is None:
            return ()
        state = tiling.level_state_bytes(width, height, lbfgs_history(3 * width * height, self.history_bytes))
        available = tiling.available_for_evaluation(self.memory_budget, self.memory_at_start, state)
        if self.params.memory_budget is None:  # the default budget: never refuse what used to run
            try:
                tiles = tiling.plan_tiles(width, height, available, "fp32") if available > 0 else []
            except ParameterError:
                tiles = []
            if not tiles:
                log.warning("%dx%d may not fit in the memory free; painting it whole", width, height)
            return tuple(tiles) if len(tiles) > 1 else ()
        if available <= 0:
            raise ParameterError(
                "memory_budget",
                f"{self.memory_budget / (1 << 30):.1f} GiB cannot hold a {width}×{height} picture "
                f"(about {(self.memory_at_start + state) / (1 << 30) * (1 + tiling.BUDGET_HEADROOM):.1f} GiB "
                "before any tile); allow more memory or ask for a smaller size",
            )
        tiles = tiling.plan_tiles(width, height, available, "fp32")
        return tuple(tiles) if len(tiles) > 1 else ()

    def _timed_forward(self, image: torch.Tensor, tiles: Sequence[tiling.Tile] = ()) -> float:
        """Seconds of a second, warm forward pass at this size (the first paid the size's set-up).

        The ETA predicts a level it has not reached from one it has, by the ratio of these: how a
        pass's cost grows with size depends on the device and its load (fixed costs dominate small
        sizes on a GPU or a busy CPU), so it is measured here rather than assumed. It costs one
        forward pass per level, under 1% of a pyramid run.
        """
        if tiles:  # time the largest tile, scaled to the whole picture's pixels
            largest = max(tiles, key=lambda tile: tile.crop_pixels)
            return (
                self._timed_forward(largest.crop(image))
                * image.shape[2]
                * image.shape[3]
                / largest.crop_pixels
            )
        devices.synchronize(self.device)
        started = self.clock()
        self._features(image)
        devices.synchronize(self.device)
        return self.clock() - started

    def _initial_image(self, level: _Level) -> torch.Tensor:
        if self.start_image is not None:
            return self.start_image.to(self.device)
        params = self.params
        generator = torch.Generator().manual_seed(params.seed)
        if params.init == "content":
            start = level.content_image.clone()
        elif params.init == "style":
            style = resize(self.styles[0], (level.width, level.height))
            start = image_to_tensor(style, self.device)
            if params.preserve_color:
                start = luminance_as_rgb(start, match=level.content_image)
        else:
            start = torch.full_like(level.content_image, 127.5)
        noise_share = 1.0 if params.init == "noise" else params.init_noise
        if noise_share > 0:
            noise = torch.randn(start.shape, generator=generator) * 64.0 + 127.5
            start = (1 - noise_share) * start + noise_share * noise.to(self.device)
        return start

    # -- optimisation ---------------------------------------------------------
    def _loss(self, image: torch.Tensor, level: _Level) -> torch.Tensor:
        self._check_cancel()
        p = self.params
        with self.loss_setup.autocast():
            features = self.model(image)
            scale = self.model.feature_scale
            content = content_loss(features[vgg.CONTENT_LAYERS[0]], level.content_target, scale)
            c = p.content_weight * content
            s = p.style_weight * p.style_strength * style_loss(features, level.style_targets, scale)
        t = p.tv_weight * tv_loss(image)
        total = c + s + t
        if self.extra_loss is not None:
            total = total + self.extra_loss(image)
        self.evaluations += 1
        self.last_losses = (c.detach(), s.detach(), t.detach(), total.detach())
        return total

    def _loss_and_backward(self, image: torch.Tensor, level: _Level, weight: float) -> torch.Tensor:
        """``weight`` x the level's loss at ``image``, its gradient accumulated into the leaf that
        ``image`` comes from: in one pass, or tile by tile (``tiling.tiled_losses``)."""
        if self.deadline is not None and self.clock() + self.evaluation_seconds > self.deadline:
            raise _OutOfTime()
        started = self.clock()
        if not level.tiles:
            loss = self._loss(image, level) * weight
            loss.backward()
        else:
            loss = self._tiled_loss(image, level, weight)
        if self.deadline is not None:
            self.evaluation_seconds = self.clock() - started
            value = float(loss.detach())
            if self.best is None or value < self.best[0]:
                self.best = (value, image.detach().clone())
        return loss

    def _tiled_loss(self, image: torch.Tensor, level: _Level, weight: float) -> torch.Tensor:
        p = self.params
        parts = tiling.tiled_losses(
            model=self.model,
            autocast=self.loss_setup.autocast,
            image=image,
            tiles=level.tiles,
            content_layer=vgg.CONTENT_LAYERS[0],
            content_target=level.content_target,
            style_targets=level.style_targets,
            feature_scale=self.model.feature_scale,
            content_weight=p.content_weight,
            style_weight=p.style_weight * p.style_strength,
            check_cancel=self._check_cancel,
        )
        leaf = image.detach().requires_grad_(True)
        t = p.tv_weight * tv_loss(leaf)
        t.backward()
        assert leaf.grad is not None
        image.backward((parts.gradient + leaf.grad) * weight)
        c = p.content_weight * parts.content
        s = p.style_weight * p.style_strength * parts.style
        total = c + s + t.detach()
        self.evaluations += 1
        self.last_losses = (c, s, t.detach(), total)
        return total * weight

    def _optimise(
        self, image: torch.Tensor, level: _Level, on_iteration: Callable[[int], None]
    ) -> torch.Tensor:
        if self.params.optimizer == "adam":
            image = image.detach().requires_grad_(True)
            self.current = image
            optimizer = torch.optim.Adam([image], lr=self.params.adam_lr)
            for step in range(1, level.iterations + 1):
                optimizer.zero_grad(set_to_none=True)
                try:
                    self._loss_and_backward(image, level, 1.0)
                except _OutOfTime:
                    on_iteration(level.iterations)  # the rest counts as done for progress
                    break
                optimizer.step()
                on_iteration(step)
            return image.detach()
        return self._optimise_lbfgs(image, level, on_iteration)

    def _optimise_lbfgs(
        self, image: torch.Tensor, level: _Level, on_iteration: Callable[[int], None]
    ) -> torch.Tensor:
        """L-BFGS with strong-Wolfe line search over ``image = z * unit``, for the level's iterations.

        L-BFGS is invariant to scaling the variables except for its very first step, which
        torch makes one unit long in L1 norm over the whole image: a change of 1/N per pixel,
        far below what reduced precision can even see, and the line search then finds no
        decrease and gives up. Measuring ``z`` in units of N pixel values makes that first step
        about one pixel value per pixel; every later step is scaled by L-BFGS itself.

        Near convergence, bf16 losses are too coarse for the line search to see a decrease and
        L-BFGS stops early (at 128 px after about 150 iterations in a default run). The level goes
        on in fp32 with a fresh history, so a run does the iterations it was asked for: the
        picture keeps improving and the ETA stays right.
        """
        unit = float(image.numel())
        z = (image.detach() / unit).to(self.lbfgs_dtype).requires_grad_(True)
        self.loss_setup = self.setup  # each level starts in the run's precision
        self.best = None
        try:
            return self._lbfgs_passes(z, unit, level, on_iteration)
        except _OutOfTime:
            on_iteration(level.iterations)  # the rest counts as done for progress
            return self.best[1] if self.best is not None else (z * unit).detach().float()

    def _lbfgs_passes(
        self, z: torch.Tensor, unit: float, level: _Level, on_iteration: Callable[[int], None]
    ) -> torch.Tensor:
        done = 0
        while done < level.iterations:
            finished = self._lbfgs_pass(z, level, unit, level.iterations - done, done, on_iteration)
            done += finished
            if done >= level.iterations:
                break
            if self.loss_setup.precision != "fp32":
                log.debug(
                    "%s stalled at level %d after %d iterations; continuing in fp32",
                    self.loss_setup.precision,
                    level.index + 1,
                    done,
                )
                self.loss_setup = devices.ComputeSetup(self.setup.device, "fp32")
            elif finished == 0:
                log.info(
                    "level %d converged after %d of %d iterations", level.index + 1, done, level.iterations
                )
                break  # even fp32 sees no decrease: the level has converged
        if done < level.iterations:
            on_iteration(level.iterations)  # the skipped rest counts as done for progress
        return (z * unit).detach().float()

    def _lbfgs_pass(
        self,
        z: torch.Tensor,
        level: _Level,
        unit: float,
        iterations: int,
        offset: int,
        on_iteration: Callable[[int], None],
    ) -> int:
        """One L-BFGS run of at most ``iterations``; returns how many it finished."""
        optimizer = torch.optim.LBFGS(
            [z],
            lr=1.0,
            max_iter=iterations,
            max_eval=iterations * 2,
            tolerance_grad=0.0,  # run the iterations asked for: a predictable time and ETA
            tolerance_change=0.0,
            history_size=lbfgs_history(z.numel(), self.history_bytes),
            line_search_fn="strong_wolfe",
        )
        state = optimizer.state[z]
        reported = 0

        def closure() -> torch.Tensor:
            nonlocal reported
            # L-BFGS counts iterations in its state: a new count means the last one finished.
            done = state.get("n_iter", 0) - 1
            if done > reported:
                reported = done
                on_iteration(offset + done)
            optimizer.zero_grad(set_to_none=True)
            current = (z * unit).float()
            self.current = current
            # The losses are means, so their gradients are tiny; L-BFGS's curvature test
            # (y.s > 1e-10) assumes larger numbers. Scaling by the pixel count fixes that.
            return self._loss_and_backward(current, level, level.pixels)

        optimizer.step(closure)
        finished: int = state.get("n_iter", iterations)
        if state.get("t") == 0:  # the last line search found no decrease: that step was not taken
            finished -= 1
        finished = max(0, min(finished, iterations))
        if finished > reported:
            on_iteration(offset + finished)
        return finished

    # -- the whole run --------------------------------------------------------
    def execute(self) -> Result:
        started = self.clock()
        devices.reset_peak_memory(self.device)
        levels = self._prepare_levels()
        done_before = 0
        eta = EtaModel(levels)
        limit = self.params.time_budget if self.params.time_budget is not None else self.params.time_limit
        if limit is not None:
            self.deadline = started + limit
        image: torch.Tensor | None = None
        for level in levels:
            if self.params.time_budget is not None:
                self._plan_time(levels, level, eta)
            elif self.deadline is not None and level.index > 0:
                self._trim_to_limit(levels, level, eta)
            if image is None:
                image = (
                    self._initial_image(level) if self.start_from is None else self._continued_start(level)
                )
            else:
                image = upsample_with_detail(image, level.content_image)
            level_started = self.clock()
            level_evals_before = self.evaluations

            def on_iteration(
                step: int,
                level: _Level = level,
                offset: int = done_before,
                evals_before: int = level_evals_before,
                started_at: float = level_started,
            ) -> None:
                evals = self.evaluations - evals_before
                eta.observe(level, step, evals, self.clock() - started_at)
                total = sum(each.iterations for each in levels)
                self._report(offset + step, total, level, len(levels), started, eta, step)

            image = self._optimise(image, level, on_iteration).clamp(0, 255)
            done_before += level.iterations
        total = sum(level.iterations for level in levels)

        assert image is not None
        final = image
        if self.params.preserve_color:
            colour = image_to_tensor(resize(self.content, (final.shape[3], final.shape[2])), self.device)
            final = with_chroma_of(final, colour)
        c, s, t, tot = (float(x) for x in (self.last_losses or (torch.zeros(()),) * 4))
        stats = RunStats(
            iterations=total,
            evaluations=self.evaluations,
            seconds=self.clock() - started,
            content_loss=c,
            style_loss=s,
            tv_loss=t,
            total_loss=tot,
            device=str(self.device),
            precision=self.setup.precision,
            peak_memory_bytes=devices.peak_memory_bytes(self.device),
            width=final.shape[3],
            height=final.shape[2],
            levels=len(levels),
            seed=self.params.seed,
            style_targets_cached=self.cached_targets,
        )
        return Result(image=tensor_to_image(final), stats=stats)

    def _continued_start(self, level: _Level) -> torch.Tensor:
        """The first painted level's start in a continued run: the earlier result, upsampled with
        the photo's detail added back, as between the levels of one run."""
        assert self.start_from is not None
        start = image_to_tensor(self.start_from, self.device)
        if self.params.preserve_color:
            start = luminance_as_rgb(start)
        return upsample_with_detail(start, level.content_image)

    def _plan_time(self, levels: list[_Level], level: _Level, eta: EtaModel) -> None:
        """Fit the iterations of ``level`` and the levels after it to the time left.

        Before the first level the costs come from the timed forward passes; after it, from the
        cost the ETA model measured at the level before, scaled by size (``EtaModel``).
        """
        rest = levels[level.index :]
        measured = levels[level.index - 1] if level.index > 0 else None
        per_evaluation, per_iteration, seconds = self._costs_left(rest, eta, measured)
        planned = [other.iterations for other in rest]
        if measured is None:
            total = timebudget.largest_total(
                lambda n: timebudget.proportional(planned, n), per_iteration, seconds, fewest=len(rest)
            )
            counts = timebudget.proportional(planned, total)
        else:
            counts = timebudget.rescaled(planned, per_iteration, seconds)
        for other, count in zip(rest, counts, strict=True):
            other.iterations = count
        self.evaluation_seconds = 2 * per_evaluation[0]  # the first pays the set-up
        log.debug("time plan from level %d: %s iterations", level.index + 1, counts)

    def _trim_to_limit(self, levels: list[_Level], level: _Level, eta: EtaModel) -> None:
        """Under a ``time_limit``: cut the iterations of ``level`` and the levels after it when,
        at the pace measured at the level before, they would end past the limit; never add any."""
        rest = levels[level.index :]
        per_evaluation, per_iteration, seconds = self._costs_left(rest, eta, levels[level.index - 1])
        planned = [other.iterations for other in rest]
        self.evaluation_seconds = 2 * per_evaluation[0]  # the first pays the set-up
        if sum(n * cost for n, cost in zip(planned, per_iteration, strict=True)) <= seconds:
            return
        fitted = timebudget.rescaled(planned, per_iteration, seconds)
        counts = [min(n, before) for n, before in zip(fitted, planned, strict=True)]
        for other, count in zip(rest, counts, strict=True):
            other.iterations = count
        log.info("time limit: iterations from level %d cut from %s to %s", level.index + 1, planned, counts)

    def _costs_left(
        self, rest: list[_Level], eta: EtaModel, measured: _Level | None
    ) -> tuple[list[float], list[float], float]:
        """Seconds an evaluation and an iteration will cost at each of ``rest``, and the seconds
        left to spend on them before the deadline."""
        assert self.deadline is not None
        per_evaluation = [self._seconds_per_evaluation(other, eta, measured) for other in rest]
        per_iteration = [
            cost * (eta.evals_per_iteration if measured else timebudget.EVALUATIONS_PER_ITERATION)
            for cost in per_evaluation
        ]
        # Each level's first evaluation pays the new size's set-up: about one evaluation more.
        seconds = (self.deadline - self.clock()) * timebudget.PLAN_SHARE - sum(per_evaluation)
        return per_evaluation, per_iteration, seconds

    def _seconds_per_evaluation(self, level: _Level, eta: EtaModel, measured: _Level | None) -> float:
        overhead = tiling.tiling_overhead(level.tiles, level.width, level.height)
        if measured is not None and measured.index in eta.seconds_per_eval:
            before = tiling.tiling_overhead(measured.tiles, measured.width, measured.height)
            return eta.predicted_seconds_per_evaluation(level, measured) * overhead / before
        return level.forward_seconds * timebudget.EVALUATION_PER_FORWARD * overhead

    def _time_fraction(self, step: int, total: int, elapsed: float, eta: float | None) -> float:
        """elapsed / (elapsed + eta) once the ETA is known, never lower than the last report's,
        and 1.0 at the last step."""
        if step >= total:
            fraction = 1.0
        elif eta is None:
            fraction = step / total if total else 1.0
        else:
            fraction = elapsed / (elapsed + eta) if elapsed + eta > 0 else 1.0
        self.reported_fraction = max(self.reported_fraction, min(1.0, fraction))
        return self.reported_fraction

    def _report(
        self,
        step: int,
        total: int,
        level: _Level,
        levels: int,
        started: float,
        eta: EtaModel,
        level_step: int,
    ) -> None:
        if self.progress is None:
            return
        preview = None
        end_of_level = level_step >= level.iterations
        if (
            self.preview_every
            and self.current is not None
            and (step % self.preview_every == 0 or end_of_level)
        ):
            shown = self.current.detach()
            if self.params.preserve_color:
                colour = image_to_tensor(resize(self.content, (level.width, level.height)), self.device)
                shown = with_chroma_of(shown, colour)
            preview = tensor_to_image(shown)
            preview.thumbnail((self.preview_size, self.preview_size), Image.Resampling.LANCZOS)
        c, s, t, tot = (float(x) for x in (self.last_losses or (torch.zeros(()),) * 4))
        elapsed = self.clock() - started
        remaining = eta.remaining(level, level_step)
        if remaining is not None and self.deadline is not None:
            remaining = min(remaining, max(0.0, self.deadline - self.clock()))
        self.progress(
            Progress(
                step=step,
                total=total,
                level=level.index + 1,
                levels=levels,
                width=level.width,
                height=level.height,
                content_loss=c,
                style_loss=s,
                tv_loss=t,
                total_loss=tot,
                elapsed=elapsed,
                eta=remaining,
                preview=preview,
                time_fraction=self._time_fraction(step, total, elapsed, remaining),
            )
        )


__all__ = [
    "Progress",
    "Result",
    "RunStats",
    "StyleImage",
    "preload",
    "stylize",
]
