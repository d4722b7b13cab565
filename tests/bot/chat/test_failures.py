"""Start-up failure classification for the cases the end-to-end tests cannot stage cheaply.

tests/e2e/test_startup.py makes each common failure for real (DNS, refused, TLS, proxy, 503,
timeout, 401, 4014); these cover a proxy that refuses (407), the gateway refusing the token
(4004) or closing with another code, a Discord answer that is neither, and an unknown error.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import aiohttp
import discord
import pytest

from bot.chat.failures import CONFIGURATION, ENVIRONMENT, RULES, Connection, Failure, classify

CONNECTION = Connection(proxy="http://operator:s3cret@proxy.example:3128", timeout=60.0)


def closed(code: int) -> discord.ConnectionClosed:
    return discord.ConnectionClosed(SimpleNamespace(close_code=code), shard_id=None, code=code)  # type: ignore[arg-type]


def http_error(status: int, reason: str, text: str) -> discord.HTTPException:
    response: Any = SimpleNamespace(status=status, reason=reason)
    return discord.HTTPException(response, text)


def test_a_proxy_that_refuses_names_it_without_its_password() -> None:
    error = aiohttp.ClientHttpProxyError(
        None,  # type: ignore[arg-type]
        (),
        status=407,
        message="Proxy Authentication Required",
    )
    failure = classify(error, CONNECTION)
    assert failure == Failure(
        "the proxy http://proxy.example:3128 refused to connect to Discord "
        "(407 Proxy Authentication Required)",
        "check the address and credentials in NST_BOT_PROXY",
        CONFIGURATION,
    )
    assert "s3cret" not in failure.line


def test_the_gateway_refusing_the_token_is_a_bad_token() -> None:
    failure = classify(closed(4004), CONNECTION)
    assert failure.status == CONFIGURATION and failure.cause == "Discord refused the token (401 Unauthorized)"


def test_another_gateway_close_code() -> None:
    failure = classify(closed(4013), CONNECTION)
    assert failure.line.startswith("Discord closed the gateway connection (close code 4013")
    assert failure.status == ENVIRONMENT


def test_another_discord_answer() -> None:
    failure = classify(http_error(403, "Forbidden", "error code: 1020"), CONNECTION)
    assert failure.line == (
        "Discord answered 403 Forbidden (error code: 1020); check https://discordstatus.com and start again"
    )
    assert failure.status == ENVIRONMENT


def test_a_wrapped_error_is_classified_by_its_cause() -> None:
    try:
        try:
            raise discord.LoginFailure("Improper token has been passed.")
        except discord.LoginFailure as inner:
            raise RuntimeError("setup failed") from inner
    except RuntimeError as outer:
        assert classify(outer, CONNECTION).status == CONFIGURATION


def test_an_unknown_error_is_still_one_line() -> None:
    failure = classify(ValueError("first line\nsecond line"), CONNECTION)
    assert failure.line == "unexpected ValueError: first line; set NST_DEBUG=1 to see the traceback"
    assert failure.status == ENVIRONMENT


def test_a_new_kind_of_failure_is_one_more_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """How the queue backend's failure joins: a rule recognising its error, added to RULES."""

    class BackendDown(Exception):
        pass

    def backend_down(error: BaseException, connection: Connection) -> Failure | None:
        if not isinstance(error, BackendDown):
            return None
        return Failure("the queue backend is down", "start it", ENVIRONMENT)

    monkeypatch.setattr("bot.chat.failures.RULES", [*RULES, backend_down])
    assert classify(BackendDown(), CONNECTION).line == "the queue backend is down; start it"
