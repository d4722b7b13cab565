"""pytest fixtures around :class:`FakeDiscord`; tests/conftest.py registers them as a plugin."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .server import FakeDiscord


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """A started fake Discord with discord.py pointed at it for the test, restored afterwards.

    The test fails if the client called a route the fake does not know, or relied on a flow
    Discord deprecates (a followup standing in for the edit of a "thinking" original) or does
    not document (a followup after deleting that original).
    """
    async with FakeDiscord() as fake:
        with fake.patched_discord():
            yield fake
        if fake.unhandled:
            calls = [(r.method, r.path) for r in fake.unhandled]
            pytest.fail(f"the client called routes the fake does not know: {calls}")
        if fake.deprecated_flows or fake.undocumented_flows:
            pytest.fail(
                f"the client used {len(fake.deprecated_flows)} deprecated and "
                f"{len(fake.undocumented_flows)} undocumented interaction flows:\n{fake.describe()}"
            )
