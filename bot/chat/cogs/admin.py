"""``/nst-admin``: a server's own settings (:mod:`bot.core.guild_settings`), for members with Manage Server.

The group is registered guild-only with ``default_permissions`` Manage Server, so Discord offers it
only to those members; but a server's admins can grant any command to anyone in the server's
Integrations settings, so each handler checks Manage Server again. Every answer is private.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from nst_engine.params import MAX_SIZE, MIN_SIZE

from ...core import texts
from ...core.guild_settings import MAX_CHANNELS, RERUN_ANYONE, RERUN_REQUESTER, GuildSettings
from ...core.settings import SIZE_NAMES
from ..conversation import defer, in_time
from ..replies import InteractionReply, answer_error

if TYPE_CHECKING:
    from ..client import PaintingClient

log = logging.getLogger(__name__)

GROUP_NAME = "nst-admin"


class AdminCog(commands.Cog):
    """The ``/nst-admin`` group: show and change this server's settings."""

    def __init__(self, bot: PaintingClient) -> None:
        self.bot = bot
        self.group = self._build_group()

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.group, override=True)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(GROUP_NAME)

    # ------------------------------------------------------------------ command definitions
    def _build_group(self) -> app_commands.Group:
        cog = self
        sizes = self.bot.settings.sizes
        group = app_commands.Group(
            name=GROUP_NAME,
            description="This server's settings for the painting bot",
            guild_only=True,
            allowed_contexts=app_commands.AppCommandContext(guild=True),
            default_permissions=discord.Permissions(manage_guild=True),
        )
        channels = app_commands.Group(
            name="channels", description="The channels I may paint in (none: every channel)", parent=group
        )

        async def show(interaction: discord.Interaction) -> None:
            await cog.handle_show(interaction)

        @app_commands.describe(channel="A channel I may paint in")
        async def add(interaction: discord.Interaction, channel: discord.TextChannel) -> None:
            await cog.handle_channel(interaction, channel, add=True)

        @app_commands.describe(channel="A channel I may no longer paint in")
        async def remove(interaction: discord.Interaction, channel: discord.TextChannel) -> None:
            await cog.handle_channel(interaction, channel, add=False)

        async def clear(interaction: discord.Interaction) -> None:
            await cog.handle_change(interaction, lambda s: dataclasses.replace(s, channels=()))

        @app_commands.describe(size="The largest size members may ask for here")
        @app_commands.choices(
            size=[app_commands.Choice(name=f"{name} ({sizes[name]} px)", value=name) for name in SIZE_NAMES]
        )
        async def max_size(interaction: discord.Interaction, size: str) -> None:
            largest = SIZE_NAMES[-1]
            chosen = None if size == largest else size
            await cog.handle_change(interaction, lambda s: dataclasses.replace(s, max_size=chosen))

        @app_commands.describe(side="The longest side in px an Upscale may paint here")
        async def max_upscale(
            interaction: discord.Interaction, side: app_commands.Range[int, MIN_SIZE, MAX_SIZE]
        ) -> None:
            await cog.handle_max_upscale(interaction, side)

        @app_commands.describe(who="Who may re-run (or react to) a picture someone else asked for")
        @app_commands.choices(
            who=[
                app_commands.Choice(name="anyone", value=RERUN_ANYONE),
                app_commands.Choice(name="only the person who asked", value=RERUN_REQUESTER),
            ]
        )
        async def reruns(interaction: discord.Interaction, who: str) -> None:
            await cog.handle_change(interaction, lambda s: dataclasses.replace(s, reruns=who))

        @app_commands.describe(enabled="Post every result as a spoiler")
        async def spoilers(interaction: discord.Interaction, enabled: bool) -> None:
            await cog.handle_change(interaction, lambda s: dataclasses.replace(s, spoilers=enabled))

        for name, description, callback, parent in (
            ("show", "Show this server's settings", show, group),
            ("max-size", "The largest size allowed in this server", max_size, group),
            ("max-upscale", "The largest picture Upscale may paint in this server", max_upscale, group),
            ("reruns", "Who may re-run someone else's picture", reruns, group),
            ("spoilers", "Post results as spoilers", spoilers, group),
            ("add", "Let me paint in a channel", add, channels),
            ("remove", "Stop me painting in a channel", remove, channels),
            ("clear", "Let me paint in every channel", clear, channels),
        ):
            parent.add_command(app_commands.Command(name=name, description=description, callback=callback))
        return group

    # ------------------------------------------------------------------ handlers
    def refusal(self, interaction: discord.Interaction) -> str | None:
        """Why this member may not use ``/nst-admin`` here (None: they may)."""
        if interaction.guild_id is None:
            return texts.DM_TEXT
        permissions = getattr(interaction, "permissions", None)
        if permissions is None or not permissions.manage_guild:
            return texts.NEEDS_MANAGE_SERVER
        return None

    async def handle_show(self, interaction: discord.Interaction) -> None:
        refusal = self.refusal(interaction)
        if refusal is not None:
            await interaction.response.send_message(refusal, ephemeral=True)
            return
        current = self.bot.guild_settings.get(interaction.guild_id)
        await interaction.response.send_message(self.describe(current), ephemeral=True)

    async def handle_channel(
        self, interaction: discord.Interaction, channel: discord.TextChannel, *, add: bool
    ) -> None:
        """Add ``channel`` to the list or remove it; adding one the bot cannot post in says so."""
        channel_id = channel.id
        refusal = self.refusal(interaction)
        if refusal is not None:
            await interaction.response.send_message(refusal, ephemeral=True)
            return
        current = self.bot.guild_settings.get(interaction.guild_id).channels
        if add and channel_id not in current and len(current) >= MAX_CHANNELS:
            await interaction.response.send_message(texts.channel_list_full(MAX_CHANNELS), ephemeral=True)
            return
        if add:
            channels = current if channel_id in current else (*current, channel_id)
        else:
            channels = tuple(c for c in current if c != channel_id)
        note = self._cannot_post_note(channel) if add else ""
        await self.handle_change(interaction, lambda s: dataclasses.replace(s, channels=channels), note=note)

    @staticmethod
    def _cannot_post_note(channel: discord.TextChannel) -> str:
        me = channel.guild.me
        if me is None:
            return ""
        permissions = channel.permissions_for(me)
        missing = [
            name
            for name, granted in (
                ("Send Messages", permissions.send_messages),
                ("Attach Files", permissions.attach_files),
                ("Embed Links", permissions.embed_links),
            )
            if not granted
        ]
        if not missing:
            return ""
        return texts.cannot_post_note(channel.id, missing)

    async def handle_max_upscale(self, interaction: discord.Interaction, side: int) -> None:
        """Set this server's largest upscale; above the operator's ``max_upscale_side`` is refused."""
        operator = self.bot.settings.max_upscale_side
        if self.refusal(interaction) is None and side > operator:
            await interaction.response.send_message(texts.upscale_over_operator(operator), ephemeral=True)
            return
        chosen = None if side == operator else side
        await self.handle_change(interaction, lambda s: dataclasses.replace(s, max_upscale=chosen))

    async def handle_change(
        self,
        interaction: discord.Interaction,
        change: Callable[[GuildSettings], GuildSettings],
        *,
        note: str = "",
    ) -> None:
        """Apply ``change`` to this server's settings, for a member with Manage Server only."""
        refusal = self.refusal(interaction)
        if refusal is not None or interaction.guild_id is None:
            await interaction.response.send_message(refusal or texts.DM_TEXT, ephemeral=True)
            return
        store = self.bot.guild_settings
        updated = change(store.get(interaction.guild_id))
        reply = InteractionReply(interaction, token_seconds=self.bot.settings.interaction_token_seconds)
        try:  # written in a thread; a slow database: acknowledged privately, then answered
            await in_time(
                interaction,
                asyncio.to_thread(store.save, interaction.guild_id, interaction.user.id, updated),
                acknowledge=lambda: defer(interaction, ephemeral=True),
            )
        except Exception as error:  # a locked database: answered, never left unanswered
            await answer_error(reply, error, what=f"/{GROUP_NAME} in server {interaction.guild_id}")
            return
        log.info(
            "server %s: settings now %s (by user %s)", interaction.guild_id, updated, interaction.user.id
        )
        await reply.say(f"{texts.SAVED}\n{self.describe(updated)}{note}")

    def describe(self, current: GuildSettings) -> str:
        """The server's settings as a member reads them, with the commands that change them."""
        largest = current.max_size or SIZE_NAMES[-1]
        return texts.server_settings(
            channels=current.channels,
            largest=largest,
            pixels=self.bot.settings.sizes[largest],
            requester_only=current.reruns == RERUN_REQUESTER,
            spoilers=current.spoilers,
            group=GROUP_NAME,
            upscale=current.upscale_limit(self.bot.settings.max_upscale_side),
        )
