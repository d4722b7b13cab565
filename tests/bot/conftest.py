"""Fixtures for the bot's handler tests: a real NSTBot on tiny settings and spec'd Discord mocks.

The bot is constructed but never connected: handlers are called directly, their Discord calls
land on ``MagicMock(spec=...)`` objects (so a misspelt method fails), and the real engine paints
48-px pictures in a few iterations.
"""

from __future__ import annotations

import asyncio
import io
import itertools
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock, MagicMock

import aiohttp
import discord
import pytest
from PIL import Image

from bot.chat.app import NSTBot
from bot.chat.cogs.presets import PresetsCog
from bot.chat.cogs.stylize import StylizeCog
from bot.chat.controls import JobControls
from bot.core.settings import Settings
from tests.helpers.preset_http import PresetHTTPServer, Route

_ids = itertools.count(1000)


def tiny_settings(tmp_path: Path, **changes: Any) -> Settings:
    values: dict[str, Any] = dict(
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
        concurrency=1,
        queue_cap=5,
        per_user_limit=1,
        cooldown_seconds=0,
        progress_interval=0,
        preview_count=1,
        preview_size=32,
        sizes={"small": 40, "medium": 48, "large": 56},
        iterations=4,
        scales=1,
        device="cpu",
        precision="fp32",
    )
    values.update(changes)
    return Settings(**values)


@pytest.fixture
async def make_bot(tmp_path: Path):
    """``await make_bot(**settings_changes)`` -> a bot with its cog loaded; closed at the end."""
    bots: list[NSTBot] = []

    async def build(**changes: Any) -> NSTBot:
        bot = NSTBot(tiny_settings(tmp_path, **changes))
        await bot.load_commands()
        bots.append(bot)
        return bot

    yield build
    for bot in bots:
        if bot._purge_task is not None:
            bot._purge_task.cancel()
        await bot.queue.shutdown(timeout=10)
        bot.store.close()


def cog_of(bot: NSTBot) -> StylizeCog:
    cog = bot.get_cog("StylizeCog")
    assert isinstance(cog, StylizeCog)
    return cog


def presets_cog_of(bot: NSTBot) -> PresetsCog:
    cog = bot.get_cog("PresetsCog")
    assert isinstance(cog, PresetsCog)
    return cog


def controls_of(bot: NSTBot) -> JobControls:
    """What the job buttons (through ``bot.buttons``) and the reaction call."""
    assert bot.buttons is bot.controls and isinstance(bot.controls, JobControls)
    return bot.controls


def make_message(cls: type = discord.WebhookMessage) -> MagicMock:
    message = MagicMock(spec=cls)
    message.id = next(_ids)
    message.edit = AsyncMock(return_value=message)
    message.add_reaction = AsyncMock()
    message.delete = AsyncMock()
    return message


def make_channel() -> MagicMock:
    channel = MagicMock(spec=discord.TextChannel)
    channel.id = next(_ids)
    channel.guild = MagicMock(spec=discord.Guild)
    channel.guild.filesize_limit = 10 * 1024 * 1024
    channel.send = AsyncMock(side_effect=lambda *a, **k: make_message(discord.Message))
    return channel


def make_interaction(
    user_id: int = 42, *, channel: MagicMock | None = None, manage_messages: bool = False
) -> MagicMock:
    interaction = MagicMock(spec=discord.Interaction)
    interaction.user = MagicMock(spec=discord.Member)
    interaction.user.id = user_id
    interaction.channel = channel or make_channel()
    interaction.channel_id = interaction.channel.id
    interaction.guild_id = 1
    interaction.filesize_limit = 10 * 1024 * 1024
    interaction.permissions = discord.Permissions(manage_messages=manage_messages)
    interaction.response = MagicMock(spec=discord.InteractionResponse)
    interaction.response.defer = AsyncMock()
    interaction.response.send_message = AsyncMock()
    interaction.response.is_done = MagicMock(return_value=False)
    interaction.followup = MagicMock(spec=discord.Webhook)
    sent: list[MagicMock] = []

    def followup_send(*args: Any, **kwargs: Any) -> MagicMock:
        message = make_message()
        sent.append(message)
        return message

    interaction.followup.send = AsyncMock(side_effect=followup_send)
    # One recorder for every message the interaction shows, in order: the answer written into the
    # deferred original response (Edit Original Interaction Response), then the followups.
    interaction.edit_original_response = interaction.followup.send
    interaction.extras = {}
    interaction.sent_messages = sent  # those messages, in order (not a discord attribute)
    return interaction


_cdn: PresetHTTPServer | None = None


def cdn() -> PresetHTTPServer:
    """A local HTTP server standing in for Discord's CDN (one per test process, started once)."""
    global _cdn
    if _cdn is None:
        _cdn = PresetHTTPServer().__enter__()
    return _cdn


def make_attachment(
    data: bytes, filename: str = "photo.png", size: int | None = None, *, route: Route | None = None
) -> MagicMock:
    """An attachment whose bytes are served at ``attachment.url`` (``route``: how they are served).

    ``read()`` does what discord.py's does: one GET of the whole body (an error status becomes an
    ``HTTPException``; a broken body raises aiohttp's own error).
    """
    attachment = MagicMock(spec=discord.Attachment)
    attachment.filename = filename
    attachment.size = len(data) if size is None else size
    attachment.content_type = "image/png"
    attachment.is_spoiler = MagicMock(return_value=filename.startswith("SPOILER_"))
    path = f"/attachments/{next(_ids)}/{filename.replace('/', '_')}"
    cdn().routes[path] = route or Route(body=data)
    attachment.url = cdn().url(path)

    async def read() -> bytes:
        async with aiohttp.ClientSession() as session, session.get(attachment.url) as response:
            if response.status != 200:
                raise discord.HTTPException(response, "download failed")
            return await response.read()

    attachment.read = AsyncMock(side_effect=read)
    return attachment


def sent_files(mock_send: AsyncMock) -> list[discord.File]:
    return [file for call in mock_send.call_args_list for file in call.kwargs.get("files", ())]


def decode_file(file: discord.File) -> Image.Image:
    file.fp.seek(0)
    with Image.open(io.BytesIO(file.fp.read())) as image:
        image.load()
        return image.convert("RGB")


def texts(*mocks: AsyncMock) -> list[str]:
    """Every text the mocks were called with (positional content or ``content=``)."""
    found: list[str] = []
    for mock in mocks:
        for call in mock.call_args_list:
            text = call.args[0] if call.args else call.kwargs.get("content")
            if isinstance(text, str):
                found.append(text)
    return found


async def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def run_until_running(bot: NSTBot, interaction: MagicMock) -> asyncio.Task[None]:
    """Start /stylize (content + stripes style) as a task and return once its job runs."""
    from tests.helpers.images import content_image, png_bytes, stripes_style

    content = make_attachment(png_bytes(content_image()))
    style = make_attachment(png_bytes(stripes_style()))
    cog = cog_of(bot)
    task = asyncio.create_task(cog.handle_stylize(interaction, content, style=style))
    await wait_for(lambda: bot.queue.running == 1 and bool(interaction.sent_messages))
    return task


def uploads(filename: str = "../../etc/passwd.png") -> tuple[MagicMock, MagicMock]:
    """A photo (under a hostile file name) and a style image, as attachments."""
    from tests.helpers.images import content_image, png_bytes, stripes_style

    return (
        make_attachment(png_bytes(content_image(64, 48)), filename),
        make_attachment(png_bytes(stripes_style()), "style.png"),
    )


async def run_stylize(bot, interaction=None, **options):
    """/stylize with :func:`uploads`, to its end; returns the interaction."""
    interaction = interaction or make_interaction()
    content, style = uploads()
    await cog_of(bot).handle_stylize(interaction, content, style=style, **options)
    return interaction
