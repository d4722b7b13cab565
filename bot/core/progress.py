"""Progress reports: how often a progress message is edited, and which steps carry a preview.

Discord rate-limits message edits, and a user gains nothing from an edit every iteration, so
:class:`EditThrottle` lets one edit through per interval and always the final one. The text of a
progress line is in :mod:`bot.core.texts`.
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


def preview_every(total: int, count: int) -> int:
    """The engine's ``preview_every`` that yields about ``count`` previews (0 turns them off)."""
    if count <= 0 or total <= 1:
        return 0
    return max(1, total // (count + 1))


def preview_due(frame: int, frames: int, shown: int, count: int) -> bool:
    """Whether a preview of ``frame`` (of ``frames``) is worth showing when ``shown`` of ``count``
    have been: a still shows its first ``count``; an animation spreads them over its frames (frame
    1, then each a further share of the clip), so they are not all of its first frame."""
    if shown >= count:
        return False
    return frames <= 1 or frame >= 1 + shown * frames / count
