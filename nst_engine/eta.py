"""The ETA model of a run: seconds left from the evaluations left at each pyramid level."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Level(Protocol):
    """What the ETA model needs to know about a pyramid level."""

    @property
    def index(self) -> int: ...

    @property
    def iterations(self) -> int: ...

    @property
    def pixels(self) -> int: ...

    @property
    def forward_seconds(self) -> float:
        """One warm forward pass at this level's size; 0 when not measured."""
        ...


class EtaModel:
    """Seconds left = evaluations left at each level x seconds per evaluation there.

    The current level's cost is measured, following the recent evaluations (a level can switch to
    fp32 near its end, see ``_optimise_lbfgs``). A level not reached yet is predicted from the
    current one's fastest steady cost, scaled by how much longer a forward pass takes at its size
    (timed once per level before the run, see ``_Run._timed_forward``), kept between 1x and the
    pixel ratio. Scaling by pixels alone, as before, assumed the cost of an evaluation is
    proportional to its pixels. Measured, 512 px cost 14x the 128 px level on an idle 2-core CPU
    but 5-7x on the same CPU shared with other work, where fixed costs per operation dominate small
    sizes (as they do on a GPU); the first tenth of a default run, spent at 128 px, then misjudged
    the rest by 14-46%, against 3-6% with the timed ratio (docs/benchmarks.md, "ETA"). A level's
    first evaluation pays one-off set-up at the new size, so a level starts from the cost predicted
    for it. Evaluations per iteration are counted over the whole run: L-BFGS's first iterations at
    each level take several, the later ones one.
    """

    #: Weight of the newest interval in the running cost per evaluation: recent enough to follow
    #: a level that switches to fp32, smooth enough to ignore jitter.
    SMOOTHING = 0.2
    #: Evaluations at a level before its cost counts as steady enough to predict the others from.
    STEADY_AFTER = 4
    #: A level's first evaluation costs about two steady ones (measured at 256 and 512 px on a CPU:
    #: 0.54 s against 0.27 s, 2.2-2.9 s against 1.1-1.3 s): one more evaluation per level to come.
    SETUP_EVALS = 1.0

    def __init__(self, levels: Sequence[Level]) -> None:
        self.levels = levels
        self.seconds_per_eval: dict[int, float] = {}
        self._steady: dict[int, float] = {}
        #: The latest observation of each level: (evaluations, iterations, seconds) so far.
        self._last: dict[int, tuple[int, int, float]] = {}

    @property
    def evals_per_iteration(self) -> float:
        evaluations = sum(e for e, _, _ in self._last.values())
        iterations = sum(i for _, i, _ in self._last.values())
        return max(1.0, evaluations / iterations) if iterations else 1.15

    def observe(self, level: Level, step: int, evaluations: int, seconds: float) -> None:
        if evaluations < 1 or step < 1:
            return
        previous = self._last.get(level.index)
        self._last[level.index] = (evaluations, step, seconds)
        if previous is None:
            before = self.levels[level.index - 1] if level.index > 0 else None
            if before is not None and before.index in self.seconds_per_eval:
                self.seconds_per_eval[level.index] = self._predicted(level, before)
            else:
                self.seconds_per_eval[level.index] = seconds / evaluations
        elif evaluations > previous[0]:
            recent = (seconds - previous[2]) / (evaluations - previous[0])
            rate = (1 - self.SMOOTHING) * self.seconds_per_eval[level.index] + self.SMOOTHING * recent
            self.seconds_per_eval[level.index] = rate
            if evaluations >= self.STEADY_AFTER:
                self._steady[level.index] = min(rate, self._steady.get(level.index, rate))

    def remaining(self, level: Level, level_step: int) -> float | None:
        if level.index not in self.seconds_per_eval:
            return None
        per_iteration = self.evals_per_iteration
        total = max(0, level.iterations - level_step) * per_iteration * self.seconds_per_eval[level.index]
        for other in self.levels[level.index + 1 :]:
            # + SETUP_EVALS: a level's first evaluation pays the new size's set-up.
            evaluations = other.iterations * per_iteration + self.SETUP_EVALS
            total += evaluations * self._predicted(other, level)
        return total

    def predicted_seconds_per_evaluation(self, level: Level, measured: Level) -> float:
        """An evaluation's cost at ``level``, predicted from what ``measured`` (a level run so far) cost."""
        return self._predicted(level, measured)

    def _predicted(self, level: Level, measured: Level) -> float:
        """``level``'s cost per evaluation: ``measured``'s fastest steady cost, scaled by size."""
        reference = self._steady.get(measured.index, self.seconds_per_eval[measured.index])
        return reference * self.cost_ratio(level, measured)

    @staticmethod
    def cost_ratio(level: Level, measured: Level) -> float:
        """How much more an evaluation costs at ``level`` than at ``measured``.

        The ratio of their timed forward passes, bounded by 1 and the ratio of their pixels (a
        noisy timing can neither make a larger level cheaper nor dearer than proportional); the
        pixel ratio alone when a level was not timed.
        """
        pixels = level.pixels / measured.pixels
        if level.forward_seconds <= 0 or measured.forward_seconds <= 0:
            return pixels
        low, high = sorted((1.0, pixels))
        return min(max(level.forward_seconds / measured.forward_seconds, low), high)
