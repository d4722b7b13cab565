import pytest

from nst_engine import StyleParams, engine, stylize, timebudget
from tests.helpers.images import content_image, stripes_style


def test_the_largest_total_that_fits_and_the_rescale():
    split = lambda n: timebudget.proportional([4, 2, 1], n)  # noqa: E731
    costs = [0.1, 0.4, 1.6]
    total = timebudget.largest_total(split, costs, seconds=20.0, fewest=3)
    assert sum(n * c for n, c in zip(split(total), costs, strict=True)) <= 20.0
    assert sum(n * c for n, c in zip(split(total + 1), costs, strict=True)) > 20.0
    assert timebudget.largest_total(split, costs, seconds=0.1, fewest=3) == 3  # nothing fits: the fewest
    assert timebudget.proportional([78, 39, 33], 150) == [78, 39, 33]
    assert sum(timebudget.proportional([78, 39, 33], 40)) == 40
    assert timebudget.rescaled([10, 10], [1.0, 2.0], 15.0) == [5, 5]
    assert timebudget.rescaled([10, 10], [1.0, 2.0], 0.0) == [0, 1]  # the last level keeps one


class SimulatedMachine:
    """A clock that only moves when the engine works: an evaluation costs ``per_pixel`` seconds a
    pixel and a forward pass a third of that, or ``forward_share`` of it (a wrong guess)."""

    def __init__(self, monkeypatch, per_pixel: float, forward_share: float = 1 / 3) -> None:
        self.now = 0.0
        monkeypatch.setattr(engine._Run, "clock", staticmethod(lambda: self.now))
        features, loss = engine._Run._features, engine._Run._loss

        def slow_features(run, image):
            self.now += per_pixel * forward_share * image.shape[2] * image.shape[3]
            return features(run, image)

        def slow_loss(run, image, level):
            self.now += per_pixel * level.pixels
            return loss(run, image, level)

        monkeypatch.setattr(engine._Run, "_features", slow_features)
        monkeypatch.setattr(engine._Run, "_loss", slow_loss)
        monkeypatch.setattr(engine, "PYRAMID_MIN_SIDE", 16)  # two levels on a tiny picture


@pytest.mark.parametrize(("budget", "forward_share"), [(40.0, 1 / 3), (90.0, 1 / 3), (60.0, 1 / 6)])
def test_a_time_budget_is_honoured_within_ten_percent_on_a_simulated_clock(
    monkeypatch, budget, forward_share
):
    """forward_share 1/6: evaluations cost twice what the timed forward passes predict; the plan
    is corrected after the first level and the deadline holds within the level."""
    machine = SimulatedMachine(monkeypatch, per_pixel=1e-3, forward_share=forward_share)  # 3 s per 64x48
    params = StyleParams(size=64, scales=2, precision="fp32", time_budget=budget, iterations=5)
    result = stylize(content_image(48, 36), [stripes_style()], params)
    assert result.stats.levels == 2
    assert 0.9 * budget <= result.stats.seconds <= budget
    assert result.stats.seconds == pytest.approx(machine.now)
    assert result.stats.iterations > 5  # the budget, not ``iterations``, set the amount of work


def test_a_larger_time_budget_buys_more_iterations(monkeypatch):
    SimulatedMachine(monkeypatch, per_pixel=1e-3)
    runs = [
        stylize(content_image(64, 48), [stripes_style()], StyleParams(size=64, scales=2, time_budget=b))
        for b in (20.0, 60.0)
    ]
    assert runs[1].stats.evaluations > 2 * runs[0].stats.evaluations


def test_progress_follows_time_not_iterations_on_a_simulated_run(monkeypatch):
    machine = SimulatedMachine(monkeypatch, per_pixel=1e-3)
    reports = []
    params = StyleParams(size=64, scales=2, iterations=40, precision="fp32")
    stylize(content_image(64, 48), [stripes_style()], params, progress=reports.append)
    fractions = [r.fraction for r in reports]
    assert fractions == sorted(fractions)  # never goes back
    assert fractions[-1] == 1.0
    last_of_first_level = [r for r in reports if r.level == 1][-1]
    time_share = last_of_first_level.elapsed / machine.now
    iteration_share = last_of_first_level.step / last_of_first_level.total
    assert iteration_share > 0.45  # what the bar showed before: half the steps are the cheap ones
    assert last_of_first_level.fraction == pytest.approx(time_share, abs=0.1)
    assert last_of_first_level.fraction < iteration_share - 0.2


def test_a_time_limit_cuts_only_what_would_end_late_and_never_adds(monkeypatch):
    """``time_limit`` is a cap: a run that fits paints exactly what it would without it (the same
    picture); one that would not is cut, after its first level, to end within the limit."""
    machine = SimulatedMachine(monkeypatch, per_pixel=1e-3)
    params = StyleParams(size=48, scales=2, precision="fp32", iterations=24)
    photo, painting = content_image(48, 36), stripes_style()
    free = stylize(photo, [painting], params)
    roomy = stylize(photo, [painting], params.replace(time_limit=2 * free.stats.seconds))
    assert roomy.stats.iterations == free.stats.iterations == 24
    assert roomy.image.tobytes() == free.image.tobytes()

    limit = 0.6 * free.stats.seconds
    machine.now = 0.0
    cut = stylize(photo, [painting], params.replace(time_limit=limit))
    assert cut.stats.seconds <= limit
    assert cut.stats.seconds >= 0.8 * limit, "the time left is used, not thrown away"
    assert cut.stats.iterations < 24
