"""``nst-bot check``: one ✓ or ✗ line per part, through the real entry point against the fake.

Each failure is injected once: bad settings, no token, a refused token, each way the network can
fail the login, commands missing, changed or unreadable, a model that does not load, a catalogue
that is malformed or names a missing file, a data directory that cannot be created or written,
a cache directory that cannot be created, a full disk, a check that crashes, and the queue's
Redis down, refusing the password or without a worker. The exit status is 0 only when every line
is ✓. Independent failures share a run: each run is a child process that loads torch.
"""

from __future__ import annotations

import logging
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import discord
import pytest

from bot.__main__ import HoldUntilStarted, sync_commands
from bot.chat.app import NSTBot
from bot.chat.command_check import commands_check as _commands_check
from bot.chat.doctor import _queue_check
from bot.chat.failures import Connection
from bot.chat.startup import login
from bot.core.settings import Settings
from tests.e2e.entry_point import Run, base_environment, closed_port, finish, run, start
from tests.fakediscord import FakeDiscord, FaultRule
from tests.helpers.redis_server import RedisServer

CHECKS = ["settings", "token", "commands", "model", "presets", "data dir", "cache dir"]
#: With ``queue_url`` the workers load the model, and the queue line takes the model line's place.
QUEUE_CHECKS = ["settings", "token", "commands", "queue", "presets", "data dir", "cache dir"]


@pytest.fixture
def environment(fake_discord: FakeDiscord, config_dir: Path, tmp_path: Path) -> dict[str, str]:
    return base_environment(fake_discord, config_dir, tmp_path / "data", tmp_path / "cache")


def lines(done: Run) -> dict[str, str]:
    """The check's lines by check name (``✓ name: ...`` / ``✗ name: ...``)."""
    found: dict[str, str] = {}
    for line in done.stdout.splitlines():
        mark, rest = line.split(" ", 1)
        assert mark in ("✓", "✗"), line
        name, _ = rest.split(": ", 1)
        found[name] = line
    return found


async def sync(fake: FakeDiscord, config_dir: Path, tmp_path: Path, *, guild: bool = True) -> None:
    """Register the commands with ``nst-bot sync [--guild]``'s own function, in this process (no
    child to pay a torch import for; ``tests/e2e/test_sync.py`` runs the command itself)."""
    settings = Settings(data_dir=tmp_path / "sync-data", config_dir=config_dir, token=fake.token)
    no_logs_held = HoldUntilStarted(logging.NullHandler())  # not on any handler: it holds nothing
    assert await sync_commands(settings, fake.guild_id if guild else None, no_logs_held) == 0


async def test_all_well(
    fake_discord: FakeDiscord, environment: dict[str, str], config_dir: Path, tmp_path: Path
) -> None:
    await sync(fake_discord, config_dir, tmp_path)
    environment["NST_BOT_DATA_DIR"] = str(tmp_path / "fresh-data")
    done = await run(["check", "--guild", str(fake_discord.guild_id)], environment)
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    found = lines(done)
    assert list(found) == CHECKS
    assert all(line.startswith("✓ ") for line in found.values()), done.stdout
    assert f"StyleBot (id {fake_discord.bot_user.id})" in found["token"]
    assert (
        f"4 registered in guild {fake_discord.guild_id} (Stylize with preset…, nst-admin, presets, stylize), "
        "the same as the code's" in found["commands"]
    )
    assert "loaded on cpu in fp32" in found["model"]
    assert "1 in the catalogue: 1 on disk, 0 to download on first use" in found["presets"]
    assert f"{tmp_path / 'fresh-data'} will be created at start" in found["data dir"]
    assert not (tmp_path / "fresh-data").exists(), "the check must not create the data dir"
    assert fake_discord.identifies == [], "the check must not open the gateway"
    assert done.stderr == "", "no log records, no voice warnings, no traceback: only the report"


async def test_a_bot_running_on_the_data_dir_is_a_note_not_a_failure(
    fake_discord: FakeDiscord, environment: dict[str, str], config_dir: Path, tmp_path: Path
) -> None:
    """Checking a working set-up while its bot runs: every line ✓ (exit 0), and the data dir line
    names the running bot, which a second bot on that directory would stop at."""
    await sync(fake_discord, config_dir, tmp_path)
    running = await start([], environment)
    try:
        await fake_discord.wait_for(lambda: fake_discord.connected, timeout=90)
        done = await run(["check", "--guild", str(fake_discord.guild_id)], environment)
        assert running.returncode is None, "the check leaves the bot alone"
    finally:
        if running.returncode is None:
            running.send_signal(signal.SIGTERM)
    assert (await finish(running)).returncode == 0
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    found = lines(done)
    assert list(found) == CHECKS and all(line.startswith("✓ ") for line in found.values()), done.stdout
    assert re.fullmatch(
        rf"✓ data dir: {re.escape(environment['NST_BOT_DATA_DIR'])} writable, \S+ \S+ free; another nst-bot "
        rf"\(pid {running.pid}, started \d\d:\d\d\) is running on it \(a second bot needs another "
        r"NST_BOT_DATA_DIR\)",
        found["data dir"],
    ), found["data dir"]


async def test_local_failures_and_changed_commands(
    fake_discord: FakeDiscord, environment: dict[str, str], config_dir: Path, tmp_path: Path
) -> None:
    """Commands changed since the sync, weights that do not load, a preset image missing, a data dir
    that cannot be created: each its own ✗ with its fix; the other lines stay ✓."""
    await sync(fake_discord, config_dir, tmp_path)
    commands = fake_discord.guild_commands[fake_discord.guild_id]
    commands[:] = [c for c in commands if c["name"] != "presets"]
    stylize = next(c for c in commands if c["name"] == "stylize")
    stylize["options"][0]["description"] = "an older description"
    garbage = tmp_path / "weights.pt"
    garbage.write_bytes(b"not a state dict")
    environment["NST_BOT_WEIGHTS"] = str(garbage)
    with (config_dir / "presets.toml").open("a", encoding="utf-8") as catalogue:
        catalogue.write(
            '[[preset]]\nname = "gone"\ntitle = "Gone"\nartist = "Nobody"\nyear = "1900"\n'
            'licence = "CC0"\nsource = "file:paintings/gone.png"\n'
        )
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    environment["NST_BOT_DATA_DIR"] = str(blocker / "data")

    done = await run(["check", "--guild", str(fake_discord.guild_id)], environment)
    assert done.returncode == 2, done.stdout + done.stderr[-3000:]
    found = lines(done)
    assert list(found) == CHECKS
    for name in ("settings", "token", "cache dir"):
        assert found[name].startswith("✓ "), found[name]
    guild = fake_discord.guild_id
    assert found["commands"] == (
        f"✗ commands: 3 registered in guild {guild} (Stylize with preset…, nst-admin, stylize), "
        f"different from the code's (missing: presets; changed: stylize); run nst-bot sync --guild {guild}"
    )
    assert found["model"].startswith(
        f"✗ model: the {garbage} VGG19 weights did not load (WeightsUnavailable: "
    )
    assert found["model"].endswith(
        "; check the weights setting (the README's 'VGG19 weights' says what each needs)"
    )
    assert found["presets"] == (
        "✗ presets: 1 local image file(s) missing: gone; put the images where their file: sources in "
        f"{config_dir / 'presets.toml'} point, or remove those presets"
    )
    assert found["data dir"] == (
        f"✗ data dir: {blocker / 'data'} cannot be created: {blocker} is not a directory; make it writable "
        "by the bot's user, or point NST_BOT_DATA_DIR at a writable directory"
    )


async def test_refused_token(fake_discord: FakeDiscord, environment: dict[str, str]) -> None:
    environment["DISCORD_TOKEN"] = "MTA.not-the-token.at-all"
    done = await run(["check"], environment)
    assert done.returncode == 2
    found = lines(done)
    assert found["token"] == (
        "✗ token: Discord refused the token (401 Unauthorized); copy a new one from the Bot tab of the "
        "developer portal into DISCORD_TOKEN"
    )
    assert found["commands"] == "✗ commands: not checked (no login); fix the token line above first"
    assert all(found[name].startswith("✓ ") for name in ("settings", "model", "presets", "data dir"))
    assert "not-the-token" not in done.stdout + done.stderr


async def test_no_token(environment: dict[str, str]) -> None:
    del environment["DISCORD_TOKEN"]
    done = await run(["check"], environment)
    assert done.returncode == 2
    found = lines(done)
    assert found["token"] == (
        "✗ token: DISCORD_TOKEN is not set; export DISCORD_TOKEN=... or name a file holding it in the "
        "env_file setting"
    )
    assert found["commands"].startswith("✗ commands: not checked (no token)")


async def test_bad_settings_stop_at_the_first_line(environment: dict[str, str]) -> None:
    environment["NST_BOT_QUEUE_CAP"] = "0"
    done = await run(["check"], environment)
    assert done.returncode == 2
    assert done.stdout.splitlines() == [
        "✗ settings: setting 'queue_cap': must be an integer >= 1, got 0; correct it in config/bot.toml or "
        "its NST_BOT_* variable (docs/bot.md, section 3)"
    ]


async def test_what_the_bot_cannot_use_here(
    fake_discord: FakeDiscord, environment: dict[str, str], config_dir: Path, tmp_path: Path
) -> None:
    """The commands unreadable (403), a data dir that exists but takes no file, a cache dir that
    cannot be created, a catalogue that is not TOML."""
    fake_discord.fail(403, "guild_commands_get")
    # Permissions do not stop root; sysfs refuses a new file to every user.
    environment["NST_BOT_DATA_DIR"] = "/sys"
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    environment["NST_BOT_CACHE_DIR"] = str(blocker / "cache")
    catalogue = config_dir / "presets.toml"
    catalogue.write_text("[[preset]\nname = ", encoding="utf-8")

    done = await run(["check", "--guild", str(fake_discord.guild_id)], environment)
    assert done.returncode == 2, done.stdout + done.stderr[-3000:]
    found = lines(done)
    assert list(found) == CHECKS
    for name in ("settings", "token", "model"):
        assert found[name].startswith("✓ "), found[name]
    assert found["commands"].startswith(
        f"✗ commands: cannot read the commands in guild {fake_discord.guild_id} (403 "
    )
    assert found["commands"].endswith(
        "); invite the bot to that server with the applications.commands scope (docs/bot.md, section 1)"
    )
    assert found["data dir"] == (
        "✗ data dir: /sys is not writable (Permission denied); make it writable by the bot's user, or point "
        "NST_BOT_DATA_DIR at a writable directory"
    )
    assert found["cache dir"] == (
        f"✗ cache dir: {blocker / 'cache'} cannot be created: {blocker} is not a directory; make it writable "
        "by the bot's user, or point NST_BOT_CACHE_DIR at a writable directory"
    )
    assert re.fullmatch(
        rf"✗ presets: {re.escape(str(catalogue))}: not valid TOML: .+; correct {re.escape(str(catalogue))}",
        found["presets"],
    ), found["presets"]


async def test_a_full_disk(
    fake_discord: FakeDiscord, environment: dict[str, str], config_dir: Path, tmp_path: Path
) -> None:
    await sync(fake_discord, config_dir, tmp_path, guild=False)
    environment["FAKE_DISK_FREE_BYTES"] = "1024"
    done = await run(["check"], environment)
    assert done.returncode == 1, done.stdout + done.stderr[-3000:]
    found = lines(done)
    for name, variable in (("data dir", "NST_BOT_DATA_DIR"), ("cache dir", "NST_BOT_CACHE_DIR")):
        assert re.fullmatch(
            rf"✗ {name}: /\S+: only 1\.0 KiB free; free some space, or point {variable} at a larger disk "
            r"\(at least \d+\.\d [KMG]iB\)",
            found[name],
        ), found[name]


async def test_a_check_that_crashes_is_a_line_too(
    fake_discord: FakeDiscord, environment: dict[str, str], config_dir: Path, tmp_path: Path
) -> None:
    """An error no check foresees (here the disk failing) is its ✗ line; the others still run;
    ``NST_DEBUG=1`` prints its traceback on stderr."""
    await sync(fake_discord, config_dir, tmp_path, guild=False)
    environment["FAKE_DISK_ERRNO"] = "5"
    environment["NST_DEBUG"] = "1"
    done = await run(["check"], environment)
    assert done.returncode == 1, done.stdout + done.stderr[-3000:]
    found = lines(done)
    assert list(found) == CHECKS
    for name in ("data dir", "cache dir"):
        assert found[name].startswith(f"✗ {name}: unexpected OSError: [Errno 5] Input/output error: "), found
        assert found[name].endswith("; set NST_DEBUG=1 to see the traceback")
    assert all(found[name].startswith("✓ ") for name in CHECKS[:5]), done.stdout
    assert done.stderr.count("Traceback") == 2


def no_dns(fake: FakeDiscord, environment: dict[str, str], port: int) -> None:
    environment["FAKE_DISCORD_API"] = "https://discord.invalid/api/v10"


def refused(fake: FakeDiscord, environment: dict[str, str], port: int) -> None:
    environment["FAKE_DISCORD_API"] = f"http://127.0.0.1:{port}/api/v10"


def not_tls(fake: FakeDiscord, environment: dict[str, str], port: int) -> None:
    environment["FAKE_DISCORD_API"] = f"https://127.0.0.1:{fake.port}/api/v10"


def proxy_down(fake: FakeDiscord, environment: dict[str, str], port: int) -> None:
    environment["NST_BOT_PROXY"] = f"http://127.0.0.1:{port}"


def outage(fake: FakeDiscord, environment: dict[str, str], port: int) -> None:
    fake.fail(503, "users_me")


def no_answer(fake: FakeDiscord, environment: dict[str, str], port: int) -> None:
    fake.inject(FaultRule(status=500, route="users_me", delay=8.0))
    environment["NST_BOT_CONNECT_TIMEOUT"] = "2"


#: Each way of failing to reach Discord (``port`` is a closed one), and the token line's pattern.
NETWORK_FAILURES: dict[str, tuple[Callable[[FakeDiscord, dict[str, str], int], None], str]] = {
    "no DNS": (
        no_dns,
        r"cannot resolve discord\.invalid \(DNS lookup failed: .+\); check this machine's DNS and network "
        r"connection; allow outgoing HTTPS to Discord in the firewall, or set NST_BOT_PROXY to your proxy",
    ),
    "refused": (
        refused,
        r"127\.0\.0\.1:PORT refused the connection; allow outgoing HTTPS to Discord in the firewall, or set "
        r"NST_BOT_PROXY to your proxy",
    ),
    "not TLS": (
        not_tls,
        r"the TLS handshake with 127\.0\.0\.1:\d+ failed \(.+\); something on the network answers instead "
        r"of Discord \(a captive portal or a proxy\): check the network, or set NST_BOT_PROXY to your proxy",
    ),
    "proxy down": (
        proxy_down,
        r"cannot reach the proxy http://127\.0\.0\.1:PORT \(Connection refused\); check NST_BOT_PROXY and "
        r"that the proxy is running",
    ),
    "5xx": (
        outage,
        r"Discord answered 503 Service Unavailable \(a failure on Discord's side\); wait and start again; "
        r"https://discordstatus\.com shows outages",
    ),
    "timeout": (
        no_answer,
        r"127\.0\.0\.1 did not answer within 2 s; a firewall may be dropping traffic to Discord, or Discord "
        r"is slow: allow outgoing HTTPS to Discord in the firewall, or set NST_BOT_PROXY to your proxy, or "
        r"raise NST_BOT_CONNECT_TIMEOUT",
    ),
}


@pytest.mark.parametrize("failure", list(NETWORK_FAILURES))
async def test_the_token_line_when_discord_cannot_be_reached(
    failure: str, fake_discord: FakeDiscord, environment: dict[str, str]
) -> None:
    """The same one-line causes and fixes as a failed start (tests/e2e/test_startup.py)."""
    inject, expected = NETWORK_FAILURES[failure]
    port = closed_port()
    inject(fake_discord, environment, port)
    done = await run(["check"], environment)
    assert done.returncode == 1, done.stdout + done.stderr[-3000:]
    found = lines(done)
    assert re.fullmatch("✗ token: " + expected.replace("PORT", str(port)), found["token"]), found["token"]
    assert found["commands"] == "✗ commands: not checked (no login); fix the token line above first"


async def test_commands_never_synced(fake_discord: FakeDiscord, make_settings) -> None:
    """The ✗ an operator sees before the first ``nst-bot sync``, globally and in a guild."""
    settings = make_settings()
    bot = NSTBot(settings, commands_only=True)
    connection = Connection(None, 30.0)
    async with bot:
        await login(bot, settings)
        globally = await _commands_check(bot, None, connection)
        in_guild = await _commands_check(bot, fake_discord.guild_id, connection)
        fake_discord.guild_commands[fake_discord.guild_id] = []
        await bot.tree.sync(guild=discord.Object(id=fake_discord.guild_id))
        synced = await _commands_check(bot, fake_discord.guild_id, connection)
    assert globally.line == "✗ commands: none registered globally; run nst-bot sync"
    guild = fake_discord.guild_id
    assert in_guild.line == f"✗ commands: none registered in guild {guild}; run nst-bot sync --guild {guild}"
    assert synced.failure is None, synced.line


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path, password="right-one")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_a_wrong_redis_password_reads_as_at_start(
    environment: dict[str, str], redis: RedisServer
) -> None:
    """The check and the start classify Redis's refusal in one place: same words, same status."""
    environment["NST_BOT_QUEUE_URL"] = f"redis://:wrong-one@127.0.0.1:{redis.port}/0"
    checked, started = await run(["check"], environment), await run([], environment)
    found = lines(checked)
    assert list(found) == QUEUE_CHECKS
    assert found["queue"].startswith(
        f"✗ queue: Redis at redis://:***@127.0.0.1:{redis.port}/0 refused the bot's credentials ("
    )
    assert found["queue"].endswith("); correct the password in queue_url (NST_BOT_QUEUE_URL)")
    assert found["queue"].removeprefix("✗ queue: ") == started.stderr.strip().removeprefix("nst-bot: ")
    assert checked.returncode == started.returncode == 2
    assert "wrong-one" not in checked.stdout + checked.stderr


async def test_redis_not_running(
    fake_discord: FakeDiscord, environment: dict[str, str], config_dir: Path, tmp_path: Path
) -> None:
    await sync(fake_discord, config_dir, tmp_path, guild=False)
    port = closed_port()
    environment["NST_BOT_QUEUE_URL"] = f"redis://127.0.0.1:{port}/0"
    done = await run(["check"], environment)
    assert done.returncode == 1, done.stdout + done.stderr[-3000:]
    queue = lines(done)["queue"]
    assert queue.startswith(f"✗ queue: Redis at redis://127.0.0.1:{port}/0 did not answer (")
    assert queue.endswith(
        "); start Redis, or correct queue_url (NST_BOT_QUEUE_URL); README, 'More than one machine'"
    )


async def test_redis_without_a_worker(
    fake_discord: FakeDiscord,
    environment: dict[str, str],
    config_dir: Path,
    tmp_path: Path,
    redis: RedisServer,
) -> None:
    await sync(fake_discord, config_dir, tmp_path, guild=False)
    environment["NST_BOT_QUEUE_URL"] = redis.url
    done = await run(["check"], environment)
    assert done.returncode == 1, done.stdout + done.stderr[-3000:]
    assert lines(done)["queue"] == (
        f"✗ queue: Redis at redis://:***@127.0.0.1:{redis.port}/0 answers, but no nst-worker is running; "
        "start one per GPU: nst-worker --device cuda:0 (README, 'More than one machine')"
    )


async def test_the_queue_line_names_the_workers_and_where_the_model_is_checked(
    make_settings: Callable[..., Settings], redis: RedisServer
) -> None:
    """With workers the bot loads no model, so the line says how to see a job's device and precision."""
    from redis.asyncio import Redis

    from nst_queue.protocol import WORKER_KEY_PREFIX

    client = Redis.from_url(redis.url)
    try:
        await client.set(f"{WORKER_KEY_PREFIX}gpu-box:4242", "alive", ex=60)
    finally:
        await client.aclose()
    check = await _queue_check(make_settings(queue_url=redis.url, precision="auto"))
    assert check.line == (
        f"✓ queue: Redis at redis://:***@127.0.0.1:{redis.port}/0 answers; 1 worker(s): gpu-box:4242. "
        "The workers load the model; to see the device and precision a job gets, paint one: nst PHOTO "
        "PAINTING -o out.png --queue URL --precision auto (its last line says 'on DEVICE/PRECISION')"
    )
