"""The ETA model against simulated runs whose cost per evaluation is known exactly."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from nst_engine.engine import split_iterations
from nst_engine.eta import EtaModel


@dataclass(frozen=True)
class SimLevel:
    index: int
    iterations: int
    pixels: int
    forward_seconds: float


def simulate(fixed: float, per_pixel: float, *, timed: bool) -> float:
    """Worst relative error of elapsed + ETA after the first tenth of a default 3-level run.

    An evaluation costs ``fixed + per_pixel * pixels`` (a forward pass a third of that), one
    evaluation per iteration, plus a level's first evaluation paying set-up twice over.
    """
    sides = [(128, 96), (256, 192), (512, 384)]
    counts = split_iterations(150, 3)

    def cost(pixels: int) -> float:
        return fixed + per_pixel * pixels

    levels = [
        SimLevel(i, count, w * h, cost(w * h) / 3 if timed else 0.0)
        for i, ((w, h), count) in enumerate(zip(sides, counts, strict=True))
    ]
    model = EtaModel(levels)
    elapsed, predictions = 0.0, []
    for level in levels:
        in_level = 0.0
        for step in range(1, level.iterations + 1):
            spent = cost(level.pixels) * (3 if step == 1 else 1)
            in_level += spent
            elapsed += spent
            model.observe(level, step, step, in_level)
            predictions.append((elapsed, elapsed + (model.remaining(level, step) or 0.0)))
    return max(abs(total - elapsed) / elapsed for at, total in predictions if at >= 0.1 * elapsed)


@pytest.mark.parametrize(
    ("fixed", "per_pixel"),
    [
        (0.0, 1e-6),  # cost proportional to pixels (an idle CPU at these sizes)
        (0.2, 1e-6),  # a fixed cost per evaluation as large as 128 px's own (a busy CPU)
        (0.05, 1e-8),  # a GPU: mostly fixed costs at these sizes
    ],
)
def test_eta_within_20_percent_after_the_first_tenth(fixed: float, per_pixel: float) -> None:
    assert simulate(fixed, per_pixel, timed=True) <= 0.20


def test_scaling_by_pixels_alone_misjudges_fixed_costs() -> None:
    """What the timed forward passes fix: the same GPU-like run predicted by pixel count alone."""
    assert simulate(0.05, 1e-8, timed=False) > 0.5


def test_a_noisy_timing_cannot_make_a_larger_level_cheaper_or_dearer_than_its_pixels() -> None:
    small, large = SimLevel(0, 10, 100, 1.0), SimLevel(1, 10, 400, 0.5)
    assert EtaModel.cost_ratio(large, small) == 1.0
    assert EtaModel.cost_ratio(SimLevel(1, 10, 400, 9.0), small) == 4.0
    assert EtaModel.cost_ratio(SimLevel(1, 10, 400, 2.5), small) == 2.5
    assert EtaModel.cost_ratio(SimLevel(1, 10, 400, 0.0), small) == 4.0, "untimed: by pixels"
