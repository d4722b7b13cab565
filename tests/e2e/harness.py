"""Running the real bot against the fake Discord, and reading what users got back.

Bot-agnostic pieces only: start/stop a ``discord.Client`` subclass over the fake, decode result
images, compare pictures, watch a directory for leftovers.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path

import discord
from PIL import Image, ImageChops, ImageStat

from tests.fakediscord import FakeAttachment, FakeDiscord, FakeMessage


@contextlib.asynccontextmanager
async def running_bot(
    client: discord.Client, fake: FakeDiscord, *, ready_timeout: float = 60.0
) -> AsyncIterator[discord.Client]:
    """Start ``client`` with the fake's token, wait for READY, close it when the block ends.

    If the client dies while starting (an exception in ``setup_hook``...), the error surfaces
    here instead of as a ready timeout.
    """
    task = asyncio.create_task(client.start(fake.token), name="bot-under-test")
    ready = asyncio.create_task(client.wait_until_ready())
    done, _ = await asyncio.wait({task, ready}, timeout=ready_timeout, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        ready.cancel()
        task.result()  # re-raise the start-up failure
        raise AssertionError("the bot stopped before it was ready")
    if ready not in done:
        ready.cancel()
        await client.close()
        raise AssertionError(f"the bot was not ready after {ready_timeout}s\n{fake.describe()}")
    try:
        yield client
    finally:
        await client.close()
        with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
            await asyncio.wait_for(task, timeout=30)


def decode(attachment: FakeAttachment) -> Image.Image:
    """The attachment as a fully loaded RGB image (raises if it is not a picture)."""
    with Image.open(io.BytesIO(attachment.data)) as image:
        image.load()
        return image.convert("RGB")


def frames_and_durations(data: bytes) -> tuple[int, list[int]]:
    with Image.open(io.BytesIO(data)) as image:
        durations = []
        for index in range(image.n_frames):
            image.seek(index)
            image.load()  # WebP sets a frame's duration when it is read
            durations.append(int(image.info.get("duration", 0)))
        return image.n_frames, durations


def image_attachments(message: FakeMessage) -> list[FakeAttachment]:
    return [a for a in message.attachments if a.filename.lower().endswith((".png", ".jpg", ".jpeg", ".webp"))]


def mean_difference(first: Image.Image, second: Image.Image) -> float:
    """Mean absolute per-channel difference (0-255) after resizing ``second`` to ``first``."""
    other = second.convert("RGB").resize(first.size)
    diff = ImageChops.difference(first.convert("RGB"), other)
    return sum(ImageStat.Stat(diff).mean) / 3


def files_under(path: Path) -> set[Path]:
    """Every file below ``path`` (empty set when it does not exist)."""
    if not path.exists():
        return set()
    return {Path(root) / name for root, _, names in os.walk(path) for name in names}


def mode_bits(path: Path) -> int:
    return path.stat().st_mode & 0o777
