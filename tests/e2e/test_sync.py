"""``nst-bot sync --guild ID`` registers commands whose shape Discord accepts and the bot's own
handlers then receive: run the real entry point in a child process against the fake."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import discord

from tests.e2e.conftest import painting, photo, results, started
from tests.fakediscord import FakeDiscord
from tests.helpers import REPO_ROOT


async def test_nst_bot_sync_to_a_guild(fake_discord: FakeDiscord, config_dir: Path, tmp_path: Path) -> None:
    """It may run beside the bot: it takes no data dir lock and leaves the data dir's files alone
    (opening the job store there deleted a running bot's input write in progress)."""
    in_progress = tmp_path / "sync-data" / "inputs" / ".job-content-1234.jpeg.x7.part"
    in_progress.parent.mkdir(parents=True)
    in_progress.write_bytes(b"half a photo")
    environment = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "FAKE_DISCORD_API": fake_discord.api_base,
        "FAKE_DISCORD_GATEWAY": fake_discord.gateway_url,
        "DISCORD_TOKEN": fake_discord.token,
        "NST_CONFIG_DIR": str(config_dir),
        "NST_BOT_DATA_DIR": str(tmp_path / "sync-data"),
        "NST_BOT_DEVICE": "cpu",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.e2e.bot_process",
        "sync",
        "--guild",
        str(fake_discord.guild_id),
        env=environment,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, stderr.decode(errors="replace")[-2000:]
    assert b"synced" in stdout
    assert fake_discord.identifies == [], "syncing must not open the gateway"
    assert in_progress.read_bytes() == b"half a photo"
    assert sorted(path.name for path in (tmp_path / "sync-data").iterdir()) == ["inputs"]

    commands = {c["name"]: c for c in fake_discord.guild_commands[fake_discord.guild_id]}
    assert {"stylize", "presets"} <= set(commands)
    options = {o["name"]: o for o in commands["stylize"]["options"]}
    assert options["content"]["type"] == 11 and options["content"]["required"] is True
    assert options["style"]["type"] == 11 and not options["style"].get("required")
    assert [c["value"] for c in options["strength"]["choices"]] == ["subtle", "normal", "strong", "extreme"]


async def test_synced_command_shape_matches_what_the_handler_receives(
    fake_discord: FakeDiscord, make_settings
) -> None:
    async with started(make_settings(), fake_discord) as bot:
        guild = discord.Object(id=fake_discord.guild_id)
        bot.tree.copy_global_to(guild=guild)
        await bot.tree.sync(guild=guild)
        options = {o["name"]: o for o in fake_discord.guild_commands[fake_discord.guild_id][0]["options"]}
        assert options["content"]["type"] == 11 and options["content"]["required"] is True
        assert [c["value"] for c in options["strength"]["choices"]] == [
            "subtle",
            "normal",
            "strong",
            "extreme",
        ]
        # the fake now types every option from the synced declaration (and refuses undeclared ones)
        await fake_discord.slash_command(
            "stylize",
            {
                "content": photo(fake_discord),
                "style": painting(fake_discord),
                "strength": "strong",
                "size": "small",
            },
        )
        [result] = await fake_discord.wait_for(lambda: results(fake_discord), timeout=60)
    assert "strong" in result.text()
