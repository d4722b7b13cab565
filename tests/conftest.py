"""Fixtures shared by the whole suite. Tests make their own tiny images (tests/helpers/images.py)."""

from __future__ import annotations

import pytest
import torch

from nst_engine import StyleParams

#: The local Discord stand-in's ``fake_discord`` fixture, for every test directory that needs it.
pytest_plugins = ["tests.fakediscord.fixtures"]

# Two cores: keep torch from oversubscribing them when pytest and the engine both run.
torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture
def tiny_params() -> StyleParams:
    """A run that takes well under a second: 48 px, a handful of iterations, one scale."""
    return StyleParams(size=48, iterations=4, scales=1)
