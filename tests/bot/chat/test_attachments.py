"""Attachment downloads: the bot's proxy setting applies to them as to the rest of its traffic; a
clip over the limits is refused while it downloads."""

from __future__ import annotations

import asyncio
import io
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from PIL import Image

from bot.chat.attachments import UnusableAttachment, download_input, read_attachment
from bot.core.runner import ImageThreads
from bot.core.settings import Settings


async def test_a_download_goes_through_the_bot_proxy() -> None:
    """A bot that reaches Discord only through a proxy must fetch attachments through it too."""
    seen: list[str] = []

    async def proxy(request: web.Request) -> web.Response:
        seen.append(str(request.url))  # a forward proxy is asked for the absolute URL
        return web.Response(body=b"painting bytes")

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", proxy)
    async with TestServer(app, host="127.0.0.1") as server:
        data = await read_attachment(
            "http://cdn.discordapp.invalid/attachments/1/2/photo.png",
            max_bytes=1024,
            proxy=f"http://127.0.0.1:{server.port}",
        )
    assert data == b"painting bytes"
    assert seen and seen[0].endswith("/attachments/1/2/photo.png")


async def test_a_clip_over_the_length_limit_is_refused_before_its_download_ends(tmp_path: Path) -> None:
    """The header is read as the bytes arrive: a GIF of 6 s against a limit of 1 s is refused
    while most of it is still unsent."""
    clip = noisy_gif(frames=30, side=96, duration_ms=200)
    sent = [0]

    async def slow_cdn(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/gif"})
        await response.prepare(request)
        for start in range(0, len(clip), 16 * 1024):
            await response.write(clip[start : start + 16 * 1024])
            sent[0] = start + 16 * 1024
            await asyncio.sleep(0.02)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/clip.gif", slow_cdn)
    settings = Settings(data_dir=tmp_path, animation_max_seconds=1.0)
    images = ImageThreads()
    try:
        async with TestServer(app, host="127.0.0.1") as server:
            attachment = SimpleNamespace(url=f"http://127.0.0.1:{server.port}/clip.gif", size=len(clip))
            with pytest.raises(UnusableAttachment) as refused:
                await download_input(
                    attachment,  # type: ignore[arg-type]  # what download_input reads of an attachment
                    "photo",
                    settings=settings,
                    max_side=64,
                    images=images,
                    animated=True,
                )
    finally:
        images.close()
    assert "The clip is longer than the limit of 1 seconds." in str(refused.value)
    assert sent[0] < len(clip) / 2, f"{sent[0]} of {len(clip)} bytes were sent before the refusal"


def noisy_gif(*, frames: int, side: int, duration_ms: int) -> bytes:
    """Frames of noise (they do not compress), so the file is larger than one download chunk."""
    noise = random.Random(0)
    images = [
        Image.frombytes("L", (side, side), noise.randbytes(side * side)).convert("P") for _ in range(frames)
    ]
    buffer = io.BytesIO()
    images[0].save(buffer, "GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    return buffer.getvalue()
