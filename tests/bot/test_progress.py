"""Progress throttling and the text users watch."""

from __future__ import annotations

from bot.progress import (
    EditThrottle,
    format_duration,
    preview_every,
    queue_text,
    render_bar,
    render_progress,
)


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


def test_bar_and_progress_line() -> None:
    assert render_bar(0.5, width=10) == "[" + "\u2588" * 5 + "\u2591" * 5 + "]"
    assert render_bar(2.0, width=4) == "[" + "\u2588" * 4 + "]"
    line = render_progress(30, 120, elapsed=65, eta=None)
    assert "30/120" in line and "(25%)" in line and "1m 05s" in line and "ETA ?" in line


def test_durations() -> None:
    assert format_duration(42) == "42s"
    assert format_duration(185) == "3m 05s"
    assert format_duration(3720) == "1h 02m"
    assert format_duration(None) == "?"


def test_preview_every_spreads_the_previews_and_zero_turns_them_off() -> None:
    assert preview_every(100, 3) == 25
    assert preview_every(100, 1) == 50
    assert preview_every(4, 0) == 0


def test_queue_text() -> None:
    assert "1 job ahead" in queue_text(1)
    assert "3 jobs ahead" in queue_text(3)
    assert "Starting" in queue_text(0)
