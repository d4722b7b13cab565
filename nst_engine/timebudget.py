"""Planning a run's iterations to end within a time budget.

The engine times one forward pass at each level's size before it paints (``_Run._timed_forward``);
an iteration costs a known multiple of that. The plan keeps the pyramid's split of the iterations
(``engine.split_iterations``: most at the cheap coarse levels, ``TOP_LEVEL_SHARE`` at full size,
the split measured to give the most objective for its time, docs/benchmarks.md) and picks the
largest total whose predicted cost fits the budget. After each level the rest is planned again
from what that level really cost (the ETA model's measured cost per evaluation), and within a
level the run stops before an evaluation that would end past the budget, keeping the best picture
it has evaluated. So the plan only has to be about right; the budget holds either way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

#: An evaluation (forward, backward and the losses) against one forward pass at the same size, for
#: the first plan only. Measured on the 2-core CPU of docs/benchmarks.md (one thread, loaded) at
#: 256 and 384 px: 2.2x in fp32, 1.4-1.6x in bf16. 3 over-predicts there, so the first level gets
#: less than it could; the plan made after it, from the cost it measured, gives the rest back.
EVALUATION_PER_FORWARD = 3.0
#: L-BFGS's evaluations per iteration over a level (its first iterations take several).
EVALUATIONS_PER_ITERATION = 1.15
#: Share of the time left that a plan fills: the rest absorbs noise and the work after the last
#: evaluation (colour transfer, the final image).
PLAN_SHARE = 0.93
#: Most a re-plan multiplies the iterations left by when a level ran faster than predicted.
MAX_RESCALE = 3.0
#: Most iterations a budget buys: neural-style's 1000; past that the objective hardly moves.
MAX_PLANNED_ITERATIONS = 1000


def largest_total(
    split: Callable[[int], list[int]],
    seconds_per_iteration: Sequence[float],
    seconds: float,
    fewest: int,
    most: int = MAX_PLANNED_ITERATIONS,
) -> int:
    """The largest total iterations in ``fewest``..``most`` whose ``split`` over the levels costs
    at most ``seconds``, at ``seconds_per_iteration`` for each level; ``fewest`` if none does."""

    def cost(total: int) -> float:
        return sum(n * c for n, c in zip(split(total), seconds_per_iteration, strict=True))

    if cost(fewest) > seconds:
        return fewest
    low, high = fewest, most  # cost(low) fits; find the last that fits
    while low < high:
        middle = (low + high + 1) // 2
        if cost(middle) <= seconds:
            low = middle
        else:
            high = middle - 1
    return low


def rescaled(counts: Sequence[int], seconds_per_iteration: Sequence[float], seconds: float) -> list[int]:
    """The remaining levels' ``counts`` scaled to cost ``seconds`` (each level by the same factor,
    the last keeping at least one iteration)."""
    planned = sum(n * c for n, c in zip(counts, seconds_per_iteration, strict=True))
    if planned <= 0:
        return list(counts)
    factor = min(MAX_RESCALE, max(0.0, seconds / planned))
    scaled = [math.floor(n * factor) for n in counts]
    if scaled:
        scaled[-1] = max(1, scaled[-1])
    return scaled


def proportional(counts: Sequence[int], total: int) -> list[int]:
    """``total`` iterations shared among levels in the proportions of ``counts``, at least one each."""
    weight = sum(counts)
    shares = [max(1, math.floor(total * n / weight)) for n in counts]
    shares[0] += max(0, total - sum(shares))
    return shares


__all__ = ["largest_total", "proportional", "rescaled"]
