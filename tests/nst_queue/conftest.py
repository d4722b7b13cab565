"""Fixtures of the queue's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.redis_server import RedisServer


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server for the tests of one module (the system's, else the bundled one)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.url
    server.stop()
