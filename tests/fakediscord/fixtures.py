"""pytest fixtures around :class:`FakeDiscord`; tests/conftest.py registers them as a plugin."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .server import FakeDiscord


def misuse(fake: FakeDiscord) -> str | None:
    """Why a test whose client drove ``fake`` must fail, or None: it called a route the fake does
    not know, or relied on a flow Discord deprecates (a followup standing in for the edit of a
    "thinking" original) or does not document (a followup after deleting that original)."""
    if fake.unhandled:
        calls = [(r.method, r.path) for r in fake.unhandled]
        return f"the client called routes the fake does not know: {calls}"
    if fake.deprecated_flows or fake.undocumented_flows:
        return (
            f"the client used {len(fake.deprecated_flows)} deprecated and "
            f"{len(fake.undocumented_flows)} undocumented interaction flows:\n{fake.describe()}"
        )
    return None


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    """A started fake Discord with discord.py pointed at it for the test, restored afterwards;
    the test fails on any :func:`misuse` of it."""
    async with FakeDiscord() as fake:
        with fake.patched_discord():
            yield fake
        if (reason := misuse(fake)) is not None:
            pytest.fail(reason)
