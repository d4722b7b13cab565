"""Progress messages: how often to edit, what the text looks like, which steps show a preview.

Discord rate-limits message edits, and a user gains nothing from an edit every iteration, so
:class:`EditThrottle` lets one edit through per interval and always the final one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class EditThrottle:
    """At most one edit per ``interval`` seconds; the final update always passes."""

    interval: float
    clock: Callable[[], float] = time.monotonic
    _last: float | None = field(default=None, init=False)

    def should_edit(self, *, final: bool = False) -> bool:
        now = self.clock()
        if final or self._last is None or now - self._last >= self.interval:
            self._last = now
            return True
        return False


def format_duration(seconds: float | None) -> str:
    """``42s``, ``3m 05s``, ``1h 02m``; ``?`` when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def render_bar(fraction: float, width: int = 20) -> str:
    """A text bar such as ``[██████░░░░]``; ``fraction`` is clamped to 0..1."""
    fraction = min(1.0, max(0.0, fraction))
    filled = round(fraction * width)
    return "[" + "\u2588" * filled + "\u2591" * (width - filled) + "]"


def render_progress(step: int, total: int, elapsed: float, eta: float | None, width: int = 20) -> str:
    """The progress line users watch: bar, step/total, percent, elapsed and ETA."""
    fraction = step / total if total > 0 else 0.0
    return (
        f"`{render_bar(fraction, width)}` {step}/{total} ({fraction:.0%})"
        f" \u00b7 elapsed {format_duration(elapsed)} \u00b7 ETA {format_duration(eta)}"
    )


def preview_every(total: int, count: int) -> int:
    """The engine's ``preview_every`` that yields about ``count`` previews (0 turns them off)."""
    if count <= 0 or total <= 1:
        return 0
    return max(1, total // (count + 1))


def queue_text(position: int) -> str:
    """What a waiting user sees."""
    if position <= 0:
        return "Starting\u2026"
    ahead = "1 job" if position == 1 else f"{position} jobs"
    return f"Queued: {ahead} ahead of yours."
