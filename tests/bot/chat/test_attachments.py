"""Attachment downloads: the bot's proxy setting applies to them as to the rest of its traffic."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.chat.attachments import read_attachment


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
