"""``nst-bot check``: one ✓ or ✗ line per part, through the real entry point against the fake.

Each failure is injected once: bad settings, no token, a refused token, commands missing or
changed, a model that does not load, a preset file missing, a data directory that cannot be
created. The exit status is 0 only when every line is ✓.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import discord
import pytest

from bot.app import NSTBot
from bot.doctor import _commands_check
from bot.startup import Connection, login
from tests.e2e.entry_point import Run, base_environment, run
from tests.fakediscord import FakeDiscord
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


async def sync(fake: FakeDiscord, environment: dict[str, str]) -> None:
    done = await run(["sync", "--guild", str(fake.guild_id)], environment)
    assert done.returncode == 0, done.stderr[-3000:]


async def test_all_well(fake_discord: FakeDiscord, environment: dict[str, str], tmp_path: Path) -> None:
    await sync(fake_discord, environment)
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


async def test_local_failures_and_changed_commands(
    fake_discord: FakeDiscord, environment: dict[str, str], config_dir: Path, tmp_path: Path
) -> None:
    """Commands changed since the sync, weights that do not load, a preset image missing, a data dir
    that cannot be created: each its own ✗ with its fix; the other lines stay ✓."""
    await sync(fake_discord, environment)
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
