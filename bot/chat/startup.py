"""Starting: the login and the gateway's first connection, bounded in time; the queue and the data
directory checked before them.

Why a start failed is :mod:`bot.chat.failures`' business (one line an operator can act on). The
settings and the data directory (which the bot creates) are checked first, in the words
``nst-bot check`` uses for them (:func:`~bot.chat.failures.settings_failure`,
:func:`inspect_directory`).

With the arq backend (``queue_url``), Redis is checked before the login: a bot started against a
Redis it cannot reach (a wrong URL or password, Redis not running) says so in one line and stops,
instead of starting and refusing every request. A Redis lost *after* the start is the backend's
business: it reconnects by itself and tells users to try again meanwhile.

The gateway's first connection is part of the start: until its first READY a lost or refused
connection ends the start with its one line (:func:`connect`). A connection lost *after* that is
not a start-up failure: discord.py reconnects by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .failures import CONFIGURATION, DirectoryUnusable, Failure, QueueUnreachable

if TYPE_CHECKING:
    from nst_queue.client import QueueClient

    from ..core.settings import Settings
    from .app import NSTBot


async def login(bot: NSTBot, settings: Settings) -> None:
    """Log in over HTTP (this also runs ``setup_hook``), giving up after ``connect_timeout``.

    aiohttp alone would wait up to five minutes for a server that accepts and never answers.
    """
    await asyncio.wait_for(bot.login(settings.token or ""), timeout=settings.connect_timeout)


class _FirstReady:
    """The ``reconnect`` argument of ``Client.connect``: false until the gateway's first READY.

    discord.py asks ``if not reconnect`` each time a connection ends. Before the first READY it
    cannot reconnect anyway (discord.py 2.7 logs "Attempting a reconnect" with a traceback, then
    fails on the websocket it never had), so the error should end the start and be classified.
    From the first READY on, discord.py reconnects and resumes by itself, as it always has.
    """

    def __init__(self, then: Callable[[], object] | None) -> None:
        self.seen = False
        self.then = then

    async def on_connect(self) -> None:
        """discord.py dispatches ``connect`` when READY arrives (``ready`` waits for the guilds)."""
        if not self.seen and self.then is not None:
            self.then()
        self.seen = True

    def __bool__(self) -> bool:
        return self.seen


async def connect(bot: NSTBot, on_first_ready: Callable[[], object] | None = None) -> None:
    """Run the gateway connection; raise what ended it if that happened before the first READY.

    ``on_first_ready`` is called once, when the start has succeeded.
    """
    first_ready = _FirstReady(on_first_ready)
    bot.add_listener(first_ready.on_connect, "on_connect")
    # A bool could not change at the first READY; discord.py only ever asks for its truth.
    await bot.connect(reconnect=first_ready)  # type: ignore[arg-type]  # read only as a truth value


@contextlib.asynccontextmanager
async def queue_client(settings: Settings) -> AsyncIterator[QueueClient]:
    """A client of the queue's Redis that answered a ping within ``connect_timeout``.

    Redis failing to answer, then or inside the ``async with``, raises :class:`QueueUnreachable`:
    the start and ``nst-bot check`` classify it with the same rule.
    """
    from nst_queue.client import QueueClient, Unavailable

    from ..core.settings import redact_url

    assert settings.queue_url
    client = QueueClient(settings.queue_url)
    try:
        await asyncio.wait_for(client.ping(), timeout=settings.connect_timeout)
        yield client
    except (Unavailable, asyncio.TimeoutError) as error:
        reason = str(error) or "no answer"
        raise QueueUnreachable(redact_url(settings.queue_url) or "", reason) from None
    finally:
        await client.close()


async def reach_queue(settings: Settings) -> None:
    """Ping the queue's Redis once (no-op for the embedded backend); raise :class:`QueueUnreachable`."""
    if settings.queue_url:
        async with queue_client(settings):
            pass


@dataclass(frozen=True)
class Directory:
    """Whether the bot can use a directory it writes to: it exists and is writable, or can be created."""

    #: The directory, absolute.
    path: Path
    #: ``path`` itself if it exists, else its nearest existing parent (where the free space is).
    existing: Path
    #: Why the bot cannot use it, with the fix; ``None`` when it can.
    failure: Failure | None

    @property
    def state(self) -> str:
        return "writable" if self.existing == self.path else "will be created at start"


def inspect_directory(path: Path, variable: str) -> Directory:
    """Try ``path`` as the bot would use it; ``variable`` is the setting that points it elsewhere."""
    path = path.expanduser().absolute()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    fix = f"make it writable by the bot's user, or point {variable} at a writable directory"

    def unusable(cause: str) -> Directory:
        return Directory(path, existing, Failure(cause, fix, CONFIGURATION))

    if not existing.is_dir():
        return unusable(f"{path} cannot be created: {existing} is not a directory")
    if existing == path:
        try:
            with tempfile.TemporaryFile(dir=path):
                pass
        except OSError as error:
            return unusable(f"{path} is not writable ({error.strerror})")
    elif not os.access(existing, os.W_OK | os.X_OK):
        return unusable(f"{path} cannot be created in {existing} (not writable)")
    return Directory(path, existing, None)


def require_data_dir(settings: Settings) -> None:
    """Raise :class:`DirectoryUnusable` if the bot could not create or write its data directory."""
    failure = inspect_directory(settings.data_dir, "NST_BOT_DATA_DIR").failure
    if failure is not None:
        raise DirectoryUnusable(failure)
