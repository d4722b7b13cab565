"""The bot: a ``commands.Bot`` subclass that owns the settings, the job store, the backend and the
job runner, and wires the Discord layer to them.

Construct it with a :class:`~bot.core.settings.Settings` (tests do exactly that, with a temporary
data dir) and start it with ``await bot.start(token)``. ``setup_hook`` does the one-time work
before the gateway connects: load the cog, register the persistent buttons, start following again
(or failing, with a word to their users) the jobs a previous process left behind, and load the VGG
model in a worker thread when this process paints.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

import nst_engine
from nst_engine.cache import StyleTargetCache
from nst_engine.errors import PresetError
from nst_engine.presets import CATALOG_FILE_NAME, PresetCatalog, PresetResolver

from ..core.guild_settings import GuildSettingsStore
from ..core.local_backend import LocalBackend
from ..core.runner import ImageThreads, JobRunner
from ..core.store import JobStore
from .buttons import CancelButton, DeleteButton, RerunButton, UpscaleButton
from .client import PaintingClient
from .cogs.admin import AdminCog
from .cogs.presets import PresetsCog
from .cogs.stylize import StylizeCog
from .controls import JobControls
from .job_messages import DiscordMessenger
from .replies import InteractionReply, answer_error

if TYPE_CHECKING:
    from ..core.backend import Backend
    from ..core.settings import Settings
    from ..core.thread_queue import ThreadQueue

log = logging.getLogger(__name__)

#: How often expired inputs are purged while the bot runs.
PURGE_INTERVAL_SECONDS = 3600.0


def bot_intents() -> discord.Intents:
    """The default intents (guilds, messages metadata, reactions) and nothing privileged."""
    intents = discord.Intents.default()
    intents.message_content = False
    intents.members = False
    intents.presences = False
    return intents


def silence_voice_warnings() -> None:
    """Keep discord.py from warning that PyNaCl and davey are missing.

    discord.py warns once, when the first client is built, that voice will not work without those
    packages. This bot never joins a voice channel, so the warnings only send operators after
    packages they do not need. discord.py checks two class flags before warning (and clears them
    after warning once); clearing them first skips exactly these two warnings, where raising the
    level of the ``discord.client`` logger would hide its other warnings too. ``warn_dave`` exists
    from discord.py 2.6 on.
    """
    for flag in ("warn_nacl", "warn_dave"):
        if hasattr(discord.VoiceClient, flag):
            setattr(discord.VoiceClient, flag, False)


#: discord.py's own default for ``guild_ready_timeout`` (seconds).
DISCORD_GUILD_READY_TIMEOUT = 2.0


class NSTBot(PaintingClient):
    """The style-transfer bot. Everything it needs comes from ``settings``."""

    def __init__(
        self,
        settings: Settings,
        *,
        catalog: PresetCatalog | None = None,
        resolver: PresetResolver | None = None,
        commands_only: bool = False,
        guild_ready_timeout: float = DISCORD_GUILD_READY_TIMEOUT,
    ) -> None:
        """``commands_only``: for ``nst-bot sync``, which needs the command tree and nothing that runs
        jobs. ``guild_ready_timeout``: how long discord.py waits after login for servers to stream
        in before it is ready (the tests, with a local fake Discord, shorten it)."""
        silence_voice_warnings()
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=bot_intents(),
            help_command=None,
            proxy=settings.proxy,
            allowed_mentions=discord.AllowedMentions.none(),  # pings are opt-in
            guild_ready_timeout=guild_ready_timeout,
        )
        self.settings = settings
        self.catalog = catalog if catalog is not None else _load_catalog(settings)
        cache_dir = settings.cache_dir
        self.resolver = resolver if resolver is not None else _make_resolver(self.catalog, cache_dir)
        self.style_cache = StyleTargetCache.under(cache_dir) if cache_dir is not None else None
        self.store = JobStore(
            settings.database_path,
            settings.inputs_dir,
            max_input_bytes=settings.inputs_max_bytes,
            results_dir=settings.results_dir,
        )
        self.guild_settings = GuildSettingsStore(settings.guild_settings_path)
        self.backend = self._make_backend()
        #: The local backend's queue of worker threads (None when ``nst-worker`` processes paint).
        self.queue: ThreadQueue | None = (
            self.backend.queue if isinstance(self.backend, LocalBackend) else None
        )
        self.images = ImageThreads()
        self.runner = JobRunner(
            settings,
            store=self.store,
            backend=self.backend,
            guild_settings=self.guild_settings,
            messenger=DiscordMessenger(self),
            images=self.images,
        )
        #: The job buttons' and the reaction's handlers; ``buttons`` is how a button finds them.
        self.controls = JobControls(self)
        self.buttons = self.controls
        self.model_ready = asyncio.Event()
        self._purge_task: asyncio.Task[None] | None = None
        #: Fire-and-forget tasks, referenced until done (the loop keeps only weak references).
        self._background: set[asyncio.Task[None]] = set()
        self.commands_only = commands_only
        self.tree.error(self.on_app_command_error)  # the tree's handler for a failed command

    def _make_backend(self) -> Backend:
        """Threads in this process by default; Redis and ``nst-worker`` processes with ``queue_url``."""
        if self.settings.queue_url:
            from ..core.arq_backend import ArqBackend

            return ArqBackend(self.settings, resolver=self.resolver)
        return LocalBackend(self.settings, resolver=self.resolver, style_cache=self.style_cache)

    async def load_commands(self) -> None:
        """Add the cogs (their app commands), the persistent buttons and the reaction listener;
        shared with ``nst-bot sync``."""
        self.add_dynamic_items(RerunButton, CancelButton, DeleteButton, UpscaleButton)
        self.add_listener(self.controls.on_reaction, "on_raw_reaction_add")
        for cog in (StylizeCog(self), PresetsCog(self), AdminCog(self)):
            await self.add_cog(cog)

    async def setup_hook(self) -> None:
        await self.load_commands()
        if self.commands_only:
            return
        self._in_background(self._recover())
        self._purge_task = asyncio.create_task(self._purge_forever())
        self._in_background(self._preload())

    async def _recover(self) -> None:
        """Once the gateway is ready (channels can be reached): the runner's :meth:`~JobRunner.recover`."""
        await self.wait_until_ready()
        await self.runner.recover()

    def _in_background(self, work: Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _preload(self) -> None:
        """Load the VGG model once, off the event loop, so the first job doesn't pay for it.

        With remote workers the bot paints nothing and loads no model.
        """
        if not isinstance(self.backend, LocalBackend):
            self.model_ready.set()
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, nst_engine.preload, self.settings.base_params())
        except Exception as error:  # the first job will report it to its user
            log.error("could not preload the model: %s", error)
        finally:
            self.model_ready.set()

    async def _purge_forever(self) -> None:
        retention = self.settings.retention_days * 86400
        while True:
            try:
                count = await asyncio.to_thread(self.store.purge, retention)
                if count:
                    log.info("expired the inputs of %d job(s)", count)
            except Exception:
                log.exception("purging expired jobs failed")
            await asyncio.sleep(PURGE_INTERVAL_SECONDS)

    async def on_app_command_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        """Log the detail; tell the user something short. Never a traceback in Discord."""
        await answer_error(
            InteractionReply(interaction, token_seconds=self.settings.interaction_token_seconds),
            error.original if isinstance(error, app_commands.CommandInvokeError) else error,
            what=f"command {getattr(interaction.command, 'name', '?')}",
        )

    async def close(self) -> None:
        """Stop jobs (telling their users), then disconnect."""
        stopped = await self.backend.shutdown(timeout=30)
        if stopped:
            log.info("stopped (or left to the workers) %d job(s) for shutdown", stopped)
        runs = [task for task in self.runner.active if task is not asyncio.current_task()]
        if runs:  # let each job tell its user before the HTTP session closes
            await asyncio.wait(runs, timeout=15)
        if self._purge_task is not None:
            self._purge_task.cancel()
        for task in list(self._background):  # e.g. a recovery still waiting for the gateway
            task.cancel()
        await super().close()
        self.images.close()
        # In a thread: closing waits for a write that waits for a locked database.
        await asyncio.to_thread(self.store.close)
        await asyncio.to_thread(self.guild_settings.close)


def _load_catalog(settings: Settings) -> PresetCatalog | None:
    path = settings.config_dir / CATALOG_FILE_NAME
    if not path.is_file():
        log.warning("no preset catalogue at %s; presets are off", path)
        return None
    try:
        return PresetCatalog.load(path)
    except PresetError as error:
        log.error("the preset catalogue is invalid, presets are off: %s", error)
        return None


def _make_resolver(catalog: PresetCatalog | None, cache_dir: Path | None) -> PresetResolver | None:
    if catalog is None:
        return None
    return PresetResolver(catalog, cache_dir)
