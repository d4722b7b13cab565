"""A start that fails is one line naming the cause and the fix (exit 2: configuration, 1: the
network or Discord), never a traceback or a voice warning; ``NST_DEBUG=1`` adds the traceback; a
connection lost after login is not a start-up failure.

Each failure is made for real: an unresolvable name, a closed port (for the HTTP API, and for the
gateway while the API answers), a plain-TCP server where TLS is expected, a self-signed
certificate, a dead proxy, the fake Discord answering 503, too late, 401 or closing the gateway
with 4014, a setting out of range and a data dir that cannot be created. The bot runs through its
real entry point in a child process.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from tests.e2e.entry_point import Run, base_environment, closed_port, finish, run, start
from tests.fakediscord import FakeDiscord, FaultRule
from tests.helpers.redis_server import RedisServer


@pytest.fixture
def environment(fake_discord: FakeDiscord, config_dir: Path, tmp_path: Path) -> dict[str, str]:
    return base_environment(fake_discord, config_dir, tmp_path / "data", tmp_path / "cache")


def the_only_line(done: Run, status: int) -> str:
    """The exit status is ``status`` and the failure line is all the bot printed (no log record,
    no traceback, no voice warning); returns that line."""
    assert done.returncode == status, done.stderr[-3000:]
    assert len(done.stderr.splitlines()) == 1, done.stderr[-3000:]
    assert done.stdout == ""
    return done.stderr.rstrip("\n")


def assert_one_line(done: Run, expected: str, status: int) -> None:
    assert the_only_line(done, status) == f"nst-bot: {expected}"


async def test_no_dns(environment: dict[str, str]) -> None:
    environment["FAKE_DISCORD_API"] = "https://discord.invalid/api/v10"
    done = await run([], environment)
    line = the_only_line(done, 1)
    # the resolver's own words differ between systems; the rest of the line is ours
    assert re.fullmatch(
        r"nst-bot: cannot resolve discord\.invalid \(DNS lookup failed: .+\); check this machine's DNS and "
        r"network connection; allow outgoing HTTPS to Discord in the firewall, or set NST_BOT_PROXY to your "
        r"proxy",
        line,
    ), line


@pytest.mark.parametrize(
    "variable, url",
    [
        ("FAKE_DISCORD_API", "http://127.0.0.1:{port}/api/v10"),
        # Discord's HTTP answers but the gateway does not (a firewall that lets only discord.com through).
        ("FAKE_DISCORD_GATEWAY", "ws://127.0.0.1:{port}/gateway/"),
    ],
    ids=["api", "gateway"],
)
async def test_connection_refused(environment: dict[str, str], variable: str, url: str) -> None:
    port = closed_port()
    environment[variable] = url.format(port=port)
    done = await run([], environment)
    assert_one_line(
        done,
        f"127.0.0.1:{port} refused the connection; allow outgoing HTTPS to Discord in the firewall, "
        "or set NST_BOT_PROXY to your proxy",
        1,
    )


async def test_a_proxy_only_in_https_proxy_is_named(environment: dict[str, str]) -> None:
    """What an operator behind a proxy hits: discord.py ignores HTTPS_PROXY, so the line says so."""
    port = closed_port()
    environment["FAKE_DISCORD_API"] = f"http://127.0.0.1:{port}/api/v10"
    environment["HTTPS_PROXY"] = "http://proxy.example:3128"
    done = await run([], environment)
    assert_one_line(
        done,
        f"127.0.0.1:{port} refused the connection; HTTPS_PROXY is set, but the bot does not read it: "
        "set NST_BOT_PROXY to your proxy",
        1,
    )


async def test_debug_shows_the_log_the_traceback_and_still_the_line(environment: dict[str, str]) -> None:
    port = closed_port()
    environment["FAKE_DISCORD_API"] = f"http://127.0.0.1:{port}/api/v10"
    environment["NST_DEBUG"] = "1"
    done = await run([], environment)
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "ClientConnectorError" in done.stderr
    assert "INFO discord.client: logging in using static token" in done.stderr, "the held log records"
    assert done.last_error_line.startswith(f"nst-bot: 127.0.0.1:{port} refused the connection; ")


async def test_tls_handshake_with_a_server_that_does_not_speak_tls(
    fake_discord: FakeDiscord, environment: dict[str, str]
) -> None:
    environment["FAKE_DISCORD_API"] = f"https://127.0.0.1:{fake_discord.port}/api/v10"
    done = await run([], environment)
    line = the_only_line(done, 1)
    assert line.startswith(f"nst-bot: the TLS handshake with 127.0.0.1:{fake_discord.port} failed (")
    assert line.endswith(
        "); something on the network answers instead of Discord (a captive portal or a proxy): "
        "check the network, or set NST_BOT_PROXY to your proxy"
    )


async def test_untrusted_certificate(self_signed_server: int, environment: dict[str, str]) -> None:
    environment["FAKE_DISCORD_API"] = f"https://127.0.0.1:{self_signed_server}/api/v10"
    done = await run([], environment)
    line = the_only_line(done, 1)
    assert line.startswith(f"nst-bot: the TLS certificate of 127.0.0.1:{self_signed_server} is not trusted (")
    assert "self-signed certificate" in line or "self signed" in line
    assert line.endswith(
        "); something on the network intercepts HTTPS: add its CA certificate to the system store "
        "(or SSL_CERT_FILE), or connect without it"
    )


async def test_unreachable_proxy(environment: dict[str, str]) -> None:
    port = closed_port()
    environment["NST_BOT_PROXY"] = f"http://operator:s3cret@127.0.0.1:{port}"
    done = await run([], environment)
    assert_one_line(
        done,
        f"cannot reach the proxy http://127.0.0.1:{port} (Connection refused); "
        "check NST_BOT_PROXY and that the proxy is running",
        1,
    )
    assert "s3cret" not in done.stderr


async def test_discord_outage(fake_discord: FakeDiscord, environment: dict[str, str]) -> None:
    fake_discord.fail(503, "users_me")
    done = await run([], environment)
    assert_one_line(
        done,
        "Discord answered 503 Service Unavailable (a failure on Discord's side); wait and start again; "
        "https://discordstatus.com shows outages",
        1,
    )


async def test_discord_does_not_answer(fake_discord: FakeDiscord, environment: dict[str, str]) -> None:
    fake_discord.inject(FaultRule(status=500, route="users_me", delay=8.0))
    environment["NST_BOT_CONNECT_TIMEOUT"] = "2"
    done = await run([], environment)
    assert_one_line(
        done,
        "127.0.0.1 did not answer within 2 s; a firewall may be dropping traffic to Discord, or Discord is "
        "slow: allow outgoing HTTPS to Discord in the firewall, or set NST_BOT_PROXY to your proxy, "
        "or raise NST_BOT_CONNECT_TIMEOUT",
        1,
    )


async def test_bad_token(fake_discord: FakeDiscord, environment: dict[str, str]) -> None:
    environment["DISCORD_TOKEN"] = "MTA.not-the-token.at-all"
    done = await run([], environment)
    assert_one_line(
        done,
        "Discord refused the token (401 Unauthorized); copy a new one from the Bot tab of the developer "
        "portal into DISCORD_TOKEN",
        2,
    )
    assert "not-the-token" not in done.stderr


async def test_missing_privileged_intents(fake_discord: FakeDiscord, environment: dict[str, str]) -> None:
    fake_discord.identify_close_code = 4014
    done = await run([], environment)
    assert_one_line(
        done,
        "Discord refused the gateway intents the bot asked for (close code 4014: a privileged intent is "
        "not enabled for this application); enable it on the Bot tab of the developer portal, or stop "
        "asking for it in bot_intents()",
        2,
    )
    assert len(fake_discord.identifies) == 1


async def test_a_connection_lost_after_login_is_not_a_start_up_failure(
    fake_discord: FakeDiscord, environment: dict[str, str]
) -> None:
    """discord.py resumes by itself; the bot keeps running and stops cleanly on SIGTERM."""
    process = await start([], environment)
    try:
        await fake_discord.wait_for(lambda: fake_discord.connected, timeout=90)
        await fake_discord.drop_gateway(abort=True)
        await fake_discord.wait_for(lambda: fake_discord.resumes and fake_discord.connected, timeout=90)
        assert process.returncode is None
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
    done = await finish(process)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "nst-bot:" not in done.stderr
    # the log held back until the start succeeded is printed then, in order
    assert "logging in using static token" in done.stderr.split("connected to Gateway")[0], done.stderr
    assert "PyNaCl" not in done.stderr and "davey" not in done.stderr


async def test_queue_redis_not_running(environment: dict[str, str]) -> None:
    """With the arq backend, a Redis that does not answer stops the start before the login."""
    port = closed_port()
    environment["NST_BOT_QUEUE_URL"] = f"redis://:s3cret@127.0.0.1:{port}/0"
    done = await run([], environment)
    line = the_only_line(done, 1)
    assert line.startswith(f"nst-bot: Redis at redis://:***@127.0.0.1:{port}/0 did not answer (")
    assert line.endswith(
        "); start Redis, or correct queue_url (NST_BOT_QUEUE_URL); README, 'More than one machine'"
    )
    assert "s3cret" not in done.stderr


async def test_queue_redis_refuses_the_password(environment: dict[str, str], tmp_path: Path) -> None:
    redis = RedisServer(tmp_path, password="right-one")
    redis.start()
    try:
        environment["NST_BOT_QUEUE_URL"] = f"redis://:wrong-one@127.0.0.1:{redis.port}/0"
        done = await run([], environment)
    finally:
        redis.stop()
    line = the_only_line(done, 2)
    assert line.startswith(
        f"nst-bot: Redis at redis://:***@127.0.0.1:{redis.port}/0 refused the bot's credentials ("
    )
    assert line.endswith("); correct the password in queue_url (NST_BOT_QUEUE_URL)")
    assert "wrong-one" not in done.stderr


async def test_a_setting_out_of_range(environment: dict[str, str]) -> None:
    environment["NST_BOT_QUEUE_CAP"] = "0"
    done = await run([], environment)
    assert_one_line(
        done,
        "setting 'queue_cap': must be an integer >= 1, got 0; correct it in config/bot.toml or its "
        "NST_BOT_* variable (docs/bot.md, section 3)",
        2,
    )


async def test_a_data_dir_that_cannot_be_created(environment: dict[str, str], tmp_path: Path) -> None:
    """The same line as ``nst-bot check``'s data dir ✗ (permissions would not stop root: a file does)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    environment["NST_BOT_DATA_DIR"] = str(blocker / "data")
    done = await run([], environment)
    assert_one_line(
        done,
        f"{blocker / 'data'} cannot be created: {blocker} is not a directory; make it writable by the bot's "
        "user, or point NST_BOT_DATA_DIR at a writable directory",
        2,
    )


async def test_a_second_bot_on_the_same_data_dir_stops_with_one_line_naming_the_first(
    fake_discord: FakeDiscord, environment: dict[str, str]
) -> None:
    """Its start-up recovery would otherwise take the first bot's running jobs for crash leftovers."""
    first = await start([], environment)
    try:
        await fake_discord.wait_for(lambda: fake_discord.connected, timeout=90)
        second = await run([], environment)
        line = the_only_line(second, 2)
        assert re.fullmatch(
            rf"nst-bot: another nst-bot \(pid {first.pid}, started \d\d:\d\d\) is using the data dir "
            rf"{re.escape(environment['NST_BOT_DATA_DIR'])}; "
            "stop it or give this one another NST_BOT_DATA_DIR",
            line,
        ), line
        assert first.returncode is None and fake_discord.connected, "the first bot runs on"
        assert len(fake_discord.identifies) == 1, "the second never reached the gateway"
    finally:
        if first.returncode is None:
            first.send_signal(signal.SIGTERM)
    done = await finish(first)
    assert done.returncode == 0, done.stderr[-3000:]
