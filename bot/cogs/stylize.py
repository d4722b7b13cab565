"""Slash commands, buttons and the reaction: thin glue between Discord and :mod:`bot.runner`.

The handlers check what the user asked (choices, limits, sizes before downloading), decode the
images safely and hand the job to the runner (``NSTBot.runner``), which stores, enqueues and follows
it to its result. Reactions arrive through a cog listener; buttons through ``NSTBot.stylize_cog``.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from nst_engine.errors import InvalidImage
from nst_engine.imaging import EncodedImage, decode_image, encode_image, make_preview

from ..attachments import DownloadFailed, DownloadTooLarge, read_attachment
from ..conversation import Conversation, defer, messageable
from ..guild_settings import RERUN_REQUESTER, GuildSettings
from ..jobs import JobRefused, Reservation
from ..runner import JobRequest, friendly_error
from ..settings import SIZE_NAMES, STRENGTH_NAMES
from ..store import InputImage, JobRecord, JobStatus, load_input, prepare_input
from ..strength import Rerun, apply_rerun
from ..views import CancelButton, DeleteButton, RerunButton
from .admin import DM_TEXT

if TYPE_CHECKING:
    from nst_engine.presets import Preset

    from ..app import NSTBot

log = logging.getLogger(__name__)

__all__ = ["EXPIRED_TEXT", "CancelButton", "DeleteButton", "JobRequest", "RerunButton", "StylizeCog"]

#: /presets: Discord's limits (10 embeds and 6,000 embed characters a message, titles of 256), the
#: lengths kept of the operator's texts, and a thumbnail small enough to list many.
EMBEDS_PER_MESSAGE = 10
EMBED_CHARACTERS_MAX = 6000
EMBED_TITLE_MAX = 256
PRESET_DESCRIPTION_MAX = 300
PRESET_FOOTER_MAX = 200
MAX_PRESETS_LISTED = 50
PRESET_THUMBNAIL_SIZE = 160
PRESET_THUMBNAIL_BYTES = 200 * 1024

EXPIRED_TEXT = "This job has expired (its images are no longer kept); run /stylize again."
#: A refused reaction (busy, cooling down, already extreme, expired) is answered in the channel,
#: for everyone to see, so at most once per user in this many seconds; the others are ignored.
REACTION_NOTICE_SECONDS = 300.0
REQUESTER_ONLY_TEXT = "In this server only the person who asked for a picture can re-run it."
DELETE_REFUSED_TEXT = "Only the person who asked (or a moderator) can delete this."


class UnusableAttachment(Exception):
    """An attachment the bot cannot paint with: ``what`` names it for the user ("photo", "style
    image"), ``reason`` says why; ``str()`` is the sentence the user is sent."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(what, reason)
        self.what = what
        self.reason = reason

    def __str__(self) -> str:
        return f"I can't use that {self.what}: {self.reason}"


# ---------------------------------------------------------------------------- the cog
class StylizeCog(commands.Cog):
    """Owns the user-facing commands; the bot (``NSTBot``) owns settings, store and runner."""

    def __init__(self, bot: NSTBot) -> None:
        self.bot = bot
        self.settings = bot.settings
        #: /presets thumbnails by (file, modification time).
        self._thumbnail_cache: dict[tuple[str, int], EncodedImage] = {}
        #: When each user was last told why their reaction did nothing (monotonic seconds).
        self._reaction_notices: dict[int, float] = {}
        self.stylize_command = self._build_stylize_command()
        # Every command is for servers only (docs/bot.md, "Direct messages"): Discord does not offer
        # them in DMs, and a DM that reaches the bot anyway (an old registration) is answered.
        self.presets_command: app_commands.Command[commands.Cog, [], None] = app_commands.guild_only(
            app_commands.Command(
                name="presets", description="List the preset paintings", callback=self._presets_callback()
            )
        )
        self.context_menu = app_commands.guild_only(
            app_commands.ContextMenu(name="Stylize with preset\u2026", callback=self._context_callback())
        )

    async def cog_load(self) -> None:
        for command in (self.stylize_command, self.presets_command, self.context_menu):
            self.bot.tree.add_command(command, override=True)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command("stylize")
        self.bot.tree.remove_command("presets")
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

    def _presets_callback(self) -> Callable[[discord.Interaction], Coroutine[object, object, None]]:
        cog = self

        async def presets(interaction: discord.Interaction) -> None:
            await cog.handle_presets(interaction)

        return presets

    def _context_callback(
        self,
    ) -> Callable[[discord.Interaction, discord.Message], Coroutine[object, object, None]]:
        cog = self

        async def stylize_with_preset(interaction: discord.Interaction, message: discord.Message) -> None:
            await cog.handle_context_menu(interaction, message)

        return stylize_with_preset

    # ------------------------------------------------------------------ /presets
    async def handle_presets(self, interaction: discord.Interaction) -> None:
        """The catalogue as one embed per painting, with a thumbnail where the image is on disk.

        Presets that were never used are not downloaded just to be listed; their embed has no
        picture. Discord allows ten embeds and 6,000 embed characters a message, so a long
        catalogue takes several; the operator's texts are clipped to Discord's per-field limits.
        """
        if interaction.guild_id is None:
            await interaction.response.send_message(DM_TEXT, ephemeral=True)
            return
        catalog = self.bot.catalog
        if catalog is None or len(catalog) == 0:
            await interaction.response.send_message("No presets are configured.", ephemeral=True)
            return
        await defer(interaction, ephemeral=True)
        conversation = self._conversation(interaction, interaction.channel, interaction.user.id)
        entries = list(catalog)[:MAX_PRESETS_LISTED]
        thumbnails = await asyncio.get_running_loop().run_in_executor(None, self._preset_thumbnails, entries)
        page: list[tuple[discord.Embed, discord.File | None]] = []
        for preset in entries:
            embed = discord.Embed(
                title=preset.title[:EMBED_TITLE_MAX],
                description=f"{preset.artist}, {preset.year}"[:PRESET_DESCRIPTION_MAX],
            )
            embed.add_field(name="Use it with", value=f"`/stylize preset:{preset.name}`")
            embed.set_footer(text=preset.licence[:PRESET_FOOTER_MAX])
            file = None
            thumbnail = thumbnails.get(preset.name)
            if thumbnail is not None:
                name = f"preset-{preset.name}.{thumbnail.extension}"
                embed.set_thumbnail(url=f"attachment://{name}")
                file = discord.File(io.BytesIO(thumbnail.data), filename=name)
            if (
                len(page) == EMBEDS_PER_MESSAGE
                or sum(len(e) for e, _ in page) + len(embed) > EMBED_CHARACTERS_MAX
            ):
                await self._send_presets_page(conversation, page)
                page = []
            page.append((embed, file))
        await self._send_presets_page(conversation, page)

    @staticmethod
    async def _send_presets_page(
        conversation: Conversation, page: list[tuple[discord.Embed, discord.File | None]]
    ) -> None:
        embeds = [embed for embed, _ in page]
        files = [file for _, file in page if file is not None]
        await conversation.send(embeds=embeds, files=files, ephemeral=True)

    def _preset_thumbnails(self, presets: list[Preset]) -> dict[str, EncodedImage]:
        """Small encoded copies of the presets already on disk (runs in a worker thread).

        Each is made once per file version and kept: decoding a dozen full-size paintings on
        every /presets would be most of the command's time.
        """
        resolver = self.bot.resolver
        thumbnails: dict[str, EncodedImage] = {}
        if resolver is None:
            return thumbnails
        for preset in presets:
            path = resolver.cached_path(preset.name)
            if path is None:
                continue
            key = (str(path), path.stat().st_mtime_ns)
            thumbnail = self._thumbnail_cache.get(key)
            if thumbnail is None:
                try:
                    image = make_preview(decode_image(path), PRESET_THUMBNAIL_SIZE)
                except InvalidImage as error:  # a damaged cache file: list the preset without a picture
                    log.warning("no thumbnail for preset %s: %s", preset.name, error)
                    continue
                try:
                    thumbnail = encode_image(image, max_bytes=PRESET_THUMBNAIL_BYTES)
                except ValueError as error:  # no encoding fits the thumbnail's byte budget
                    log.warning("no thumbnail for preset %s: %s", preset.name, error)
                    continue
                self._thumbnail_cache[key] = thumbnail
            thumbnails[preset.name] = thumbnail
        return thumbnails

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
        refusal = self.paint_refusal(interaction)
        if refusal is not None:
            await interaction.response.send_message(refusal, ephemeral=True)
            return
        server = self.bot.guild_settings.get(interaction.guild_id)
        strength = strength or self.settings.default_strength
        if size is not None and size in SIZE_NAMES and not server.allows_size(size):
            await interaction.response.send_message(self._size_refusal(server), ephemeral=True)
            return
        size = size or server.clamp_size(self.settings.default_size)
        problem = self._check_choices(style, preset, strength, size)
        if problem:
            await interaction.response.send_message(problem, ephemeral=True)
            return
        too_large = self._oversized(content, "photo") or (
            self._oversized(style, "style image") if style else None
        )
        if too_large:  # refused before anything is downloaded, and privately
            await interaction.response.send_message(too_large, ephemeral=True)
            return
        reservation = await self._reserve(interaction)  # before any download
        if reservation is None:
            return
        with reservation:
            await defer(interaction, ephemeral=False)
            conversation = self._conversation(interaction, interaction.channel, interaction.user.id)
            try:
                content_input = await self._download(content, "photo")
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
            )
            await self.bot.runner.start(
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
            return "Give exactly one of `style` (an image) or `preset` (a painting from the menu)."
        if preset is not None and (self.bot.catalog is None or preset not in self.bot.catalog):
            suggestions = self.bot.catalog.close_matches(preset) if self.bot.catalog is not None else []
            hint = f" Did you mean {', '.join(suggestions)}?" if suggestions else " See /presets."
            return f"There is no preset called `{preset[:50]}`.{hint}"
        if strength not in STRENGTH_NAMES:
            return f"Strength must be one of {', '.join(STRENGTH_NAMES)}."
        if size not in SIZE_NAMES:
            return f"Size must be one of {', '.join(SIZE_NAMES)}."
        return None

    def paint_refusal(self, interaction: discord.Interaction) -> str | None:
        """Why the bot will not paint for this interaction here (None: it will): a DM, or a channel
        outside the server's list (``/nst-admin channels``)."""
        if interaction.guild_id is None:
            return DM_TEXT
        return self._channel_refusal(
            self.bot.guild_settings.get(interaction.guild_id),
            interaction.channel_id,
            getattr(interaction.channel, "parent_id", None),
        )

    @staticmethod
    def _channel_refusal(server: GuildSettings, channel_id: int | None, parent_id: int | None) -> str | None:
        if server.allows_channel(channel_id, parent_id):
            return None
        where = ", ".join(f"<#{c}>" for c in server.channels)
        return f"I don't paint in this channel. In this server, use me in {where}."

    def _size_refusal(self, server: GuildSettings) -> str:
        largest = server.max_size or SIZE_NAMES[-1]
        return (
            f"This server allows sizes up to {largest} ({self.settings.sizes[largest]} px); "
            "choose that or a smaller size."
        )

    @staticmethod
    def _may_rerun(server: GuildSettings, record: JobRecord, user_id: int) -> bool:
        return server.reruns != RERUN_REQUESTER or user_id == record.user_id

    async def _reserve(self, interaction: discord.Interaction) -> Reservation | None:
        """Take the user's place for a new job, or refuse privately (None): taken before anything
        is downloaded, so simultaneous requests of one user cannot all pass the limits."""
        try:
            return self.bot.runner.reserve(interaction.user.id)
        except JobRefused as refusal:
            await interaction.response.send_message(str(refusal), ephemeral=True)
            return None

    def _oversized(self, attachment: discord.Attachment, what: str) -> str | None:
        if attachment.size > self.settings.max_attachment_bytes:
            return f"I can't use that {what}: {self._too_large_text()}."
        return None

    def _too_large_text(self) -> str:
        cap = self.settings.max_attachment_bytes
        if cap >= 1024 * 1024:
            return f"it is larger than {cap / (1024 * 1024):.0f} MiB"
        return f"it is larger than {cap // 1024} KiB"

    async def _download(self, attachment: discord.Attachment, what: str) -> InputImage:
        """Size-check (before downloading), download (counting the bytes) and decode one attachment
        (in a thread, shrunk to the largest output size while decoding)."""
        cap = self.settings.max_attachment_bytes
        if attachment.size > cap:
            raise UnusableAttachment(what, self._too_large_text())
        try:
            data = await read_attachment(attachment.url, cap, proxy=self.settings.proxy)
        except DownloadTooLarge:  # its declared size was wrong
            raise UnusableAttachment(what, self._too_large_text()) from None
        except DownloadFailed as error:
            log.warning("could not download an attachment (%s): %s", what, error)
            raise UnusableAttachment(what, "I could not download it; please try again") from None
        max_side = self.bot.runner.max_side
        try:
            return await self.bot.runner.in_image_thread(
                lambda: prepare_input(
                    data, max_side=max_side, max_pixels=self.settings.max_input_pixels, max_bytes=cap
                )
            )
        except InvalidImage as error:
            raise UnusableAttachment(what, str(error)) from None

    def _conversation(
        self, interaction: discord.Interaction | None, channel: object, user_id: int
    ) -> Conversation:
        """A conversation with ``user_id``; ``channel`` (any Discord channel, or None) is where it
        goes on after the interaction's token, if messages can be posted there."""
        return Conversation(
            interaction=interaction,
            channel=messageable(channel),
            user_id=user_id,
            token_seconds=self.settings.interaction_token_seconds,
        )

    # ------------------------------------------------------------------ context menu
    async def handle_context_menu(self, interaction: discord.Interaction, message: discord.Message) -> None:
        refusal = self.paint_refusal(interaction)
        if refusal is not None:
            await interaction.response.send_message(refusal, ephemeral=True)
            return
        images = [a for a in message.attachments if (a.width or 0) > 0]
        if not images:
            await interaction.response.send_message("That message has no image.", ephemeral=True)
            return
        catalog = self.bot.catalog
        if catalog is None or len(catalog) == 0:
            await interaction.response.send_message("No presets are configured.", ephemeral=True)
            return
        select: discord.ui.Select[discord.ui.View] = discord.ui.Select(
            placeholder="Choose a painting",
            options=[
                discord.SelectOption(
                    label=p.title[:100], description=f"{p.artist}, {p.year}"[:100], value=p.name
                )
                for p in list(catalog)[:25]
            ],
        )
        attachment = images[0]

        async def chosen(choice: discord.Interaction) -> None:
            if choice.user.id != interaction.user.id:
                await choice.response.send_message("This menu is not yours.", ephemeral=True)
                return
            await self.handle_stylize(choice, attachment, preset=select.values[0])

        select.callback = chosen  # type: ignore[method-assign,assignment]  # a per-instance callback
        view = discord.ui.View(timeout=300)
        view.add_item(select)
        await interaction.response.send_message("Which painting?", view=view, ephemeral=True)

    # ------------------------------------------------------------------ re-runs
    async def handle_rerun_button(self, interaction: discord.Interaction, job_id: str, action: Rerun) -> None:
        try:
            record = await asyncio.to_thread(self.bot.store.get, job_id)
        except Exception as error:  # a locked database: answered, never left unanswered
            await self._tell_failure(interaction, error)
            return
        if record is None:
            await interaction.response.send_message("I don't know that job any more.", ephemeral=True)
            return
        # Discord's command permissions do not cover buttons: the server's rules are checked here.
        refusal = self.paint_refusal(interaction)
        if refusal is None and not self._may_rerun(
            self.bot.guild_settings.get(interaction.guild_id), record, interaction.user.id
        ):
            refusal = REQUESTER_ONLY_TEXT
        if refusal is not None:
            await interaction.response.send_message(refusal, ephemeral=True)
            return
        problem = self.rerun_problem(record, action)
        if problem is not None:  # known before deferring: refused privately, in the response itself
            await interaction.response.send_message(problem, ephemeral=True)
            return
        reservation = await self._reserve(interaction)
        if reservation is None:
            return
        with reservation:
            await defer(interaction, ephemeral=False)
            conversation = self._conversation(interaction, interaction.channel, interaction.user.id)
            try:
                await self.rerun(record, action, conversation, reservation=reservation)
            except Exception as error:
                await self._tell_failure(interaction, error)

    async def _tell_failure(self, interaction: discord.Interaction, error: Exception) -> None:
        """Log an unexpected failure and answer the interaction with a short message: privately in
        the response when it is still open, else through the conversation after the defer."""
        log.error("a request of user %s failed", interaction.user.id, exc_info=error)
        text = friendly_error(error)
        if interaction.response.is_done():
            await self._conversation(interaction, interaction.channel, interaction.user.id).tell(text)
            return
        try:
            await interaction.response.send_message(text, ephemeral=True)
        except discord.HTTPException as http_error:
            log.warning("could not tell user %s: %s", interaction.user.id, http_error.status)

    @commands.Cog.listener("on_raw_reaction_add")
    async def handle_reaction(self, payload: discord.RawReactionActionEvent) -> None:
        """A reaction with the configured emoji on a result re-runs it one step stronger."""
        if self.bot.user is not None and payload.user_id == self.bot.user.id:
            return
        if str(payload.emoji) != self.settings.reaction_emoji:
            return
        ours = self.bot.user is not None and payload.message_author_id == self.bot.user.id
        try:
            record = await asyncio.to_thread(self.bot.store.by_result_message, payload.message_id)
        except Exception as error:  # a locked database: say so under the bot's own results
            log.error("cannot look up a reaction's job", exc_info=error)
            record = None
            failure: Exception | None = error
        else:
            failure = None
        if payload.guild_id is None or (record is None and not (failure is not None and ours)):
            return
        channel = self.bot.get_channel(payload.channel_id)
        if channel is None:
            try:
                channel = await self.bot.fetch_channel(payload.channel_id)
            except discord.HTTPException:
                log.warning("cannot reach channel %s for a reaction re-run", payload.channel_id)
                return
        conversation = self._conversation(None, channel, payload.user_id)

        async def refuse(text: str) -> None:
            await self._reaction_notice(conversation, text)

        if record is None:
            assert failure is not None
            await refuse(friendly_error(failure))
            return
        server = self.bot.guild_settings.get(payload.guild_id)
        refusal = self._channel_refusal(server, payload.channel_id, getattr(channel, "parent_id", None))
        if refusal is None and not self._may_rerun(server, record, payload.user_id):
            refusal = REQUESTER_ONLY_TEXT
        if refusal is not None:
            await refuse(refusal)
            return
        try:
            reservation = self.bot.runner.reserve(payload.user_id)
        except JobRefused as refusal:
            await refuse(str(refusal))
            return
        with reservation:
            try:
                await self.rerun(record, Rerun.STRONGER, conversation, refuse=refuse, reservation=reservation)
            except Exception as error:
                log.error("a reaction re-run of job %s failed", record.job_id, exc_info=error)
                await refuse(friendly_error(error))

    def rerun_problem(self, record: JobRecord, action: Rerun) -> str | None:
        """Why a re-run cannot start, as far as it is known without loading the inputs."""
        request = JobRequest.from_dict(record.params)
        if apply_rerun(request.strength, request.seed, action) is None:
            end = "strongest" if action is Rerun.STRONGER else "weakest"
            return f"That is already the {end} setting."
        paths = [record.content_path] if request.preset else [record.content_path, record.style_path]
        if record.expired or not all(path and Path(path).is_file() for path in paths):
            return EXPIRED_TEXT
        return None

    async def _reaction_notice(self, conversation: Conversation, text: str) -> None:
        """Tell a user (publicly: a reaction has no private reply) why their reaction did nothing,
        unless they were told in the last ``REACTION_NOTICE_SECONDS``: ten reactions, one message."""
        now = time.monotonic()
        last = self._reaction_notices.get(conversation.user_id)
        if last is not None and now - last < REACTION_NOTICE_SECONDS:
            log.debug("reaction of user %s refused quietly: %s", conversation.user_id, text)
            return
        self._reaction_notices = {
            user: at for user, at in self._reaction_notices.items() if now - at < REACTION_NOTICE_SECONDS
        }
        self._reaction_notices[conversation.user_id] = now
        await conversation.tell(f"{conversation.mention} {text}")

    async def rerun(
        self,
        record: JobRecord,
        action: Rerun,
        conversation: Conversation,
        *,
        refuse: Callable[[str], Awaitable[None]] | None = None,
        reservation: Reservation | None = None,
    ) -> None:
        """Paint ``record`` again, changed by ``action``; ``refuse`` says why not (default: tell).

        The new job shares ``record``'s stored inputs (they are decoded in a thread, never copied).
        """
        refuse = refuse or conversation.tell
        request = JobRequest.from_dict(record.params)
        changed = apply_rerun(request.strength, request.seed, action)
        problem = self.rerun_problem(record, action)
        if changed is None or problem is not None:
            await refuse(problem or EXPIRED_TEXT)
            return
        max_side = self.bot.runner.max_side
        content_path = record.content_path
        style_path = None if request.preset else record.style_path
        content, style = await self.bot.runner.in_image_thread(
            lambda: (
                load_input(content_path, max_side=max_side),
                None if style_path is None else load_input(style_path, max_side=max_side),
            )
        )
        if content is None or (style is None and not request.preset):
            await refuse(EXPIRED_TEXT)
            return
        strength, seed = changed
        server = self.bot.guild_settings.get(record.guild_id)  # as the server is set now
        new_request = JobRequest(
            strength=strength,
            size=server.clamp_size(request.size),
            preserve_color=request.preserve_color,
            seed=seed,
            preset=request.preset,
            spoiler=request.spoiler or server.spoilers,
        )
        await self.bot.runner.start(
            conversation,
            InputImage(content, path=content_path),
            None if style is None else InputImage(style, path=style_path),
            new_request,
            guild_id=record.guild_id,
            channel_id=record.channel_id,
            reservation=reservation,
        )

    # ------------------------------------------------------------------ cancel
    async def handle_cancel_button(self, interaction: discord.Interaction, job_id: str) -> None:
        record = self.bot.store.get(job_id)
        permissions = getattr(interaction, "permissions", None)
        allowed = record is not None and (
            interaction.user.id == record.user_id or bool(permissions and permissions.manage_messages)
        )
        if not allowed:
            await interaction.response.send_message(
                "Only the person who asked (or a moderator) can cancel this.", ephemeral=True
            )
            return
        if await self.bot.runner.cancel(job_id):
            await interaction.response.send_message("Cancelling\u2026", ephemeral=True)
        else:
            await interaction.response.send_message("That job has already finished.", ephemeral=True)

    # ------------------------------------------------------------------ delete
    async def handle_delete_button(self, interaction: discord.Interaction, job_id: str) -> None:
        """Delete a result: its message, and the job's stored inputs; the record says ``deleted``.

        Only its requester or a member with Manage Messages in the channel; anyone else is refused
        privately. The press is acknowledged without a message (the picture disappearing is the
        answer); a failure to delete is told privately.
        """
        record = self.bot.store.get(job_id)
        permissions = getattr(interaction, "permissions", None)
        allowed = record is not None and (
            interaction.user.id == record.user_id or bool(permissions and permissions.manage_messages)
        )
        if record is None or not allowed:
            text = "I don't know that job any more." if record is None else DELETE_REFUSED_TEXT
            await interaction.response.send_message(text, ephemeral=True)
            return
        await interaction.response.defer()  # a silent acknowledgement (deferred update)
        message = interaction.message
        try:
            if message is not None:
                await message.delete()
        except discord.NotFound:
            pass  # already gone: the inputs still go
        except discord.HTTPException as error:
            log.warning("could not delete the result of job %s: %s", job_id, error.status)
            await self._conversation(interaction, None, interaction.user.id).tell(
                "I could not delete that message; please try again in a minute."
            )
            return
        try:
            await asyncio.to_thread(self.bot.store.discard_inputs, record, everywhere=True)  # off the loop
            await asyncio.to_thread(self.bot.store.update, job_id, status=JobStatus.DELETED)
        except Exception:  # the picture is gone; its stored copy still expires with the others
            log.exception("job %s: result deleted, but its inputs or record could not be updated", job_id)
            await self._conversation(interaction, None, interaction.user.id).tell(
                "The picture is deleted, but I could not remove my stored copy of its images now; "
                "it will be removed when it expires."
            )
            return
        log.info("job %s: result deleted by user %s", job_id, interaction.user.id)
