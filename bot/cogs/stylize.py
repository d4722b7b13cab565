"""Slash commands, buttons and the reaction: thin glue between Discord and :mod:`bot.jobs`.

The flow of one request: defer, check sizes before downloading, decode safely, store the inputs,
enqueue, show the queue position, edit one progress message at most every ``progress_interval``
seconds, post the result with re-run buttons, add the reaction hint.
"""

from __future__ import annotations

import asyncio
import functools
import io
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import discord
from discord import app_commands
from discord.ext import commands

from nst_engine import stylize as engine_stylize
from nst_engine.errors import Cancelled, InvalidImage, NSTError
from nst_engine.imaging import EncodedImage, decode_image, encode_image, make_preview

from ..conversation import Conversation, defer
from ..jobs import Job, JobCancelled, JobRefused
from ..progress import EditThrottle, preview_every, queue_text, render_progress
from ..settings import SIZE_NAMES, STRENGTH_NAMES
from ..store import JobRecord, JobStatus, new_job_id
from ..strength import Rerun, apply_rerun

if TYPE_CHECKING:
    from PIL import Image

    from ..app import NSTBot

log = logging.getLogger(__name__)

#: A result refused as too large (413) is re-encoded smaller this many times in all.
UPLOAD_ATTEMPTS = 3
#: Never re-encode below this: a picture this small that is still refused means something else is wrong.
MIN_UPLOAD_BYTES = 8 * 1024

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


@dataclass(frozen=True)
class JobRequest:
    """What to paint, as the user chose it; stored as the record's ``params``."""

    strength: str = "normal"
    size: str = "medium"
    preserve_color: bool = False
    seed: int = 0
    preset: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "strength": self.strength,
            "size": self.size,
            "preserve_color": self.preserve_color,
            "seed": self.seed,
            "preset": self.preset,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRequest:
        return cls(
            **{
                key: data[key]
                for key in ("strength", "size", "preserve_color", "seed", "preset")
                if key in data
            }
        )


class UnusableAttachment(Exception):
    """An attachment the bot cannot paint with: ``what`` names it for the user, ``reason`` says why."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"I can't use that {what}: {reason}")
        self.what = what
        self.reason = reason


def friendly_error(error: BaseException) -> str:
    """The one-line message a user sees for a failed job; never a traceback."""
    if isinstance(error, (Cancelled, JobCancelled)):
        return "Cancelled."
    if isinstance(error, InvalidImage):
        return f"I can't use that image: {error}"
    if isinstance(error, NSTError):
        return f"That didn't work: {error}"
    text = str(error).lower()
    if isinstance(error, (RuntimeError, MemoryError)) and (
        "out of memory" in text or isinstance(error, MemoryError)
    ):
        return "The painter ran out of memory; try a smaller size."
    return "Something went wrong on my side; it has been logged. Please try again later."


# ---------------------------------------------------------------------------- buttons
class RerunButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"nst:(?P<action>stronger|weaker|reroll):(?P<job_id>[0-9a-f]{8,32})",
):
    """Stronger / Weaker / Re-roll on a result; the job id in ``custom_id`` survives restarts."""

    LABELS: ClassVar[dict[Rerun, str]] = {
        Rerun.STRONGER: "Stronger",
        Rerun.WEAKER: "Weaker",
        Rerun.REROLL: "Re-roll",
    }

    def __init__(self, action: Rerun, job_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                label=self.LABELS[action],
                style=discord.ButtonStyle.secondary,
                custom_id=f"nst:{action.value}:{job_id}",
            )
        )
        self.action = action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, _item: discord.ui.Item[Any], match: re.Match[str]
    ) -> RerunButton:
        return cls(Rerun(match["action"]), match["job_id"])

    async def callback(self, interaction: discord.Interaction) -> None:
        cog = _cog_of(interaction)
        await cog.handle_rerun_button(interaction, self.job_id, self.action)


class CancelButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"nst:cancel:(?P<job_id>[0-9a-f]{8,32})"
):
    """Cancel on a progress message; only the requester or a member with Manage Messages."""

    def __init__(self, job_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                label="Cancel", style=discord.ButtonStyle.danger, custom_id=f"nst:cancel:{job_id}"
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, _item: discord.ui.Item[Any], match: re.Match[str]
    ) -> CancelButton:
        return cls(match["job_id"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await _cog_of(interaction).handle_cancel_button(interaction, self.job_id)


def result_view(job_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for action in (Rerun.STRONGER, Rerun.WEAKER, Rerun.REROLL):
        view.add_item(RerunButton(action, job_id))
    return view


def cancel_view(job_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job_id))
    return view


def _cog_of(interaction: discord.Interaction) -> StylizeCog:
    cog = interaction.client.get_cog("StylizeCog")  # type: ignore[attr-defined]
    assert isinstance(cog, StylizeCog)
    return cog


# ---------------------------------------------------------------------------- the cog
class StylizeCog(commands.Cog):
    """Owns the user-facing commands; the bot (``NSTBot``) owns settings, store and queue."""

    def __init__(self, bot: NSTBot) -> None:
        self.bot = bot
        self.settings = bot.settings
        #: /presets thumbnails by (file, modification time).
        self._thumbnail_cache: dict[tuple[str, int], EncodedImage] = {}
        self.stylize_command = self._build_stylize_command()
        self.presets_command: app_commands.Command[Any, ..., None] = app_commands.Command(
            name="presets", description="List the preset paintings", callback=self._presets_callback()
        )
        self.context_menu = app_commands.ContextMenu(
            name="Stylize with preset\u2026", callback=self._context_callback()
        )

    async def cog_load(self) -> None:
        for command in (self.stylize_command, self.presets_command, self.context_menu):
            self.bot.tree.add_command(command, override=True)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command("stylize")
        self.bot.tree.remove_command("presets")
        self.bot.tree.remove_command(self.context_menu.name, type=discord.AppCommandType.message)

    # ------------------------------------------------------------------ command definitions
    def _build_stylize_command(self) -> app_commands.Command[Any, ..., Any]:
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
        return app_commands.Command(
            name="stylize", description="Paint your photo in the style of a painting", callback=stylize
        )

    def preset_suggestions(self, current: str) -> list[app_commands.Choice[str]]:
        catalog = self.bot.catalog
        if catalog is None:
            return []
        needle = current.lower().strip()
        found = [p for p in catalog if needle in p.name or needle in p.label.lower()]
        return [app_commands.Choice(name=p.label[:100], value=p.name) for p in found[:25]]

    def _presets_callback(self) -> Any:
        cog = self

        async def presets(interaction: discord.Interaction) -> None:
            await cog.handle_presets(interaction)

        return presets

    def _context_callback(self) -> Any:
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

    def _preset_thumbnails(self, presets: list[Any]) -> dict[str, EncodedImage]:
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
                    thumbnail = encode_image(image, max_bytes=PRESET_THUMBNAIL_BYTES)
                except NSTError as error:  # a damaged cache file: list the preset without a picture
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
        """The /stylize handler (tests call it directly with spec'd mocks)."""
        strength = strength or self.settings.default_strength
        size = size or self.settings.default_size
        problem = self._check_choices(style, preset, strength, size)
        if problem:
            await interaction.response.send_message(problem, ephemeral=True)
            return
        try:
            self.bot.queue.check_admission(interaction.user.id)
        except JobRefused as refusal:
            await interaction.response.send_message(str(refusal), ephemeral=True)
            return
        too_large = self._oversized(content, "photo") or (
            self._oversized(style, "style image") if style else None
        )
        if too_large:  # refused before anything is downloaded, and privately
            await interaction.response.send_message(too_large, ephemeral=True)
            return
        await defer(interaction, ephemeral=False)
        conversation = self._conversation(interaction, interaction.channel, interaction.user.id)
        try:
            content_image = await self._download(content, "photo")
            style_image = await self._download(style, "style image") if style is not None else None
        except UnusableAttachment as error:
            await conversation.send(str(error), ephemeral=True)
            return
        request = JobRequest(strength=strength, size=size, preserve_color=preserve_colors, preset=preset)
        await self.start_job(
            conversation,
            content_image,
            style_image,
            request,
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
        )

    def _check_choices(self, style: Any, preset: str | None, strength: str, size: str) -> str | None:
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

    def _oversized(self, attachment: discord.Attachment, what: str) -> str | None:
        cap = self.settings.max_attachment_bytes
        if attachment.size > cap:
            return f"I can't use that {what}: it is larger than {cap / (1024 * 1024):.0f} MiB."
        return None

    async def _download(self, attachment: discord.Attachment, what: str) -> Image.Image:
        """Size-check (before downloading), download and decode one attachment."""
        cap = self.settings.max_attachment_bytes
        if attachment.size > cap:
            raise UnusableAttachment(what, f"it is larger than {cap / (1024 * 1024):.0f} MiB")
        try:
            data = await attachment.read()
        except discord.HTTPException:
            raise UnusableAttachment(what, "I could not download it; please try again") from None
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                None, lambda: decode_image(data, max_pixels=self.settings.max_input_pixels, max_bytes=cap)
            )
        except InvalidImage as error:
            raise UnusableAttachment(what, str(error)) from None

    def _conversation(
        self, interaction: discord.Interaction | None, channel: Any, user_id: int
    ) -> Conversation:
        return Conversation(
            interaction=interaction,
            channel=channel,
            user_id=user_id,
            token_seconds=self.settings.interaction_token_seconds,
        )

    # ------------------------------------------------------------------ context menu
    async def handle_context_menu(self, interaction: discord.Interaction, message: discord.Message) -> None:
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
        record = self.bot.store.get(job_id)
        if record is None:
            await interaction.response.send_message("I don't know that job any more.", ephemeral=True)
            return
        try:
            self.bot.queue.check_admission(interaction.user.id)
        except JobRefused as refusal:
            await interaction.response.send_message(str(refusal), ephemeral=True)
            return
        problem = self.rerun_problem(record, action)
        if problem is not None:  # known before deferring: refused privately, in the response itself
            await interaction.response.send_message(problem, ephemeral=True)
            return
        await defer(interaction, ephemeral=False)
        conversation = self._conversation(interaction, interaction.channel, interaction.user.id)
        await self.rerun(record, action, conversation)

    async def handle_reaction(self, payload: discord.RawReactionActionEvent) -> None:
        """A reaction with the configured emoji on a result re-runs it one step stronger."""
        if self.bot.user is not None and payload.user_id == self.bot.user.id:
            return
        if str(payload.emoji) != self.settings.reaction_emoji:
            return
        record = self.bot.store.by_result_message(payload.message_id)
        if record is None:
            return
        channel = self.bot.get_channel(payload.channel_id)
        if channel is None:
            try:
                channel = await self.bot.fetch_channel(payload.channel_id)
            except discord.HTTPException:
                log.warning("cannot reach channel %s for a reaction re-run", payload.channel_id)
                return
        conversation = self._conversation(None, channel, payload.user_id)
        try:
            self.bot.queue.check_admission(payload.user_id)
        except JobRefused as refusal:
            await conversation.tell(f"{conversation.mention} {refusal}")
            return
        await self.rerun(record, Rerun.STRONGER, conversation)

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

    async def rerun(self, record: JobRecord, action: Rerun, conversation: Conversation) -> None:
        request = JobRequest.from_dict(record.params)
        changed = apply_rerun(request.strength, request.seed, action)
        problem = self.rerun_problem(record, action)
        if changed is None or problem is not None:
            await conversation.tell(problem or EXPIRED_TEXT)
            return
        content = None if record.expired else self.bot.store.load_input(record.content_path)
        style = None if request.preset else self.bot.store.load_input(record.style_path)
        if content is None or (style is None and not request.preset):
            await conversation.tell(EXPIRED_TEXT)
            return
        strength, seed = changed
        new_request = JobRequest(
            strength=strength,
            size=request.size,
            preserve_color=request.preserve_color,
            seed=seed,
            preset=request.preset,
        )
        await self.start_job(
            conversation, content, style, new_request, guild_id=record.guild_id, channel_id=record.channel_id
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
        if self.bot.queue.cancel(job_id):
            await interaction.response.send_message("Cancelling\u2026", ephemeral=True)
        else:
            await interaction.response.send_message("That job has already finished.", ephemeral=True)

    # ------------------------------------------------------------------ running a job
    async def start_job(
        self,
        conversation: Conversation,
        content: Image.Image,
        style: Image.Image | None,
        request: JobRequest,
        *,
        guild_id: int | None,
        channel_id: int | None,
    ) -> None:
        """Store, enqueue and follow one job until its result (or failure) is posted."""
        store = self.bot.store
        job_id = new_job_id()
        record = JobRecord(
            job_id=job_id,
            user_id=conversation.user_id,
            guild_id=guild_id,
            channel_id=channel_id,
            params=request.to_dict(),
        )
        record.content_path = str(store.save_input(job_id, "content", content))
        if style is not None:
            record.style_path = str(store.save_input(job_id, "style", style))
        store.add(record)
        run = _JobRun(self, conversation, record, request, content, style)
        task = asyncio.current_task()
        if task is not None:
            self.bot.active_runs.add(task)
        try:
            await run.follow()
        finally:
            if task is not None:
                self.bot.active_runs.discard(task)

    def engine_params(self, request: JobRequest) -> Any:
        return self.settings.base_params().replace(
            size=self.settings.sizes[request.size],
            style_strength=self.settings.base_params().style_strength
            * self.settings.strength_steps[request.strength],
            preserve_color=request.preserve_color,
            seed=request.seed,
        )


class _JobRun:
    """The life of one job as its user sees it: queue position, progress edits, result."""

    def __init__(
        self,
        cog: StylizeCog,
        conversation: Conversation,
        record: JobRecord,
        request: JobRequest,
        content: Image.Image,
        style: Image.Image | None,
    ) -> None:
        self.cog = cog
        self.bot = cog.bot
        self.settings = cog.settings
        self.conversation = conversation
        self.record = record
        self.request = request
        self.content = content
        self.style = style
        self.params = cog.engine_params(request)
        self.throttle = EditThrottle(self.settings.progress_interval)
        self.message: Any = None
        self.message_ready = asyncio.Event()
        self.edit_lock = asyncio.Lock()
        self.pending_preview: Any = None
        self.previews_shown = 0
        self.started_at: float | None = None
        self.last_position: int | None = None

    async def follow(self) -> None:
        job = Job(
            job_id=self.record.job_id,
            user_id=self.record.user_id,
            work=self.work,
            on_position=self.on_position,
            on_start=self.on_start,
            on_progress=self.on_progress,
        )
        try:
            future = self.bot.queue.submit(job)
        except JobRefused as refusal:  # the limits moved since the early check: keep nothing of it
            self.bot.store.update(
                self.record.job_id, status=JobStatus.FAILED, error=str(refusal), finished_at=time.time()
            )
            self.bot.store.discard_inputs(self.record)
            await self.conversation.tell(str(refusal))
            return
        await self._open_progress_message()
        try:
            result = await future
        except BaseException as error:
            await self.failed(error, stopped_by_shutdown=job.stopped_by_shutdown)
            if isinstance(error, asyncio.CancelledError):
                raise
            return
        await self.deliver(result)

    # -- worker thread ------------------------------------------------------------------------
    def work(self, cancel: Any, report: Any) -> Any:
        style = self.style
        if style is None:
            assert self.bot.resolver is not None and self.request.preset is not None
            style = self.bot.resolver.resolve(self.request.preset)
        return engine_stylize(
            self.content,
            [style],
            self.params,
            progress=report,
            cancel=cancel,
            preview_every=preview_every(self.params.iterations, self.settings.preview_count),
            preview_size=self.settings.preview_size,
            style_cache=self.bot.style_cache,
        )

    # -- event loop observers -------------------------------------------------------------------
    async def _open_progress_message(self) -> None:
        position = self.bot.queue.position(self.record.job_id)
        text = queue_text(position) if self.started_at is None else "Painting\u2026"
        self.message = await self.conversation.send(text, view=cancel_view(self.record.job_id))
        if self.message is not None:
            self.bot.store.update(self.record.job_id, progress_message_id=self.message.id)
        self.last_position = position
        self.message_ready.set()

    async def on_position(self, announced: int) -> None:
        """Show the job's place in line, read from the queue when the edit is made.

        Each announcement becomes its own task, and a burst of them (several jobs ahead finishing
        while an edit is in flight) waits on the edit lock; the number an announcement carried may
        be stale by then. Reading the queue under the lock makes the shown number only ever fall,
        and collapses a burst into one edit, whatever order the tasks run in.
        """
        del announced  # the queue is asked instead; see above
        await self.message_ready.wait()
        async with self.edit_lock:
            position = self.bot.queue.position(self.record.job_id)
            if self.started_at is not None or position <= 0:
                return
            if self.last_position is not None and position >= self.last_position:
                return
            self.last_position = position
            await self._edit_locked(content=queue_text(position))

    def on_start(self) -> None:
        self.started_at = time.monotonic()
        self.bot.store.update(self.record.job_id, status=JobStatus.RUNNING)

    async def on_progress(self, progress: Any) -> None:
        if progress.preview is not None and self.previews_shown < self.settings.preview_count:
            self.pending_preview = progress.preview
        final = progress.step >= progress.total
        if not self.message_ready.is_set() or not self.throttle.should_edit(final=final):
            return
        if self.edit_lock.locked() and not final:
            return
        kwargs: dict[str, Any] = {
            "content": "Painting\u2026 "
            + render_progress(progress.step, progress.total, progress.elapsed, progress.eta)
        }
        if self.pending_preview is not None:
            kwargs["attachments"] = [_png_file(self.pending_preview, f"preview-{self.record.job_id}.png")]
            self.pending_preview = None
            self.previews_shown += 1
        await self._edit(**kwargs)

    async def _edit(self, **kwargs: Any) -> None:
        async with self.edit_lock:
            await self._edit_locked(**kwargs)

    async def _edit_locked(self, **kwargs: Any) -> None:
        """Edit the progress message; the caller holds ``edit_lock``."""
        if self.message is None:
            return
        try:
            self.message = await self.conversation.edit(self.message, **kwargs)
        except discord.HTTPException as error:  # a skipped progress edit is harmless
            log.warning("progress edit failed for job %s: %s", self.record.job_id, error.status)

    # -- endings -------------------------------------------------------------------------------
    async def failed(
        self, error: BaseException, *, stopped_by_shutdown: bool, text: str | None = None
    ) -> None:
        cancelled = isinstance(error, (Cancelled, JobCancelled, asyncio.CancelledError))
        if text is None and stopped_by_shutdown:
            text = "The bot is restarting, so your job was stopped; please try again in a minute."
        elif text is None:
            text = friendly_error(error)
        if not cancelled:
            log.error("job %s failed", self.record.job_id, exc_info=error)
        self.bot.store.update(
            self.record.job_id,
            status=JobStatus.CANCELLED if cancelled and not stopped_by_shutdown else JobStatus.FAILED,
            error=text,
            finished_at=time.time(),
        )
        if self.message is not None:
            await self._edit(content=text, view=None, attachments=[])
            if stopped_by_shutdown:
                await self.conversation.tell(text)
        else:
            await self.conversation.tell(text)

    async def deliver(self, result: Any) -> None:
        stats = result.stats
        limit = self.conversation.filesize_limit
        embed = self._embed(stats)
        view = result_view(self.record.job_id)
        message = None
        budget = limit - 4096  # room for the multipart envelope around the file
        for _attempt in range(UPLOAD_ATTEMPTS):
            max_bytes = max(MIN_UPLOAD_BYTES, budget)
            try:
                encoded = await asyncio.get_running_loop().run_in_executor(
                    None, functools.partial(encode_image, result.image, max_bytes=max_bytes)
                )
            except ValueError as error:  # no encoding fits under max_bytes, even scaled down
                await self.failed(
                    error,
                    stopped_by_shutdown=False,
                    text="I finished your picture but could not make it small enough to upload here; "
                    "please try a smaller size.",
                )
                return
            name = f"stylized-{self.record.job_id}.{encoded.extension}"
            embed.set_image(url=f"attachment://{name}")
            try:
                message = await self.conversation.send(
                    f"Done, {self.conversation.mention}!",
                    embed=embed,
                    file=discord.File(io.BytesIO(encoded.data), filename=name),
                    view=view,
                )
                break
            except discord.HTTPException as error:
                if error.status != 413 or max_bytes <= MIN_UPLOAD_BYTES:
                    log.warning("result upload failed for job %s: %s", self.record.job_id, error.status)
                    break
                # Discord's real limit is below what it advertised (a boost ended, a proxy in
                # between): the next file must be smaller than the one refused, not just under
                # a halved limit it may already have met.
                budget = min(budget // 2, len(encoded.data) * 3 // 4)
                log.info("upload of %d bytes refused (413); re-encoding under %d", len(encoded.data), budget)
        if message is None:
            await self.failed(
                RuntimeError("result upload failed"),
                stopped_by_shutdown=False,
                text="I finished your picture but could not upload it; please try again.",
            )
            return
        self.bot.store.update(
            self.record.job_id,
            status=JobStatus.DONE,
            result_message_id=message.id,
            stats=stats.to_dict(),
            finished_at=time.time(),
        )
        await self._edit(content=f"Finished in {stats.seconds:.1f} s.", view=None, attachments=[])
        try:
            await message.add_reaction(self.settings.reaction_emoji)
        except (discord.HTTPException, AttributeError, TypeError) as error:
            log.info("could not add the reaction hint: %s", error)

    def _embed(self, stats: Any) -> discord.Embed:
        request = self.request
        style = f"preset `{request.preset}`" if request.preset else "your image"
        embed = discord.Embed(title="Your painting", description=f"Style: {style}")
        embed.add_field(name="Strength", value=request.strength)
        embed.add_field(name="Size", value=f"{stats.width}\u00d7{stats.height}")
        embed.add_field(name="Colours", value="kept" if request.preserve_color else "from the style")
        embed.add_field(name="Iterations", value=str(stats.iterations))
        embed.add_field(name="Time", value=f"{stats.seconds:.1f} s on {stats.device} ({stats.precision})")
        embed.add_field(name="Seed", value=str(request.seed))
        embed.add_field(name="Requested by", value=f"<@{self.record.user_id}>")
        embed.set_footer(
            text=f"React {self.settings.reaction_emoji} for stronger \u00b7 job {self.record.job_id}"
        )
        return embed


def _png_file(image: Image.Image, name: str) -> discord.File:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    buffer.seek(0)
    return discord.File(buffer, filename=name)
