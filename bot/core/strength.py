"""Strength steps and re-runs: how Stronger / Weaker / Re-roll / the reaction change a job.

Kept apart from Discord so the rules (ordering, clamping at the ends, fresh seeds) are tested
directly.
"""

from __future__ import annotations

import secrets
from enum import Enum

from .settings import STRENGTH_NAMES


class Rerun(str, Enum):
    """What a user asked a finished job to do again."""

    STRONGER = "stronger"
    WEAKER = "weaker"
    REROLL = "reroll"


def next_strength(current: str, direction: int) -> str | None:
    """The strength one step stronger (``+1``) or weaker (``-1``); None past either end."""
    index = STRENGTH_NAMES.index(current) + direction
    if 0 <= index < len(STRENGTH_NAMES):
        return STRENGTH_NAMES[index]
    return None


def new_seed() -> int:
    """A fresh random seed for a re-roll (never 0, the default, so it always differs)."""
    return secrets.randbelow(2**31 - 1) + 1


def apply_rerun(strength: str, seed: int, action: Rerun) -> tuple[str, int] | None:
    """The (strength, seed) a re-run uses, or None when no step is left in that direction."""
    if action is Rerun.REROLL:
        return strength, new_seed()
    step = next_strength(strength, +1 if action is Rerun.STRONGER else -1)
    return None if step is None else (step, seed)
