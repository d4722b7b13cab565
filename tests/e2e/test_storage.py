"""What the bot keeps of users' pictures, and how it fails when it cannot: through the real bot.

Admission takes a user's place before anything is downloaded; the inputs of jobs that end
without a result are deleted; a full disk and a locked database end in a message to the user on
every path (command, button, reaction), never in a "thinking…" that lasts forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import bot.core.local_backend as backends_module
import bot.core.store as store_module
from bot.core.settings import Settings
from bot.core.texts import CANCELLING, DATABASE_BUSY_TEXT, DISK_FULL_TEXT, REQUESTER_ONLY_TEXT
from nst_engine.errors import Cancelled
from tests.e2e.conftest import painting, photo, results, started
from tests.e2e.harness import files_under
from tests.fakediscord import FakeDiscord, FakeInteraction
from tests.helpers.images import LOCATION_MARKERS, jpeg_with_location


async def test_simultaneous_requests_over_the_limit_are_refused_before_any_download(
    fake_discord: FakeDiscord, make_settings: Callable[..., Settings]
) -> None:
    async with started(make_settings(iterations=2), fake_discord) as bot:
        photos = [photo(fake_discord) for _ in range(5)]
        interactions = await asyncio.gather(
            *(
                fake_discord.slash_command(
                    "stylize", {"content": p, "style": painting(fake_discord)}, user=fake_discord.alice
                )
                for p in photos
            )
        )
        await fake_discord.wait_for(lambda: results(fake_discord), timeout=60)
        await fake_discord.wait_for(lambda: not bot.runner.active, timeout=30)
    refused = [i for i in interactions if "already have 1 job" in fake_discord.original(i).content]
    assert len(refused) == 4 and all(fake_discord.original(i).ephemeral for i in refused)
    assert sorted(p.downloads for p in photos) == [0, 0, 0, 0, 1], "refused before downloading"
    assert len(results(fake_discord)) == 1


async def test_a_failed_request_gives_its_place_and_cooldown_back(
    fake_discord: FakeDiscord, make_settings: Callable[..., Settings]
) -> None:
    async with started(make_settings(cooldown_seconds=600.0), fake_discord):
        broken = fake_discord.make_attachment(b"not an image", "photo.png", content_type="image/png")
        await fake_discord.slash_command(
            "stylize", {"content": broken, "style": painting(fake_discord)}, user=fake_discord.bob
        )
        await fake_discord.wait_for(lambda: fake_discord.find_messages("can't use"))
        await fake_discord.slash_command(
            "stylize",
            {"content": photo(fake_discord), "style": painting(fake_discord)},
            user=fake_discord.bob,
        )
        await fake_discord.wait_for(lambda: results(fake_discord), timeout=60)


async def test_the_inputs_of_a_cancelled_job_are_deleted_when_it_ends(
    fake_discord: FakeDiscord, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(iterations=2000, progress_interval=0.05)
    async with started(settings, fake_discord) as bot:
        interaction = await fake_discord.slash_command(
            "stylize", {"content": photo(fake_discord), "style": painting(fake_discord)}
        )
        progress = await fake_discord.wait_for(
            lambda: (m := fake_discord.original(interaction)) and m.buttons() and m, timeout=30
        )
        await fake_discord.wait_for(lambda: bot.queue.running == 1, timeout=30)
        assert len(files_under(settings.inputs_dir)) == 2
        await fake_discord.click(progress, "Cancel", user=fake_discord.alice)
        await fake_discord.wait_for(lambda: "Cancelled" in progress.content, timeout=30)
        await fake_discord.wait_for(lambda: not bot.runner.active, timeout=30)
        assert files_under(settings.inputs_dir) == set()
        [record] = bot.store.with_status(store_module.JobStatus.CANCELLED)
        assert record.expired and record.content_path is None


async def test_a_full_disk_is_told_and_leaves_no_temporary_file(
    fake_discord: FakeDiscord, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings()

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    async with started(settings, fake_discord) as bot:
        monkeypatch.setattr(os, "fsync", disk_full)
        interaction = await fake_discord.slash_command(
            "stylize", {"content": photo(fake_discord), "style": painting(fake_discord)}
        )
        [told] = await fake_discord.wait_for(lambda: fake_discord.find_messages("disk is full"), timeout=30)
        assert told.text().endswith(DISK_FULL_TEXT) and "/" not in told.text()
        assert not fake_discord.original(interaction).loading
        assert files_under(settings.inputs_dir) == set()
        assert bot.store.with_status(*store_module.JobStatus) == []


@contextlib.contextmanager
def locked(*paths: Path) -> Iterator[None]:
    """Another process holds these databases (an exclusive transaction: no reads, no writes)."""
    others = [sqlite3.connect(path, isolation_level=None) for path in paths]
    try:
        for other in others:
            other.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        for other in others:
            other.execute("ROLLBACK")
            other.close()


def acknowledged(fake: FakeDiscord, interactions: list[FakeInteraction]) -> bool:
    """Whether Discord took an answer to each (a response or a defer) within its 3 s deadline."""
    return all(i.response_type is not None for i in interactions)


def late_answers(fake: FakeDiscord) -> list[str]:
    """Answers Discord refused as too late (10062 Unknown interaction)."""
    return [r.path for r in fake.requests_to("interaction_callback") if r.status == 404]


async def test_a_locked_database_never_keeps_an_interaction_waiting(
    fake_discord: FakeDiscord, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holds the databases longer than Discord's 3 s deadline, with SQLite's real
    5 s busy timeout: Stronger, Delete, Cancel, /stylize and /nst-admin are all acknowledged in
    time and answered once the lock goes, the reaction too; held past the busy timeout, the
    button, the command and the reaction are told the bot is busy, never left unanswered."""
    assert store_module.BUSY_TIMEOUT_SECONDS == 5.0
    fake = fake_discord
    painting_allowed = threading.Event()
    painting_allowed.set()
    real = backends_module.engine_stylize

    def held(*args: Any, **kwargs: Any) -> Any:  # a painting that waits (Cancel still stops it)
        while not painting_allowed.wait(0.05):
            if kwargs["cancel"].is_set():
                raise Cancelled()
        return real(*args, **kwargs)

    monkeypatch.setattr(backends_module, "engine_stylize", held)
    settings = make_settings()
    async with started(settings, fake) as bot:
        for count, user in enumerate((fake.alice, fake.bob), start=1):
            await fake.slash_command("stylize", {"content": photo(fake), "style": painting(fake)}, user=user)
            await fake.wait_for(lambda: len(results(fake)) == count, timeout=60)  # noqa: B023
        first, second = results(fake)
        await fake.wait_for(lambda: not bot.runner.active, timeout=30)
        painting_allowed.clear()
        command = await fake.slash_command(
            "stylize", {"content": photo(fake), "style": painting(fake)}, user=fake.moderator
        )
        progress = await fake.wait_for(
            lambda: (m := fake.original(command)) and m.buttons() and m, timeout=30
        )
        await fake.wait_for(lambda: bot.queue.running == 1, timeout=30)

        with locked(settings.database_path, settings.guild_settings_path):
            held_since = time.monotonic()
            pressed = list(
                await asyncio.gather(
                    fake.click(first, "Stronger", user=fake.alice),
                    fake.click(second, "Delete", user=fake.bob),
                    fake.click(progress, "Cancel", user=fake.moderator),
                    fake.slash_command(
                        "stylize", {"content": photo(fake), "style": painting(fake)}, user=fake.admin
                    ),
                    fake.slash_command("nst-admin spoilers", {"enabled": False}, user=fake.admin),
                )
            )
            await fake.react(second, "💪", user=fake.moderator)
            await fake.wait_for(lambda: acknowledged(fake, pressed), timeout=3.0)
            await asyncio.sleep(held_since + 3.5 - time.monotonic())  # past Discord's deadline
        stronger, _delete, cancel, stylize, admin = pressed
        await fake.wait_for(lambda: (m := fake.original(cancel)) and m.content == CANCELLING, timeout=30)
        await fake.wait_for(lambda: second.deleted, timeout=30)
        await fake.wait_for(
            lambda: (m := fake.original(admin)) and m.content.startswith("Saved."), timeout=30
        )
        await fake.wait_for(lambda: fake.find_messages(REQUESTER_ONLY_TEXT), timeout=30)
        await fake.wait_for(lambda: "Cancelled" in progress.content, timeout=30)
        painting_allowed.set()
        await fake.wait_for(lambda: len(results(fake)) == 3, timeout=60)  # Stronger's and the new one
        assert {m.interaction_id for m in results(fake)[1:]} <= {stronger.id, stylize.id, None}
        await fake.wait_for(lambda: not bot.runner.active, timeout=30)
        assert not late_answers(fake)
        stored = files_under(settings.inputs_dir)

        with locked(settings.database_path):  # past the busy timeout: told the bot is busy
            pressed = list(
                await asyncio.gather(
                    fake.click(first, "Weaker", user=fake.alice),
                    fake.slash_command(
                        "stylize", {"content": photo(fake), "style": painting(fake)}, user=fake.admin
                    ),
                )
            )
            await fake.react(first, "💪", user=fake.bob)
            await fake.wait_for(lambda: acknowledged(fake, pressed), timeout=3.0)
            for user in (fake.alice, fake.admin):
                await fake.wait_for(
                    lambda: [
                        m
                        for m in fake.find_messages(DATABASE_BUSY_TEXT)
                        if m.ephemeral and m.visible_to == user.id  # noqa: B023
                    ],
                    timeout=30,
                )
            [in_channel] = await fake.wait_for(
                lambda: [m for m in fake.find_messages(DATABASE_BUSY_TEXT) if not m.ephemeral], timeout=30
            )
            assert fake.bob.mention in in_channel.text()
        assert not late_answers(fake)
        assert not any(fake.original(i).loading for i in pressed), "no thinking… left forever"
        assert files_under(settings.inputs_dir) == stored, "the refused job's files were removed"
        await fake.click(first, "Re-roll", user=fake.alice)
        await fake.wait_for(lambda: len(results(fake)) == 4, timeout=60)


def read_file(path: str) -> bytes:
    return Path(path).read_bytes()


def scan_data(jpeg: bytes) -> bytes:
    """A JPEG's compressed picture: from its first start-of-scan marker to its end."""
    start = jpeg.index(b"\xff\xda")
    return jpeg[start : jpeg.index(b"\xff\xd9", start) + 2]


async def test_a_phone_photo_and_painting_are_stored_without_their_location(
    fake_discord: FakeDiscord, make_settings: Callable[..., Settings]
) -> None:
    """Photos small enough to keep as sent were kept with their EXIF GPS block for the retention
    period. Now the stored JPEG keeps its compressed picture byte for byte and no metadata, and a
    photo that only EXIF turned upright is stored upright, as lossless WebP."""
    settings = make_settings(iterations=2)
    upright, turned = jpeg_with_location(48, 40), jpeg_with_location(40, 48, orientation=6)
    async with started(settings, fake_discord) as bot:
        uploads = {
            "content": fake_discord.make_attachment(upright, "IMG_0001.jpg", content_type="image/jpeg"),
            "style": fake_discord.make_attachment(turned, "IMG_0002.jpg", content_type="image/jpeg"),
        }
        await fake_discord.slash_command("stylize", uploads, user=fake_discord.alice)
        [result] = await fake_discord.wait_for(lambda: results(fake_discord), timeout=60)
        record = bot.store.by_result_message(result.id)
        assert record is not None and record.content_path and record.style_path
    assert files_under(settings.inputs_dir) == {Path(record.content_path), Path(record.style_path)}
    content, style = read_file(record.content_path), read_file(record.style_path)
    for stored in (content, style):
        assert not [marker for marker in LOCATION_MARKERS if marker in stored]
        with Image.open(io.BytesIO(stored)) as image:
            assert not image.getexif() and "comment" not in image.info
    assert scan_data(content) == scan_data(upright) and len(content) < len(upright), "not recompressed"
    with Image.open(io.BytesIO(style)) as kept_style:
        assert kept_style.format == "WEBP" and kept_style.size == (48, 40), "upright"
