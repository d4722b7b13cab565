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
from . import vgg
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
#: Share of a pyramid run's iterations spent at full size (see ``split_iterations``).
TOP_LEVEL_SHARE = 0.22


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

    @property
    def fraction(self) -> float:
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
) -> Result:
    """Paint ``content`` in the style of ``styles``. Blocking; run it in a worker thread.

    ``progress`` is called after every iteration (from this thread); ``cancel`` is checked at every
    loss evaluation and makes the run raise :class:`~nst_engine.errors.Cancelled`;
    ``preview_every`` > 0 attaches a preview image (longest side ``preview_size``) every N steps and
    at the end of each pyramid level; ``style_cache`` reuses style Gram targets across runs.
    """
    params = params or StyleParams()
    style_images = [s.image if isinstance(s, StyleImage) else s for s in styles]
    if not style_images:
        raise ParameterError("styles", "at least one style image is needed")
    for image in [content, *style_images]:
        if not isinstance(image, Image.Image):
            raise ParameterError("images", f"expected PIL images, got {type(image).__name__}")
    if preview_every < 0:
        raise ParameterError("preview_every", "must be 0 (off) or a positive number of steps")
    blend = params.style_blend_for(len(style_images))
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
    )
    return run.execute()


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


def lbfgs_history(numel: int) -> int:
    """L-BFGS keeps two vectors the size of the image per remembered step: 50 steps are 240 MB at
    512 px but 15 GB at 4096x3072, more than the activations. Above ``LBFGS_HISTORY_BYTES`` the
    memory is shorter (never under 5 steps, where L-BFGS still converges well)."""
    fits = LBFGS_HISTORY_BYTES // (2 * 4 * max(1, numel))
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


class _Run:
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

    def _style_targets(self, dims: tuple[int, int], content_image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Blended Gram targets of all style images at the level's scale."""
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
            grams = self._cached_grams(tensor)
            for name, gram in grams.items():
                blended[name] = blended.get(name, 0) + weight * gram.to(self.device)
        return blended

    def _cached_grams(self, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
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
        features = self._features(tensor)
        grams = {name: gram_matrix(features[name]) for name in vgg.STYLE_LAYERS}
        if self.style_cache is not None and key is not None:
            self.style_cache.store(key, grams)
        return grams

    def _prepare_levels(self) -> list[_Level]:
        sizes = self._level_sizes()
        counts = split_iterations(self.params.iterations, len(sizes))
        levels = []
        for index, (dims, count) in enumerate(zip(sizes, counts, strict=True)):
            self._check_cancel()
            content_image = image_to_tensor(resize(self.content, dims), self.device)
            if self.params.preserve_color:
                content_image = luminance_as_rgb(content_image)
            content_target = self._features(content_image)[vgg.CONTENT_LAYERS[0]]
            levels.append(
                _Level(
                    index=index,
                    width=dims[0],
                    height=dims[1],
                    iterations=count,
                    content_target=content_target,
                    style_targets=self._style_targets(dims, content_image),
                    content_image=content_image,
                    forward_seconds=self._timed_forward(content_image) if len(sizes) > 1 else 0.0,
                )
            )
        return levels

    def _timed_forward(self, image: torch.Tensor) -> float:
        """Seconds of a second, warm forward pass at this size (the first paid the size's set-up).

        The ETA predicts a level it has not reached from one it has, by the ratio of these: how a
        pass's cost grows with size depends on the device and its load (fixed costs dominate small
        sizes on a GPU or a busy CPU), so it is measured here rather than assumed. It costs one
        forward pass per level, under 1% of a pyramid run.
        """
        devices.synchronize(self.device)
        started = time.perf_counter()
        self._features(image)
        devices.synchronize(self.device)
        return time.perf_counter() - started

    def _initial_image(self, level: _Level) -> torch.Tensor:
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
        self.evaluations += 1
        self.last_losses = (c.detach(), s.detach(), t.detach(), total.detach())
        return total

    def _optimise(
        self, image: torch.Tensor, level: _Level, on_iteration: Callable[[int], None]
    ) -> torch.Tensor:
        if self.params.optimizer == "adam":
            image = image.detach().requires_grad_(True)
            self.current = image
            optimizer = torch.optim.Adam([image], lr=self.params.adam_lr)
            for step in range(1, level.iterations + 1):
                optimizer.zero_grad(set_to_none=True)
                self._loss(image, level).backward()
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
        z = (image.detach() / unit).requires_grad_(True)
        done = 0
        self.loss_setup = self.setup  # each level starts in the run's precision
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
        return (z * unit).detach()

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
            history_size=lbfgs_history(z.numel()),
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
            current = z * unit
            self.current = current
            # The losses are means, so their gradients are tiny; L-BFGS's curvature test
            # (y.s > 1e-10) assumes larger numbers. Scaling by the pixel count fixes that.
            loss = self._loss(current, level) * level.pixels
            loss.backward()
            return loss

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
        started = time.perf_counter()
        devices.reset_peak_memory(self.device)
        levels = self._prepare_levels()
        total = sum(level.iterations for level in levels)
        done_before = 0
        eta = EtaModel(levels)
        image: torch.Tensor | None = None
        for level in levels:
            if image is None:
                image = self._initial_image(level)
            else:
                image = upsample_with_detail(image, level.content_image)
            level_started = time.perf_counter()
            level_evals_before = self.evaluations

            def on_iteration(
                step: int,
                level: _Level = level,
                offset: int = done_before,
                evals_before: int = level_evals_before,
                started_at: float = level_started,
            ) -> None:
                evals = self.evaluations - evals_before
                eta.observe(level, step, evals, time.perf_counter() - started_at)
                self._report(offset + step, total, level, len(levels), started, eta, step)

            image = self._optimise(image, level, on_iteration).clamp(0, 255)
            done_before += level.iterations

        assert image is not None
        final = image
        if self.params.preserve_color:
            colour = image_to_tensor(resize(self.content, (final.shape[3], final.shape[2])), self.device)
            final = with_chroma_of(final, colour)
        c, s, t, tot = (float(x) for x in (self.last_losses or (torch.zeros(()),) * 4))
        stats = RunStats(
            iterations=total,
            evaluations=self.evaluations,
            seconds=time.perf_counter() - started,
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
                elapsed=time.perf_counter() - started,
                eta=eta.remaining(level, level_step),
                preview=preview,
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
