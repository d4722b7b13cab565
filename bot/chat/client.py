"""The bot as the Discord layer's handlers see it, and what a job button calls.

:class:`PaintingClient` declares the parts of the bot that cogs, buttons and a job's messages use;
:class:`~bot.chat.app.NSTBot` is its one subclass and sets them. Handlers type the bot by this
class instead of importing :mod:`bot.chat.app` (which imports them), so the Discord layer has no
import circle, and a button finds its handler through the typed ``buttons`` attribute.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import discord
from discord.ext import commands

if TYPE_CHECKING:
    from nst_engine.presets import PresetCatalog, PresetResolver

    from ..core.guild_settings import GuildSettingsStore
    from ..core.runner import ImageThreads, JobRunner
    from ..core.settings import Settings
    from ..core.store import JobStore
    from ..core.strength import Rerun


class ButtonActions(Protocol):
    """What the buttons on a job's messages do (:class:`~bot.chat.controls.JobControls`)."""

    async def rerun_pressed(self, interaction: discord.Interaction, job_id: str, action: Rerun) -> None: ...

    async def cancel_pressed(self, interaction: discord.Interaction, job_id: str) -> None: ...

    async def delete_pressed(self, interaction: discord.Interaction, job_id: str) -> None: ...

    async def upscale_pressed(self, interaction: discord.Interaction, job_id: str) -> None: ...


class PaintingClient(commands.Bot):
    """A ``commands.Bot`` with the painting bot's parts (set by ``NSTBot.__init__``)."""

    settings: Settings
    runner: JobRunner
    store: JobStore
    guild_settings: GuildSettingsStore
    catalog: PresetCatalog | None
    resolver: PresetResolver | None
    images: ImageThreads
    buttons: ButtonActions


def painting_client(interaction: discord.Interaction) -> PaintingClient:
    """The bot an interaction came to (discord.py types ``interaction.client`` as a plain Client)."""
    client = interaction.client
    if not isinstance(client, PaintingClient):
        raise TypeError(f"an interaction reached {type(client).__name__}, not the painting bot")
    return client
