"""Strength steps and re-runs."""

from __future__ import annotations

from bot.core.strength import Rerun, apply_rerun, new_seed, next_strength


def test_steps_move_one_at_a_time_and_stop_at_the_ends() -> None:
    assert next_strength("normal", +1) == "strong"
    assert next_strength("strong", +1) == "extreme"
    assert next_strength("extreme", +1) is None
    assert next_strength("normal", -1) == "subtle"
    assert next_strength("subtle", -1) is None


def test_rerun_keeps_seed_for_strength_and_changes_it_for_reroll() -> None:
    assert apply_rerun("normal", 5, Rerun.STRONGER) == ("strong", 5)
    assert apply_rerun("normal", 5, Rerun.WEAKER) == ("subtle", 5)
    assert apply_rerun("extreme", 5, Rerun.STRONGER) is None
    strength, seed = apply_rerun("strong", 0, Rerun.REROLL)
    assert strength == "strong" and seed != 0


def test_new_seeds_vary() -> None:
    assert len({new_seed() for _ in range(20)}) > 15
