"""Downloading a user's attachment: the bytes are counted while they stream in.

``attachment.size`` is what Discord (or a client) claims; the cap is enforced on what actually
arrives, so a file larger than it says is stopped at the cap instead of being read into memory.
A broken or stalled download ends in :class:`DownloadFailed`, which the cog turns into a short
"could not download" message.
"""

from __future__ import annotations

import asyncio

import aiohttp

#: A whole download, the wait for its connection, and the longest silence between two reads.
ATTACHMENT_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=15, sock_read=20)
_CHUNK = 64 * 1024


class DownloadTooLarge(Exception):
    """More bytes arrived (or were announced) than the cap allows."""


class DownloadFailed(Exception):
    """The download broke off, timed out or was refused; the message is for the log."""


async def read_attachment(url: str, max_bytes: int, proxy: str | None = None) -> bytes:
    """The body at ``url``, at most ``max_bytes`` of it (else :class:`DownloadTooLarge`).

    ``proxy`` is the bot's own ``proxy`` setting: a bot that reaches Discord only through a proxy
    reaches its CDN, where attachments live, the same way.
    """
    try:
        async with (
            aiohttp.ClientSession(timeout=ATTACHMENT_TIMEOUT) as session,
            session.get(url, proxy=proxy) as response,
        ):
            if response.status != 200:
                raise DownloadFailed(f"HTTP {response.status}")
            if response.content_length is not None and response.content_length > max_bytes:
                raise DownloadTooLarge()
            data = bytearray()
            async for chunk in response.content.iter_chunked(_CHUNK):
                data += chunk
                if len(data) > max_bytes:
                    raise DownloadTooLarge()
            return bytes(data)
    except (aiohttp.ClientError, asyncio.TimeoutError) as error:  # ClientPayloadError included
        raise DownloadFailed(f"{type(error).__name__}: {error}") from None
