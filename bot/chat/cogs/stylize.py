"""``/stylize`` and "Stylize with preset…": the requests that start a job.

The handlers check what the user asked (the server's rules, choices, sizes before downloading),
take the user's place (:meth:`~bot.core.runner.JobRunner.reserve`), download and decode the images
(:mod:`bot.chat.attachments`) and hand the job to the runner, which stores, enqueues and follows it
to its result. Refusals and errors are answered through :mod:`bot.chat.replies`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from ...core import texts
from ...core.errors import JobRefused
from ...core.requests import JobKind, JobRequest
from ...core.settings import SIZE_NAMES, STRENGTH_NAMES
from ..attachments import UnusableAttachment, download_input, too_large
from ..conversation import defer, interaction_conversation
from ..replies import InteractionReply

if TYPE_CHECKING:
    from ...core.guild_settings import GuildSettings
    from ...core.inputs import InputImage
    from ..client import PaintingClient

log = logging.getLogger(__name__)


class StylizeCog(commands.Cog):
    """``/stylize`` and the context menu; the bot owns settings, store and runner."""

    def __init__(self, bot: PaintingClient) -> None:
        self.bot = bot
        self.settings = bot.settings
        self.stylize_command = self._build_stylize_command()
        # Every command is for servers only (docs/bot.md, "Direct messages"): Discord does not offer
        # them in DMs, and a DM that reaches the bot anyway (an old registration) is answered.
        self.context_menu = app_commands.guild_only(
            app_commands.ContextMenu(name="Stylize with preset\u2026", callback=self._context_callback())
        )

    async def cog_load(self) -> None:
        for command in (self.stylize_command, self.context_menu):
            self.bot.tree.add_command(command, override=True)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command("stylize")
        self.bot.tree.remove_command(self.context_menu.name, type=discord.AppCommandType.message)

    # ------------------------------------------------------------------ command definitions
    def _build_stylize_command(
        self,
    ) -> app_commands.Command[
        commands.Cog,
        [discord.Attachment, discord.Attachment | None, str | None, str | None, str | None, bool],
        None,
    ]:
        cog = self
        strengths = [app_commands.Choice(name=name, value=name) for name in STRENGTH_NAMES]
        sizes = [
            app_commands.Choice(name=f"{name} ({self.settings.sizes[name]} px)", value=name)
            for name in SIZE_NAMES
        ]

        @app_commands.describe(
            content="Your photo",
            style="A painting to copy the style of",
            preset="A preset painting instead of a style image",
            strength="How strongly to apply the style",
            size="Output size",
            preserve_colors="Keep your photo's colours",
        )
        @app_commands.choices(strength=strengths, size=sizes)
        async def stylize(
            interaction: discord.Interaction,
            content: discord.Attachment,
            style: discord.Attachment | None = None,
            preset: str | None = None,
            strength: str | None = None,
            size: str | None = None,
            preserve_colors: bool = False,
        ) -> None:
            await cog.handle_stylize(
                interaction,
                content,
                style=style,
                preset=preset,
                strength=strength,
                size=size,
                preserve_colors=preserve_colors,
            )

        catalog = self.bot.catalog
        if catalog is not None and 0 < len(catalog) <= 25:
            stylize = app_commands.choices(
                preset=[app_commands.Choice(name=p.label[:100], value=p.name) for p in catalog]
            )(stylize)
        else:

            async def complete(
                interaction: discord.Interaction, current: str
            ) -> list[app_commands.Choice[str]]:
                return cog.preset_suggestions(current)

            stylize = app_commands.autocomplete(preset=complete)(stylize)
        return app_commands.guild_only(
            app_commands.Command(
                name="stylize", description="Paint your photo in the style of a painting", callback=stylize
            )
        )

    def preset_suggestions(self, current: str) -> list[app_commands.Choice[str]]:
        catalog = self.bot.catalog
        if catalog is None:
            return []
        needle = current.lower().strip()
        found = [p for p in catalog if needle in p.name or needle in p.label.lower()]
        return [app_commands.Choice(name=p.label[:100], value=p.name) for p in found[:25]]

    def _context_callback(
        self,
    ) -> Callable[[discord.Interaction, discord.Message], Coroutine[object, object, None]]:
        cog = self

        async def stylize_with_preset(interaction: discord.Interaction, message: discord.Message) -> None:
            await cog.handle_context_menu(interaction, message)

        return stylize_with_preset

    # ------------------------------------------------------------------ /stylize
    async def handle_stylize(
        self,
        interaction: discord.Interaction,
        content: discord.Attachment,
        *,
        style: discord.Attachment | None = None,
        preset: str | None = None,
        strength: str | None = None,
        size: str | None = None,
        preserve_colors: bool = False,
    ) -> None:
        """The /stylize handler (tests call it directly with spec'd mocks).

        The server's rules come first (a DM, a channel the bot may not paint in, a size over the
        server's largest): refused privately, before anything is downloaded.
        """
        reply = InteractionReply(interaction, token_seconds=self.settings.interaction_token_seconds)
        refusal = self.paint_refusal(interaction)
        if refusal is not None:
            await reply.say(refusal)
            return
        server = self.bot.guild_settings.get(interaction.guild_id)
        strength = strength or self.settings.default_strength
        if size is not None and size in SIZE_NAMES and not server.allows_size(size):
            await reply.say(self._size_refusal(server))
            return
        size = size or server.clamp_size(self.settings.default_size)
        refusal = (
            self._check_choices(style, preset, strength, size)
            or too_large(content, "photo", self.settings)
            or (too_large(style, "style image", self.settings) if style else None)
        )
        if refusal:  # refused before anything is downloaded, and privately
            await reply.say(refusal)
            return
        runner = self.bot.runner
        try:  # before any download, so simultaneous requests of one user cannot all pass the limits
            reservation = runner.reserve(interaction.user.id)
        except JobRefused as refused:
            await reply.say(str(refused))
            return
        with reservation:
            await defer(interaction, ephemeral=False)
            conversation = interaction_conversation(
                interaction, token_seconds=self.settings.interaction_token_seconds
            )
            try:
                content_input = await self._download(content, "photo", animated=True)
                style_input = await self._download(style, "style image") if style is not None else None
            except UnusableAttachment as error:
                await conversation.send(str(error), ephemeral=True)
                return
            request = JobRequest(
                strength=strength,
                size=size,
                preserve_color=preserve_colors,
                preset=preset,
                spoiler=server.spoilers or content.is_spoiler() or (style is not None and style.is_spoiler()),
                kind=JobKind.PAINT if content_input.clip is None else JobKind.ANIMATE,
            )
            await runner.start(
                conversation,
                content_input,
                style_input,
                request,
                guild_id=interaction.guild_id,
                channel_id=interaction.channel_id,
                reservation=reservation,
            )

    def _check_choices(
        self, style: discord.Attachment | None, preset: str | None, strength: str, size: str
    ) -> str | None:
        if (style is None) == (preset is None):
            return texts.STYLE_OR_PRESET
        catalog = self.bot.catalog
        if preset is not None and (catalog is None or preset not in catalog):
            return texts.no_such_preset(preset, catalog.close_matches(preset) if catalog is not None else [])
        if strength not in STRENGTH_NAMES:
            return texts.must_be_one_of("Strength", STRENGTH_NAMES)
        if size not in SIZE_NAMES:
            return texts.must_be_one_of("Size", SIZE_NAMES)
        return None

    def paint_refusal(self, interaction: discord.Interaction) -> str | None:
        """Why the bot will not paint for this interaction here (None: it will)."""
        return self.bot.guild_settings.refusal_to_paint(
            interaction.guild_id, interaction.channel_id, getattr(interaction.channel, "parent_id", None)
        )

    def _size_refusal(self, server: GuildSettings) -> str:
        largest = server.max_size or SIZE_NAMES[-1]
        return texts.size_not_allowed(largest, self.settings.sizes[largest])

    async def _download(
        self, attachment: discord.Attachment, what: str, *, animated: bool = False
    ) -> InputImage:
        return await download_input(
            attachment,
            what,
            settings=self.settings,
            max_side=self.bot.runner.max_side,
            images=self.bot.images,
            animated=animated,
        )

    # ------------------------------------------------------------------ context menu
    async def handle_context_menu(self, interaction: discord.Interaction, message: discord.Message) -> None:
        reply = InteractionReply(interaction, token_seconds=self.settings.interaction_token_seconds)
        refusal = self.paint_refusal(interaction)
        images = [a for a in message.attachments if (a.width or 0) > 0]
        catalog = self.bot.catalog
        if refusal is None and not images:
            refusal = texts.NO_IMAGE_IN_MESSAGE
        if refusal is None and (catalog is None or len(catalog) == 0):
            refusal = texts.NO_PRESETS
        if refusal is not None or catalog is None:
            await reply.say(refusal or texts.NO_PRESETS)
            return
        select: discord.ui.Select[discord.ui.View] = discord.ui.Select(
            placeholder=texts.CHOOSE_A_PAINTING,
            options=[
                discord.SelectOption(
                    label=p.title[:100], description=texts.preset_byline(p.artist, p.year)[:100], value=p.name
                )
                for p in list(catalog)[:25]
            ],
        )
        attachment = images[0]

        async def chosen(choice: discord.Interaction) -> None:
            if choice.user.id != interaction.user.id:
                await choice.response.send_message(texts.NOT_YOUR_MENU, ephemeral=True)
                return
            await self.handle_stylize(choice, attachment, preset=select.values[0])

        select.callback = chosen  # type: ignore[method-assign,assignment]  # a per-instance callback
        view = discord.ui.View(timeout=300)
        view.add_item(select)
        await interaction.response.send_message(texts.WHICH_PAINTING, view=view, ephemeral=True)
