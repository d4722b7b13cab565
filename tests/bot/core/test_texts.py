"""The sentences users read that carry values: the progress line, durations, queue positions."""

from __future__ import annotations

from bot.core.texts import format_duration, queued, render_bar, render_progress


def test_bar_and_progress_line() -> None:
    assert render_bar(0.5, width=10) == "[" + "\u2588" * 5 + "\u2591" * 5 + "]"
    assert render_bar(2.0, width=4) == "[" + "\u2588" * 4 + "]"
    line = render_progress(30, 120, elapsed=65, eta=None)
    assert "30/120" in line and "(25%)" in line and "1m 05s" in line and "ETA ?" in line


def test_the_bar_follows_the_share_of_time_not_of_iterations() -> None:
    """Half the iterations are done after 14 s of a 94 s job: the bar says 15%, not 50%."""
    line = render_progress(75, 150, elapsed=14, eta=80, width=20, fraction=14 / 94)
    assert "75/150" in line and "(15%)" in line
    assert line.count("\u2588") == 3


def test_an_animations_progress_names_the_frame() -> None:
    line = render_progress(45, 90, elapsed=30, eta=60, frame=3, frames=8)
    assert "frame 3 of 8" in line and "45/90" in line
    assert "frame" not in render_progress(45, 90, elapsed=30, eta=60), "a still has no frame number"


def test_durations() -> None:
    assert format_duration(42) == "42s"
    assert format_duration(185) == "3m 05s"
    assert format_duration(3720) == "1h 02m"
    assert format_duration(None) == "?"


def test_queued() -> None:
    assert "1 job ahead" in queued(1)
    assert "3 jobs ahead" in queued(3)
    assert "Starting" in queued(0)
