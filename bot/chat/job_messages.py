"""Every Discord message of a job: queue position, progress with previews, result, failure.

:class:`JobMessages` is one job as its user sees it: the queue position while it waits, one
progress message edited at most every ``progress_interval`` seconds (with previews) and with a
Cancel button, then the result (an embed, the picture, re-run and Delete buttons, a reaction
hint), or a one-line failure. When and why each is shown is decided in the core
(:class:`~bot.core.life.JobLife`); what a finished job posts is :meth:`JobMessages.post_result`.
:class:`DiscordMessenger` makes them for the job runner.
"""

from __future__ import annotations

import asyncio
import functools
import io
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import discord

from nst_engine.imaging import encode_image

from ..core import texts
from ..core.animation import AnimatedResult, fit_animation
from ..core.errors import Undeliverable
from ..core.progress import EditThrottle, preview_due
from ..core.requests import JobKind
from .buttons import cancel_view, result_view
from .conversation import Conversation, conversation_with

if TYPE_CHECKING:
    from PIL import Image

    from nst_engine import Progress, Result, RunStats
    from nst_engine.clips import ClipFormat

    from ..core.life import Talk
    from ..core.records import JobRecord
    from ..core.requests import JobRequest
    from .client import PaintingClient

log = logging.getLogger(__name__)

#: A result refused as too large (413) is re-encoded smaller this many times in all.
UPLOAD_ATTEMPTS = 3
#: Never re-encode below this: a picture this small that is still refused means something else is wrong.
MIN_UPLOAD_BYTES = 8 * 1024


@dataclass(frozen=True)
class _Upload:
    """A result's file: its bytes, extension, a still's size as sent, and a note said with it
    (an animation made smaller)."""

    data: bytes
    extension: str
    width: int
    height: int
    note: str | None = None


class DiscordMessenger:
    """Makes each job's :class:`JobMessages`, and finds a job's channel after a restart."""

    def __init__(self, client: PaintingClient) -> None:
        self.client = client

    def job_messages(
        self, talk: Talk, record: JobRecord, request: JobRequest, *, resumed: bool
    ) -> JobMessages:
        assert isinstance(talk, Conversation)  # the Discord layer only ever passes its conversations
        return JobMessages(self.client, talk, record, request, resumed=resumed)

    async def reach(self, record: JobRecord) -> Conversation:
        channel: object = None
        if record.channel_id is not None:
            try:
                channel = self.client.get_channel(record.channel_id) or await self.client.fetch_channel(
                    record.channel_id
                )
            except discord.HTTPException as error:
                log.warning("cannot reach channel %s: %s", record.channel_id, error.status)
        return conversation_with(
            None, channel, record.user_id, token_seconds=self.client.settings.interaction_token_seconds
        )


class JobMessages:
    """The messages of one job (see the module's docstring)."""

    def __init__(
        self,
        client: PaintingClient,
        conversation: Conversation,
        record: JobRecord,
        request: JobRequest,
        *,
        resumed: bool,
    ) -> None:
        self.client = client
        self.resumed = resumed
        self.settings = client.settings
        self.conversation = conversation
        self.job_id = record.job_id
        self.user_id = record.user_id
        self.guild_id = record.guild_id
        self.request = request
        self.throttle = EditThrottle(self.settings.progress_interval)
        self.message: discord.Message | None = None
        self.result: discord.Message | None = None
        self.message_ready = asyncio.Event()
        self.edit_lock = asyncio.Lock()
        self.pending_preview: Image.Image | None = None
        self.previews_shown = 0
        self.painting = False
        self.last_position: int | None = None
        #: An animation's first line (frames and the time expected), above every progress text.
        self.plan: str | None = None
        #: A line above the position and progress (a job painted again after a restart says so).
        self.note = ""

    def _position(self) -> int:
        return self.client.runner.backend.position(self.job_id)

    async def tell(self, text: str) -> None:
        await self.conversation.tell(text)

    async def announce(self, text: str) -> None:
        await self.conversation.send(texts.addressed(self.conversation.mention, text))

    # -- the progress message ------------------------------------------------------------------
    def plan_animation(self, frames: int, eta_seconds: float) -> None:
        self.plan = texts.animation_plan(frames, eta_seconds)

    async def open(self) -> int | None:
        position = self._position()
        text = self._noted(texts.queued(position) if not self.painting else texts.PAINTING)
        try:
            self.message = await self.conversation.send(text, view=cancel_view(self.job_id))
        except discord.HTTPException as error:
            log.warning("cannot post the progress message of job %s: %s", self.job_id, error.status)
            self.message = None
        self.message_ready.set()
        if self.message is None:
            return None
        self.last_position = position
        return self.message.id

    def resume(self) -> None:
        self.message_ready.set()  # the old progress message belongs to an expired interaction

    async def reopen(self, message_id: int | None) -> int | None:
        """The old progress message (its interaction is gone, so through the channel) becomes this
        one: it says the job is painted again and gets its Cancel back (the same job id, now alive
        again). Where it cannot be edited (deleted, or no channel), a new one is posted."""
        self.note = texts.PAINTING_AGAIN
        old = self._old_message(message_id)
        if old is not None:
            position = self._position()
            try:
                self.message = await old.edit(
                    content=self._noted(texts.queued(position) if not self.painting else texts.PAINTING),
                    view=cancel_view(self.job_id),
                    attachments=[],
                    allowed_mentions=self.conversation.allowed_mentions(None),
                )
            except discord.HTTPException as error:
                log.info("cannot take up the old progress message of job %s: %s", self.job_id, error.status)
            else:
                self.last_position = position
                self.message_ready.set()
                return self.message.id
        self.note = texts.addressed(self.conversation.mention, texts.PAINTING_AGAIN)
        return await self.open()

    async def close_old(self, message_id: int | None, text: str) -> None:
        old = self._old_message(message_id)
        if old is None:
            return
        try:
            await old.edit(content=text, view=None, attachments=[])
        except discord.HTTPException as error:
            log.info("cannot close the old progress message of job %s: %s", self.job_id, error.status)

    def _old_message(self, message_id: int | None) -> discord.PartialMessage | None:
        """The progress message ``message_id`` of a previous process, to edit through the channel."""
        channel = self.conversation.channel
        if message_id is None or not isinstance(
            channel, (discord.TextChannel, discord.Thread, discord.VoiceChannel, discord.StageChannel)
        ):
            return None
        return channel.get_partial_message(message_id)

    def _noted(self, content: str) -> str:
        """``content`` under the lines said above it: painted again after a restart, an
        animation's frames and time."""
        lines = [line for line in (self.note, self.plan) if line]
        return "\n".join([*lines, content])

    def started(self) -> None:
        self.painting = True

    async def show_position(self) -> None:
        """Each announcement becomes its own task, and a burst of them (several jobs ahead finishing
        while an edit is in flight) waits on the edit lock; the number an announcement carried may
        be stale by then. Reading the backend under the lock makes the shown number only ever fall,
        and collapses a burst into one edit, whatever order the tasks run in."""
        await self.message_ready.wait()
        async with self.edit_lock:
            position = self._position()
            if self.painting or position <= 0:
                return
            if self.last_position is not None and position >= self.last_position:
                return
            self.last_position = position
            await self._edit_locked(self._noted(texts.queued(position)))

    async def show_progress(self, progress: Progress) -> None:
        count = self.settings.preview_count
        if progress.preview is not None and preview_due(
            progress.frame, progress.frames, self.previews_shown, count
        ):
            self.pending_preview = progress.preview
        final = progress.step >= progress.total
        if not self.message_ready.is_set() or not self.throttle.should_edit(final=final):
            return
        if self.edit_lock.locked() and not final:
            return
        content = self._noted(
            texts.painting_progress(
                progress.step,
                progress.total,
                progress.elapsed,
                progress.eta,
                fraction=progress.fraction,
                frame=progress.frame,
                frames=progress.frames,
            )
        )
        preview_file = None
        if self.pending_preview is not None:
            preview, self.pending_preview = self.pending_preview, None
            name = f"preview-{self.job_id}.png"
            preview_file = await self.client.images.run(
                functools.partial(_png_file, preview, name, spoiler=self.request.spoiler)
            )
            self.previews_shown += 1
        await self._edit(content, preview=preview_file)

    async def _edit(self, content: str, *, preview: discord.File | None = None, final: bool = False) -> None:
        async with self.edit_lock:
            await self._edit_locked(content, preview=preview, final=final)

    async def _edit_locked(
        self, content: str, *, preview: discord.File | None = None, final: bool = False
    ) -> None:
        """Edit the progress message to say ``content``; the caller holds ``edit_lock``.

        ``preview`` replaces the picture shown (without one, the last stays). Until the ``final``
        edit (which removes the Cancel button and the preview), the message keeps its Cancel
        button: after the token expires an edit re-posts the message in the channel, and the new
        message must have it too.
        """
        if self.message is None:
            return
        view: discord.ui.View | None = None
        attachments: list[discord.File] | None = []
        if not final:
            view, attachments = cancel_view(self.job_id), None if preview is None else [preview]
        try:
            self.message = await self.conversation.edit(
                self.message, content=content, view=view, attachments=attachments
            )
        except discord.HTTPException as error:  # a skipped progress edit is harmless
            log.warning("progress edit failed for job %s: %s", self.job_id, error.status)

    # -- endings -------------------------------------------------------------------------------
    async def ended(self, text: str, *, stopped_by_shutdown: bool) -> None:
        if self.message is not None:
            await self._edit(text, final=True)
            if stopped_by_shutdown:
                await self.conversation.tell(text)
        elif self.resumed:
            await self.announce(text)  # no interaction survives a restart: say it in the channel
        else:
            await self.conversation.tell(text)

    async def post_result(self, result: Result) -> int:
        """The finished picture in an embed with the job's settings, re-run, Upscale (while it is
        under the server's largest upscale) and Delete buttons; an upscale replies to the result it
        enlarges (``JobRequest.reply_to``).

        Encoded under the upload limit: lossless PNG where it fits, else high-quality JPEG/WebP,
        as the embed's "File" says; a 413 (Discord's real limit is lower than it said) is
        re-encoded smaller, up to ``UPLOAD_ATTEMPTS`` times in all.
        """
        animated = isinstance(result, AnimatedResult)
        # An animation is not upscaled (the engine continues stills only).
        upscale = not animated and max(result.image.size) < self.client.runner.upscale_limit(self.guild_id)
        view = result_view(self.job_id, upscale=upscale)
        limit = self.conversation.filesize_limit
        budget = limit - 4096  # room for the multipart envelope
        for _attempt in range(UPLOAD_ATTEMPTS):
            max_bytes = max(MIN_UPLOAD_BYTES, budget)
            try:
                encoded = await self.client.images.run(functools.partial(self._encode, result, max_bytes))
            except ValueError as error:  # no encoding fits under max_bytes, even scaled down
                raise Undeliverable(texts.RESULT_TOO_LARGE) from error
            embed = self._embed(result.stats)
            if isinstance(result, AnimatedResult):  # how it was sent is said in the text (``note``)
                embed.add_field(name="Frames", value=str(result.frames))
            else:
                file_note = texts.result_file(
                    encoded.extension,
                    encoded.width,
                    encoded.height,
                    full=result.image.size,
                    limit_bytes=limit,
                )
                embed.add_field(name="File", value=file_note)
            name = f"stylized-{self.job_id}.{encoded.extension}"
            spoiler = self.request.spoiler
            # An image inside an embed cannot be blurred: a spoiler stays outside; so does a video.
            if not spoiler and encoded.extension != "mp4":
                embed.set_image(url=f"attachment://{name}")
            text = texts.done(self.conversation.mention)
            if encoded.note is not None:
                text = f"{text} {encoded.note}"
            try:
                message = await self.conversation.send(
                    text,
                    embeds=[embed],
                    files=[discord.File(io.BytesIO(encoded.data), filename=name, spoiler=spoiler)],
                    view=view,
                    reply_to=self.request.reply_to,
                )
            except discord.HTTPException as error:
                if error.status != 413 or max_bytes <= MIN_UPLOAD_BYTES:
                    log.warning("result upload failed for job %s: %s", self.job_id, error.status)
                    break
                # Discord's real limit is below what it advertised (a boost ended, a proxy in
                # between): the next file must be smaller than the one refused, not just under
                # a halved limit it may already have met.
                budget = min(budget // 2, len(encoded.data) * 3 // 4)
                log.info("upload of %d bytes refused (413); re-encoding under %d", len(encoded.data), budget)
                continue
            if message is not None:
                self.result = message
                return message.id
            break
        raise Undeliverable(texts.UPLOAD_FAILED)

    def _encode(self, result: Result, max_bytes: int) -> _Upload:
        """The file to post under ``max_bytes``: an animation in the ``animation_format`` setting
        (:func:`~bot.core.animation.fit_animation`), a still as :func:`encode_image` chooses."""
        if isinstance(result, AnimatedResult):
            wanted = cast("ClipFormat", self.settings.animation_format)
            posted = fit_animation(result, wanted, max_bytes)
            return _Upload(posted.data, posted.extension, *result.image.size, note=posted.note)
        encoded = encode_image(result.image, max_bytes=max_bytes)
        return _Upload(encoded.data, encoded.extension, encoded.width, encoded.height)

    async def finish(self, stats: RunStats) -> None:
        await self._edit(texts.finished_in(stats.seconds), final=True)
        if self.result is None:
            return
        try:
            await self.result.add_reaction(self.settings.reaction_emoji)
        except (discord.HTTPException, AttributeError, TypeError) as error:
            log.info("could not add the reaction hint: %s", error)

    def _embed(self, stats: RunStats) -> discord.Embed:
        request = self.request
        upscaled = request.kind is JobKind.UPSCALE
        title = texts.RESULT_TITLE_UPSCALED if upscaled else texts.RESULT_TITLE
        embed = discord.Embed(title=title, description=texts.result_style(request.preset))
        embed.add_field(name="Strength", value=request.strength)
        embed.add_field(name="Size", value=f"{stats.width}\u00d7{stats.height}")
        embed.add_field(name="Colours", value=texts.result_colours(request.preserve_color))
        embed.add_field(name="Iterations", value=str(stats.iterations))
        embed.add_field(name="Time", value=texts.result_time(stats.seconds, stats.device, stats.precision))
        embed.add_field(name="Seed", value=str(request.seed))
        embed.add_field(name="Requested by", value=f"<@{self.user_id}>")
        embed.set_footer(text=texts.result_footer(self.settings.reaction_emoji, self.job_id))
        return embed


def _png_file(image: Image.Image, name: str, *, spoiler: bool = False) -> discord.File:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    buffer.seek(0)
    return discord.File(buffer, filename=name, spoiler=spoiler)
