#!/usr/bin/env python3
"""GPU figures for the speed issue, in one short run (run it through benchmarks/gpu_check.sh).

Prints: seconds per evaluation at 512 and 1024 px in fp32 and the auto precision; the time of a
default 512 px run including the model load (a fresh process would pay the same); a 2x upscale of
a 1024 px painting to 2048 px (``stylize(start_from=...)``: seconds and peak GPU memory, against
the memory the engine planned for); and the largest square size painted at all (with the default
memory budget, sizes whose evaluation does not fit are painted in tiles).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nst_engine import (  # noqa: E402
    StyleParams,
    stylize,
    vgg,
)
from nst_engine.device import resolve  # noqa: E402
from tests.helpers.images import content_image, stripes_style  # noqa: E402


def seconds_per_eval(content, style, size: int, precision: str) -> tuple[float, int]:
    runs = []
    for iterations in (3, 13):
        torch.cuda.synchronize()
        started = time.perf_counter()
        result = stylize(
            content, [style], StyleParams(size=size, iterations=iterations, scales=1, precision=precision)
        )
        torch.cuda.synchronize()
        runs.append((time.perf_counter() - started, result.stats.evaluations, result.stats.peak_memory_bytes))
    (t1, e1, _), (t2, e2, peak) = runs
    return (t2 - t1) / max(1, e2 - e1), peak


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("no CUDA GPU visible")
    device = torch.cuda.get_device_name()
    auto = resolve("cuda", "auto").precision
    print(f"# GPU check: {device}, torch {torch.__version__}, auto precision {auto}")
    photo, painting = content_image(1024, 768), stripes_style(512, 512)

    started = time.perf_counter()
    vgg.clear_model_cache()
    result = stylize(photo, [painting], StyleParams(size=512))
    torch.cuda.synchronize()
    print(
        f"default 512 px run incl. model load: {time.perf_counter() - started:.2f} s "
        f"({result.stats.iterations} iterations, {result.stats.evaluations} evaluations, "
        f"{result.stats.levels} levels, {result.stats.precision})"
    )

    print("| size | precision | s/evaluation | peak GPU GiB |")
    print("|---|---|---|---|")
    for size in (512, 1024):
        for precision in ("fp32", auto):
            per_eval, peak = seconds_per_eval(photo, painting, size, precision)
            print(f"| {size} | {precision} | {per_eval:.4f} | {peak / 1024**3:.2f} |")

    upscale(photo, painting)

    largest = 0
    for size in (2048, 3072, 4096):
        try:
            stylize(content_image(size, size), [painting], StyleParams(size=size, iterations=2, scales=1))
            largest = size
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            torch.cuda.empty_cache()
    print(f"largest square tried that fits: {largest} px (tried up to 4096, the engine's ceiling)")


def upscale(photo, painting) -> None:
    """A 1024 px painting continued to 2048 px: seconds and peak GPU memory of the new level."""
    from nst_engine import tiling

    painted = stylize(photo, [painting], StyleParams(size=1024))
    torch.cuda.empty_cache()
    torch.cuda.synchronize()
    started = time.perf_counter()
    result = stylize(photo, [painting], StyleParams(size=2048), start_from=painted.image)
    torch.cuda.synchronize()
    planned = tiling.evaluation_bytes(result.stats.width, result.stats.height, result.stats.precision)
    seconds = time.perf_counter() - started
    print(
        f"2x upscale 1024 -> {result.stats.width}x{result.stats.height}: {seconds:.2f} s "
        f"({result.stats.iterations} iterations, {result.stats.evaluations} evaluations, "
        f"{result.stats.precision}), peak GPU memory {result.stats.peak_memory_bytes / 1024**3:.2f} GiB "
        f"(one evaluation estimated at {planned / 1024**3:.2f} GiB); the 1024 px painting took "
        f"{painted.stats.seconds:.2f} s"
    )
    torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
