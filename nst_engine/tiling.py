"""Painting a picture larger than memory allows: the memory an evaluation needs, and tiles.

One evaluation (VGG19 forward and backward up to relu5_1, plus the losses) keeps every layer's
activations for the backward pass: about 2.1 KB per pixel in fp32 and 1.2 KB in bf16 on a CPU,
measured (``evaluation_bytes``). At 4096x3072 px that is 26-50 GB, more than this CPU host's
24 GiB or a 16 GB GPU. When a level's evaluation does not fit the memory budget, its loss is
evaluated over overlapping tiles, one at a time, and the gradients are put together:

* every tile is cut with a margin (``TILE_MARGIN``) around its own part of the picture, so the
  features of that part see what lies around it as they would in the whole picture; only the
  features over the tile's own part count, and the tiles' own parts partition the picture, so each
  feature position counts exactly once;
* the **style loss is the whole picture's**, not a sum of per-tile losses: the Gram matrix of the
  whole picture is the sum of its tiles' F·Fᵀ (over their own parts), so a first pass without
  gradients adds them up; the loss's gradient with respect to that Gram is then fixed, and a second
  pass back-propagates it tile by tile. The gradient is the untiled one up to the margin's
  approximation, so the optimiser sees the same objective as an untiled run. Comparing each tile's
  own Gram with the target instead (per-tile style losses) would ask every tile to hold the whole
  painting's mix of textures, a different objective from the one the judge measures;
* the content loss is a mean over positions: each tile adds its own part's squared errors;
* total variation is computed on the whole picture (it needs no network), so it crosses the seams.

Because it is one optimisation of one picture, there is nothing to blend and no seam: the tiles
only split the work of an evaluation, at the cost of the margins and the first pass (about a third
of an evaluation more, for a 1024 px tile with 64 px margins).
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .errors import ParameterError
from .losses import _Gram

#: Bytes per pixel of one evaluation's peak, by precision: measured on a CPU (peak RSS growth of a
#: forward and backward pass at 1024 and 1536 px: 2.0-2.1 KB fp32, 1.13-1.16 KB bf16), plus 10%.
EVAL_BYTES_PER_PIXEL = {"fp32": 2300, "bf16": 1300, "fp16": 1300}
#: What an evaluation needs beyond its pixels (Gram matrices, the allocator's slack).
EVAL_FIXED_BYTES = 64 << 20
#: Pixels of context around a tile's own part. VGG19's relu4_2 features (content) depend on pixels
#: up to about 90 px away and relu5_1's on more, but with quickly falling weight; 64 px keeps a
#: tiled evaluation's losses within a few tenths of a percent of the untiled ones (tests,
#: docs/benchmarks.md). A multiple of ``ALIGN``.
TILE_MARGIN = 64
#: Tiles start on multiples of this: VGG19's deepest style layer (relu5_1) has a stride of 16 px,
#: so a tile's feature grid then lines up with the whole picture's at every layer.
ALIGN = 16
#: Most tiles along a side: 64 px tiles of a 4096 px picture, far below any useful budget.
MAX_TILES_PER_SIDE = 64
#: Bytes per pixel of what a level keeps for the whole picture whatever the tiles: the picture,
#: its gradient and copies (ten 3-channel fp32 images), the L-BFGS working vectors (six), the
#: relu4_2 content target (512 channels at 1/64 of the pixels). L-BFGS's history comes on top.
LEVEL_STATE_BYTES_PER_PIXEL = (10 + 6) * 12 + 32
#: Share of the memory free at the start a run may plan for when no budget is given.
DEFAULT_BUDGET_SHARE = 0.75
#: Headroom kept under the budget for what the estimate leaves out (the allocator, temporaries).
BUDGET_HEADROOM = 0.1


def evaluation_bytes(width: int, height: int, precision: str) -> int:
    """Peak bytes of one evaluation (forward, backward and losses) of a ``width`` x ``height`` image."""
    return EVAL_FIXED_BYTES + EVAL_BYTES_PER_PIXEL[precision] * width * height


def level_state_bytes(width: int, height: int, history: int) -> int:
    """Bytes a level keeps for the whole picture, tiled or not (``history``: L-BFGS's steps)."""
    return (LEVEL_STATE_BYTES_PER_PIXEL + 2 * history * 12) * width * height


@dataclass(frozen=True)
class Tile:
    """One tile: its own part of the picture (``x0``..``x1``, ``y0``..``y1``) and the crop around
    it that is evaluated (``cx0``..``cx1``, ``cy0``..``cy1``, its own part plus the margin)."""

    x0: int
    y0: int
    x1: int
    y1: int
    cx0: int
    cy0: int
    cx1: int
    cy1: int

    @property
    def crop_pixels(self) -> int:
        return (self.cx1 - self.cx0) * (self.cy1 - self.cy0)

    def crop(self, image: torch.Tensor) -> torch.Tensor:
        return image[:, :, self.cy0 : self.cy1, self.cx0 : self.cx1]

    def own_features(self, features: torch.Tensor, stride: int) -> torch.Tensor:
        """The part of a tile's feature map (at ``stride`` px per position) over its own part."""
        left, top = self.cx0 // stride, self.cy0 // stride
        return features[
            :,
            :,
            self.y0 // stride - top : self.y1 // stride - top,
            self.x0 // stride - left : self.x1 // stride - left,
        ]

    def own_region(self, stride: int) -> tuple[slice, slice]:
        """Rows and columns of the whole picture's feature map that are this tile's own."""
        return slice(self.y0 // stride, self.y1 // stride), slice(self.x0 // stride, self.x1 // stride)


def _cuts(length: int, parts: int) -> list[int]:
    """``parts`` + 1 cut positions from 0 to ``length``, inner ones on multiples of ``ALIGN``."""
    inner = [round(length * k / parts / ALIGN) * ALIGN for k in range(1, parts)]
    return [0, *inner, length]


def _spans(length: int, parts: int, margin: int) -> list[tuple[int, int, int, int]]:
    """(own start, own end, crop start, crop end) of each of ``parts`` spans along one side."""
    cuts = _cuts(length, parts)
    return [
        (start, end, max(0, start - margin), min(length, end + margin))
        for start, end in itertools.pairwise(cuts)
        if end > start
    ]


def make_tiles(width: int, height: int, columns: int, rows: int, margin: int | None = None) -> list[Tile]:
    """A ``columns`` x ``rows`` grid of tiles with ``margin`` px of context (``TILE_MARGIN``), row by row."""
    margin = TILE_MARGIN if margin is None else margin
    return [
        Tile(x0, y0, x1, y1, cx0, cy0, cx1, cy1)
        for y0, y1, cy0, cy1 in _spans(height, rows, margin)
        for x0, x1, cx0, cx1 in _spans(width, columns, margin)
    ]


def plan_tiles(
    width: int, height: int, available: int, precision: str, margin: int | None = None
) -> list[Tile]:
    """The cheapest tiling whose largest tile's evaluation fits in ``available`` bytes.

    One tile (the whole picture, no margin) when it fits. Otherwise the grid with the fewest
    evaluated pixels (margins included) among those that fit. Raises ``ParameterError``
    (``memory_budget``) when even tiles of ``ALIGN`` px do not fit.
    """
    if evaluation_bytes(width, height, precision) <= available:
        return make_tiles(width, height, 1, 1, margin=0)
    margin = TILE_MARGIN if margin is None else margin
    best: tuple[int, int, int] | None = None  # (evaluated pixels, columns, rows)
    for columns in range(1, max(1, min(width // ALIGN, MAX_TILES_PER_SIDE)) + 1):
        across = [crop_end - crop_start for _, _, crop_start, crop_end in _spans(width, columns, margin)]
        for rows in range(1, max(1, min(height // ALIGN, MAX_TILES_PER_SIDE)) + 1):
            down = [crop_end - crop_start for _, _, crop_start, crop_end in _spans(height, rows, margin)]
            if evaluation_bytes(max(across), max(down), precision) > available:
                continue
            cost = sum(across) * sum(down)
            if best is None or cost < best[0]:
                best = (cost, columns, rows)
            break  # more rows for these columns only cost more
    if best is None:
        raise ParameterError(
            "memory_budget",
            f"is too small to paint {width}×{height} pixels, even in tiles; allow more memory",
        )
    return make_tiles(width, height, best[1], best[2], margin)


def layer_stride(name: str) -> int:
    """Pixels per feature position of a VGG19 layer named ``reluB_N``: 2^(B-1)."""
    return int(2 ** (int(name[4]) - 1))


Features = Callable[[torch.Tensor], dict[str, torch.Tensor]]


def tiled_feature_map(
    features: Features, image: torch.Tensor, tiles: Sequence[Tile], layer: str
) -> torch.Tensor:
    """``layer``'s feature map of the whole ``image``, computed tile by tile (no gradients)."""
    stride = layer_stride(layer)
    height, width = image.shape[2] // stride, image.shape[3] // stride
    whole: torch.Tensor | None = None
    for tile in tiles:
        own = tile.own_features(features(tile.crop(image))[layer], stride).float()
        if whole is None:
            whole = own.new_zeros((own.shape[0], own.shape[1], height, width))
        rows, cols = tile.own_region(stride)
        whole[:, :, rows, cols] = own
    assert whole is not None
    return whole


def tiled_grams(
    features: Features, image: torch.Tensor, tiles: Sequence[Tile], layers: Sequence[str]
) -> dict[str, torch.Tensor]:
    """The Gram matrices of the whole ``image`` at ``layers`` (as ``losses.gram_matrix``), tile by tile."""
    sums: dict[str, torch.Tensor] = {}
    for tile in tiles:
        out = features(tile.crop(image))
        for name in layers:
            sums[name] = sums.get(name, 0) + _own_product(tile, out[name], name).detach().float()
    return {name: total / _normaliser(image, name, total.shape[-1]) for name, total in sums.items()}


def _own_product(tile: Tile, features: torch.Tensor, name: str) -> torch.Tensor:
    """F·Fᵀ over the tile's own positions, unnormalised, shape (N, C, C)."""
    own = tile.own_features(features, layer_stride(name))
    n, c, h, w = own.shape
    flat = own.permute(0, 2, 3, 1).reshape(n, h * w, c)
    product: torch.Tensor = _Gram.apply(flat)
    return product


def _normaliser(image: torch.Tensor, name: str, channels: int) -> int:
    """C·H·W of ``name``'s feature map of the whole image: what ``gram_matrix`` divides by."""
    stride = layer_stride(name)
    return channels * (image.shape[2] // stride) * (image.shape[3] // stride)


@dataclass(frozen=True)
class TiledLosses:
    """Unweighted content and style losses of the whole picture, and the gradient of the
    weighted sum (content_weight x content + style_weight x style) with respect to the image."""

    content: torch.Tensor
    style: torch.Tensor
    gradient: torch.Tensor


def tiled_losses(
    *,
    model: Callable[[torch.Tensor], dict[str, torch.Tensor]],
    autocast: Callable[[], contextlib.AbstractContextManager[None]],
    image: torch.Tensor,
    tiles: Sequence[Tile],
    content_layer: str,
    content_target: torch.Tensor,
    style_targets: dict[str, torch.Tensor],
    feature_scale: float,
    content_weight: float,
    style_weight: float,
    check_cancel: Callable[[], None],
) -> TiledLosses:
    """The content and style losses of the whole ``image`` and their gradient, in two passes over
    the tiles (see the module's docstring); the same values as ``losses.content_loss`` and
    ``losses.style_loss`` on the whole image, up to the margins' approximation."""
    image = image.detach()
    content_stride = layer_stride(content_layer)
    # Pass 1, no gradients: the whole picture's Grams and content error.
    sums: dict[str, torch.Tensor] = {}
    content_sum = torch.zeros((), device=image.device)
    with torch.no_grad():
        for tile in tiles:
            check_cancel()
            with autocast():
                out = model(tile.crop(image))
            for name in style_targets:
                sums[name] = sums.get(name, 0) + _own_product(tile, out[name], name).float()
            rows, cols = tile.own_region(content_stride)
            own = tile.own_features(out[content_layer], content_stride).float()
            content_sum += (own - content_target[:, :, rows, cols]).pow(2).sum()
    content_count = content_target.numel()
    content = content_sum / content_count * feature_scale**2
    grams = {name: total / _normaliser(image, name, total.shape[-1]) for name, total in sums.items()}
    per_layer = [(grams[name] - target).pow(2).mean() for name, target in style_targets.items()]
    style = torch.stack(per_layer).sum() * feature_scale**4
    # d(style_weight x style)/d(Gram) per layer: fixed for this evaluation.
    gram_grads = {
        name: style_weight * feature_scale**4 * 2 * (grams[name] - target) / target.numel()
        for name, target in style_targets.items()
    }
    # Pass 2: back-propagate those and the content error tile by tile.
    gradient = torch.zeros_like(image)
    for tile in tiles:
        check_cancel()
        crop = tile.crop(image).clone().requires_grad_(True)
        with autocast():
            out = model(crop)
            surrogate = torch.zeros((), device=image.device)
            for name, grad in gram_grads.items():
                product = _own_product(tile, out[name], name).float()
                surrogate = surrogate + (grad * product).sum() / _normaliser(image, name, grad.shape[-1])
            rows, cols = tile.own_region(content_stride)
            own = tile.own_features(out[content_layer], content_stride).float()
            error = (own - content_target[:, :, rows, cols]).pow(2).sum()
            surrogate = surrogate + content_weight * feature_scale**2 * error / content_count
        surrogate.backward()
        assert crop.grad is not None
        gradient[:, :, tile.cy0 : tile.cy1, tile.cx0 : tile.cx1] += crop.grad
    return TiledLosses(content=content, style=style, gradient=gradient)


def memory_in_use(device: torch.device) -> int:
    """Bytes the process holds now: resident memory on a CPU, the allocator's on a GPU."""
    if device.type == "cuda":
        return int(torch.cuda.memory_allocated(device))
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        from .device import process_peak_rss_bytes

        return process_peak_rss_bytes()


def memory_free(device: torch.device) -> int | None:
    """Bytes the device could still give this process; None when it cannot be told."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        try:
            with open("/proc/meminfo") as meminfo:
                for line in meminfo:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError):
            return None
    return None


def memory_budget_bytes(budget_gib: float | None, device: torch.device) -> int | None:
    """The run's budget in bytes: the one asked for, else what is in use plus a safe share of what
    is free (``DEFAULT_BUDGET_SHARE``); None when nothing is known (no tiling then)."""
    if budget_gib is not None:
        return int(budget_gib * (1 << 30))
    free = memory_free(device)
    if free is None:
        return None
    return memory_in_use(device) + int(free * DEFAULT_BUDGET_SHARE)


def available_for_evaluation(budget: int, in_use: int, state: int) -> int:
    """What one evaluation may take of ``budget``: less what the process holds and the level keeps,
    and ``BUDGET_HEADROOM`` of the budget."""
    return budget - in_use - state - int(budget * BUDGET_HEADROOM)


def tiling_overhead(tiles: Sequence[Tile], width: int, height: int) -> float:
    """How much one tiled evaluation costs against an untiled one: the margins' extra pixels,
    and the first pass (a forward pass, about a third of an evaluation)."""
    if len(tiles) <= 1:
        return 1.0
    return sum(t.crop_pixels for t in tiles) / (width * height) * (4 / 3)


__all__ = [
    "Tile",
    "evaluation_bytes",
    "level_state_bytes",
    "make_tiles",
    "plan_tiles",
]
