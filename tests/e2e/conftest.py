"""Fixtures for end-to-end tests: the fake Discord, tiny-run settings, the real bot on top."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.app import NSTBot
from bot.settings import Settings
from tests.e2e.harness import running_bot
from tests.fakediscord import FakeAttachment, FakeDiscord, FakeMessage
from tests.helpers.images import content_image, png_bytes, stripes_style

#: Output sizes small/medium/large in tests: tiny, so a run takes a fraction of a second.
TEST_SIZES = {"small": 32, "medium": 40, "large": 48}


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A config dir with one local-file preset (no network needed)."""
    directory = tmp_path / "config"
    (directory / "paintings").mkdir(parents=True)
    stripes_style(48, 48).save(directory / "paintings" / "stripes.png")
    (directory / "presets.toml").write_text(
        '[[preset]]\nname = "stripes"\ntitle = "Stripes"\nartist = "Test Painter"\nyear = "2024"\n'
        'licence = "CC0"\nsource = "file:paintings/stripes.png"\n',
        encoding="utf-8",
    )
    return directory


@pytest.fixture
def make_settings(tmp_path: Path, config_dir: Path, fake_discord: FakeDiscord) -> Callable[..., Settings]:
    # Discord's 3 s acknowledgement deadline, loosened for two shared CPU cores where a busy machine
    # can stall any process; test_flow still asserts the defer came within 3 s on the main path.
    fake_discord.ack_deadline = 10.0

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = dict(
            data_dir=tmp_path / "data",
            cache_dir=tmp_path / "cache",
            config_dir=config_dir,
            concurrency=1,
            queue_cap=50,
            per_user_limit=1,
            cooldown_seconds=0.0,
            progress_interval=0.2,
            preview_count=1,
            preview_size=32,
            sizes=TEST_SIZES,
            iterations=4,
            scales=1,
            device="cpu",
            precision="fp32",
            token=fake_discord.token,
        )
        values.update(overrides)
        return Settings(**values)

    return build


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@contextlib.asynccontextmanager
async def started(settings: Settings, fake: FakeDiscord) -> AsyncIterator[NSTBot]:
    """The real bot, connected to the fake and with its model loaded."""
    bot = NSTBot(settings, guild_ready_timeout=0.05)
    async with running_bot(bot, fake):
        await fake.wait_for(lambda: bot.model_ready.is_set(), timeout=60)
        yield bot


@pytest.fixture
async def stylebot(settings: Settings, fake_discord: FakeDiscord) -> AsyncIterator[NSTBot]:
    async with started(settings, fake_discord) as bot:
        yield bot


def photo(fake: FakeDiscord, width: int = 48, height: int = 40) -> FakeAttachment:
    return fake.make_attachment(
        png_bytes(content_image(width, height)), "photo.png", content_type="image/png"
    )


def painting(fake: FakeDiscord) -> FakeAttachment:
    return fake.make_attachment(png_bytes(stripes_style(48, 48)), "painting.png", content_type="image/png")


def results(fake: FakeDiscord) -> list[FakeMessage]:
    """Messages carrying a painted result, oldest first."""
    return [
        m
        for m in fake.messages.values()
        if not m.deleted and any(a.filename.startswith("stylized-") for a in m.attachments)
    ]


def result_file(message: FakeMessage) -> FakeAttachment:
    return next(a for a in message.attachments if a.filename.startswith("stylized-"))
