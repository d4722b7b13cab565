"""A user's attachment made a job's input: size-checked, downloaded, decoded.

``attachment.size`` is what Discord (or a client) claims: a file that claims too much is refused
before anything is downloaded (:func:`too_large`), and the cap is enforced again on what actually
arrives (:func:`read_attachment`), so a file larger than it says is stopped at the cap instead of
being read into memory. Every way an attachment can be unusable ends in :class:`UnusableAttachment`,
whose ``str()`` is the user's sentence.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import aiohttp

from nst_engine.errors import InvalidImage

from ..core import texts
from ..core.clip_inputs import early_refusal, is_animation, prepare_clip_input
from ..core.inputs import InputImage, prepare_input

if TYPE_CHECKING:
    import discord

    from ..core.runner import ImageThreads
    from ..core.settings import Settings

log = logging.getLogger(__name__)

#: A whole download, the wait for its connection, and the longest silence between two reads.
ATTACHMENT_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=15, sock_read=20)
_CHUNK = 64 * 1024


class DownloadTooLarge(Exception):
    """More bytes arrived (or were announced) than the cap allows."""


class DownloadFailed(Exception):
    """The download broke off, timed out or was refused; the message is for the log."""


async def read_attachment(
    url: str,
    max_bytes: int,
    proxy: str | None = None,
    *,
    check: Callable[[bytes], Awaitable[None]] | None = None,
) -> bytes:
    """The body at ``url``, at most ``max_bytes`` of it (else :class:`DownloadTooLarge`).

    ``proxy`` is the bot's own ``proxy`` setting: a bot that reaches Discord only through a proxy
    reaches its CDN, where attachments live, the same way. ``check`` is shown what has arrived
    after the first chunk and each time it has doubled since (so it reads the whole a few times
    at most); whatever it raises stops the download there.
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
            next_check = 1
            async for chunk in response.content.iter_chunked(_CHUNK):
                data += chunk
                if len(data) > max_bytes:
                    raise DownloadTooLarge()
                if check is not None and len(data) >= next_check:
                    await check(bytes(data))
                    next_check = 2 * len(data)
            return bytes(data)
    except (aiohttp.ClientError, asyncio.TimeoutError) as error:  # ClientPayloadError included
        raise DownloadFailed(f"{type(error).__name__}: {error}") from None


class UnusableAttachment(Exception):
    """An attachment the bot cannot paint with: ``what`` names it for the user ("photo", "style
    image"), ``reason`` says why; ``str()`` is the sentence the user is sent."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(what, reason)
        self.what = what
        self.reason = reason

    def __str__(self) -> str:
        return texts.unusable_attachment(self.what, self.reason)


def too_large(attachment: discord.Attachment, what: str, settings: Settings) -> str | None:
    """The refusal of an attachment that claims more bytes than ``max_attachment_bytes`` (checked
    once, before anything is downloaded), else None."""
    cap = settings.max_attachment_bytes
    return texts.attachment_too_large(what, cap) if attachment.size > cap else None


async def download_input(
    attachment: discord.Attachment,
    what: str,
    *,
    settings: Settings,
    max_side: int,
    images: ImageThreads,
    animated: bool = False,
) -> InputImage:
    """Download (counting the bytes) and decode one attachment that passed :func:`too_large` (in
    an image thread, shrunk to the largest output size while decoding).

    With ``animated`` (the photo of /stylize), an animation or video becomes a clip
    (:mod:`bot.core.clip_inputs`): its header is read as the bytes arrive, and a clip over the
    limits (frames, seconds, pixels) is refused before the download has finished.
    """
    cap = settings.max_attachment_bytes
    limits = settings.clip_limits()

    async def refuse_early(prefix: bytes) -> None:
        refusal = await images.run(lambda: early_refusal(prefix, limits))
        if refusal is not None:
            raise UnusableAttachment(what, refusal)

    try:
        data = await read_attachment(
            attachment.url, cap, proxy=settings.proxy, check=refuse_early if animated else None
        )
    except DownloadTooLarge:  # its declared size was wrong
        raise UnusableAttachment(what, texts.larger_than(cap)) from None
    except DownloadFailed as error:
        log.warning("could not download an attachment (%s): %s", what, error)
        raise UnusableAttachment(what, texts.DOWNLOAD_FAILED) from None

    def prepare() -> InputImage:
        if animated and is_animation(data, max_bytes=cap):
            return prepare_clip_input(data, limits=limits, max_side=settings.animation_size, max_bytes=cap)
        return prepare_input(data, max_side=max_side, max_pixels=settings.max_input_pixels, max_bytes=cap)

    try:
        return await images.run(prepare)
    except InvalidImage as error:
        raise UnusableAttachment(what, str(error)) from None
