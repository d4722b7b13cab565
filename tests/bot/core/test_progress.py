"""Progress throttling, and which steps carry a preview."""

from __future__ import annotations

from bot.core.progress import EditThrottle, preview_due, preview_every


def test_throttle_lets_one_edit_per_interval_and_always_the_final() -> None:
    now = [0.0]
    throttle = EditThrottle(5.0, clock=lambda: now[0])
    assert throttle.should_edit()
    now[0] = 4.9
    assert not throttle.should_edit()
    assert throttle.should_edit(final=True)
    now[0] = 9.8
    assert not throttle.should_edit()
    now[0] = 9.95
    assert throttle.should_edit()


def test_throttle_counts_edits_over_a_simulated_run() -> None:
    now = [0.0]
    throttle = EditThrottle(5.0, clock=lambda: now[0])
    edits = 0
    for step in range(1, 101):  # 100 steps, 0.5 s each = 50 s
        now[0] = step * 0.5
        edits += throttle.should_edit(final=step == 100)
    assert 10 <= edits <= 11


def test_preview_every_spreads_the_previews_and_zero_turns_them_off() -> None:
    assert preview_every(100, 3) == 25
    assert preview_every(100, 1) == 50
    assert preview_every(4, 0) == 0


def test_an_animations_previews_are_spread_over_its_frames() -> None:
    """Three previews of a 24-frame clip: from frame 1, from frame 9, from frame 17."""
    assert preview_due(1, 24, 0, 3)
    assert not preview_due(8, 24, 1, 3) and preview_due(9, 24, 1, 3)
    assert not preview_due(16, 24, 2, 3) and preview_due(17, 24, 2, 3)
    assert not preview_due(24, 24, 3, 3), "never more than the count"
    assert preview_due(1, 1, 2, 3) and not preview_due(1, 1, 3, 3), "a still: its first previews"
