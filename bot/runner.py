"""The life of a job, wherever it is painted: record, queue position, progress, result, failure.

:class:`JobRunner` is the one place that turns a request into a stored :class:`~bot.store.JobRecord`,
hands it to the configured :class:`~bot.backends.Backend` (threads here, or workers through Redis),
and follows it to its end: queued → running → done | failed | cancelled. :class:`JobRun` is one
job as its user sees it: the queue position while it waits, one progress message edited at most
every ``progress_interval`` seconds (with previews), then the result with re-run buttons, or a
one-line :func:`friendly_error`. After a restart the runner picks up the jobs a remote backend is
still painting and delivers them to the same channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import io
import logging
import os
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import discord

from nst_engine import Progress, Result, RunStats, StyleParams
from nst_engine.errors import Cancelled, InvalidImage, NSTError, PresetError, is_out_of_memory
from nst_engine.imaging import encode_image

from .backends import Backend, Detached, PaintJob
from .conversation import Conversation, messageable
from .jobs import JobCancelled, JobRefused, Reservation
from .progress import EditThrottle, preview_every, queue_text, render_progress
from .store import InputImage, JobParams, JobRecord, JobStatus, RecordChanges, new_job_id
from .views import cancel_view, result_view

if TYPE_CHECKING:
    from PIL import Image
    from typing_extensions import Unpack

    from .app import NSTBot
    from .settings import Settings

log = logging.getLogger(__name__)

#: A result refused as too large (413) is re-encoded smaller this many times in all.
UPLOAD_ATTEMPTS = 3
#: Never re-encode below this: a picture this small that is still refused means something else is wrong.
MIN_UPLOAD_BYTES = 8 * 1024

#: Threads that decode and encode pictures (uploads, stored inputs, results, previews): a few, so
#: twenty photos arriving at once are decoded a few at a time instead of all at once (each decode
#: and lossless WebP encode of a phone photo takes tens of MB while it runs).
IMAGE_THREADS = min(4, os.cpu_count() or 1)

T = TypeVar("T")

SHUTDOWN_TEXT = "The bot is restarting, so your job was stopped; please try again in a minute."
DISK_FULL_TEXT = "My disk is full right now, so I could not keep your picture; please try again later."
DATABASE_BUSY_TEXT = (
    "I am too busy to take this right now (my job list is locked); please try again in a minute."
)


@dataclass(frozen=True)
class JobRequest:
    """What to paint, as the user chose it; stored as the record's ``params``."""

    strength: str = "normal"
    size: str = "medium"
    preserve_color: bool = False
    seed: int = 0
    preset: str | None = None
    #: An input was marked as a spoiler: the previews and the result are too.
    spoiler: bool = False

    def to_dict(self) -> JobParams:
        return {
            "strength": self.strength,
            "size": self.size,
            "preserve_color": self.preserve_color,
            "seed": self.seed,
            "preset": self.preset,
            "spoiler": self.spoiler,
        }

    @classmethod
    def from_dict(cls, data: JobParams) -> JobRequest:
        """The request a record keeps; a field an older record lacks keeps its default."""
        return cls(**data)


def engine_params(settings: Settings, request: JobRequest) -> StyleParams:
    """The engine parameters of one request: the settings' base with size and strength applied."""
    base: StyleParams = settings.base_params()
    return base.replace(
        size=settings.sizes[request.size],
        style_strength=base.style_strength * settings.strength_steps[request.strength],
        preserve_color=request.preserve_color,
        seed=request.seed,
    )


#: An absolute file path (``/root/.cache/...``, ``~/x/y``, ``C:\\x\\y``), not a URL's path.
_SERVER_PATH = re.compile(r"(?<![\w.:/\\])(?:~|[A-Za-z]:)?[/\\](?:[^\s'\"/\\]+[/\\])+[^\s'\"]*")


def without_paths(text: str) -> str:
    """``text`` with every server file path replaced: users never see them (the log has them)."""
    return _SERVER_PATH.sub("(a file on the server)", text)


def friendly_error(error: BaseException, *, preset: str | None = None) -> str:
    """The one-line message a user sees for a failed job; never a traceback, never a server path.

    ``preset``: the job's preset, if any. A preset that cannot be loaded (a missing file, a failed
    download) is the operator's to fix; the engine's message tells them where to put the file,
    and it goes to the log only.
    """
    if isinstance(error, (Cancelled, JobCancelled)):
        return "Cancelled."
    if isinstance(error, JobRefused):
        return str(error)
    if isinstance(error, InvalidImage):
        return without_paths(f"I can't use that image: {error}")
    if preset is not None and (
        isinstance(error, PresetError) or (isinstance(error, NSTError) and str(error).startswith("preset "))
    ):  # a remote worker's PresetError comes back as a plain NSTError with the same text
        return (
            f"The preset painting `{preset}` is not available right now; try another preset or "
            "your own style image. The bot's operator can see why in its log."
        )
    if isinstance(error, NSTError):
        return without_paths(f"That didn't work: {error}")
    if is_out_of_memory(error):
        return "The painter ran out of memory; try a smaller size."
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return DISK_FULL_TEXT
    if isinstance(error, sqlite3.OperationalError):  # "database is locked", a full disk under SQLite
        return DATABASE_BUSY_TEXT
    return "Something went wrong on my side; it has been logged. Please try again later."


class JobRunner:
    """Starts, follows, cancels and (after a restart) resumes jobs on one backend."""

    def __init__(self, bot: NSTBot, backend: Backend) -> None:
        self.bot = bot
        self.settings = bot.settings
        self.backend = backend
        #: Tasks following a job to its end (so ``close`` lets them say goodbye).
        self.active: set[asyncio.Task[None]] = set()
        self._images = ThreadPoolExecutor(max_workers=IMAGE_THREADS, thread_name_prefix="nst-images")

    async def in_image_thread(self, work: Callable[[], T]) -> T:
        """Run ``work`` (decoding or encoding a picture) in an image thread, off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._images, work)

    def close(self) -> None:
        """Let the image threads go once their work is done."""
        self._images.shutdown(wait=False, cancel_futures=True)

    def reserve(self, user_id: int) -> Reservation:
        """A place for a new job of ``user_id``, taken before its inputs are fetched; raises the
        :class:`JobRefused` it meets. Release it on every path (the job takes it over)."""
        return self.backend.reserve(user_id)

    @property
    def max_side(self) -> int:
        """The longest side any job (or re-run) can paint: inputs are decoded and kept no larger."""
        return max(self.settings.sizes.values())

    async def cancel(self, job_id: str) -> bool:
        return await self.backend.cancel(job_id)

    async def start(
        self,
        conversation: Conversation,
        content: InputImage,
        style: InputImage | None,
        request: JobRequest,
        *,
        guild_id: int | None,
        channel_id: int | None,
        reservation: Reservation | None = None,
    ) -> None:
        """Store, enqueue and follow one job until its result (or failure) is posted.

        Inputs not stored yet are written (in a thread: a photo's file is written off the event
        loop); a re-run's are shared with its job. The job takes over ``reservation``.
        """
        store = self.bot.store
        job_id = new_job_id()
        record = JobRecord(
            job_id=job_id,
            user_id=conversation.user_id,
            guild_id=guild_id,
            channel_id=channel_id,
            params=request.to_dict(),
        )
        try:
            await asyncio.to_thread(store.add_with_inputs, record, content, style)
        except Exception as error:  # a full disk, a locked database: the user hears it at once
            if not isinstance(error, JobRefused):
                log.error("could not store job %s", job_id, exc_info=error)
            await conversation.tell(friendly_error(error))
            return
        run = JobRun(self, conversation, record, request)
        params = run.params
        job = PaintJob(
            job_id=job_id,
            user_id=conversation.user_id,
            content=content.image,
            style=None if style is None else style.image,
            preset=request.preset,
            params=params,
            preview_every=preview_every(params.iterations, self.settings.preview_count),
            preview_size=self.settings.preview_size,
        )
        await self._follow(run, lambda: self.backend.submit(job, run, reservation))

    async def recover(self) -> None:
        """After a restart: follow again the jobs the backend still has, tell the others' users.

        A job painted in the old process (the local backend) is lost: its user is asked to run
        /stylize again. A job on remote workers goes on; its result is delivered to its channel.
        """
        await self.bot.wait_until_ready()
        try:
            records = await asyncio.to_thread(self.bot.store.with_status, JobStatus.QUEUED, JobStatus.RUNNING)
        except sqlite3.Error as error:
            log.error("cannot read the jobs left by the previous run: %s", error)
            return
        for record in records:
            channel = await self._channel(record.channel_id)
            conversation = Conversation(
                interaction=None,
                channel=channel,
                user_id=record.user_id,
                token_seconds=self.settings.interaction_token_seconds,
            )
            run = JobRun(self, conversation, record, JobRequest.from_dict(record.params), resumed=True)
            future = await self.backend.resume(record, run)
            if future is None:
                await run.save(
                    status=JobStatus.FAILED,
                    error="the bot restarted while this job ran",
                    finished_at=time.time(),
                )
                await run.discard_inputs()
                if channel is not None:
                    await conversation.send(
                        f"{conversation.mention} Sorry, the bot restarted while your picture was being "
                        "painted; please run /stylize again."
                    )
                continue
            log.info("following job %s again after a restart", record.job_id)
            task = asyncio.create_task(self._follow(run, functools.partial(_ready, future)))
            self.active.add(task)
            task.add_done_callback(self.active.discard)

    async def _channel(self, channel_id: int | None) -> discord.abc.Messageable | None:
        if channel_id is None:
            return None
        try:
            return messageable(self.bot.get_channel(channel_id) or await self.bot.fetch_channel(channel_id))
        except discord.HTTPException as error:
            log.warning("cannot reach channel %s: %s", channel_id, error.status)
            return None

    async def _follow(self, run: JobRun, submit: Callable[[], Awaitable[asyncio.Future[Result]]]) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.active.add(task)
        try:
            await run.follow(submit)
        finally:
            if task is not None:
                self.active.discard(task)


async def _ready(future: asyncio.Future[Result]) -> asyncio.Future[Result]:
    return future


class JobRun:
    """The life of one job as its user sees it: queue position, progress edits, result."""

    def __init__(
        self,
        runner: JobRunner,
        conversation: Conversation,
        record: JobRecord,
        request: JobRequest,
        *,
        resumed: bool = False,
    ) -> None:
        self.runner = runner
        self.bot = runner.bot
        self.settings = runner.settings
        self.conversation = conversation
        self.record = record
        self.request = request
        self.resumed = resumed
        self.params = engine_params(self.settings, request)
        self.throttle = EditThrottle(self.settings.progress_interval)
        self.message: discord.Message | None = None
        self.message_ready = asyncio.Event()
        self.edit_lock = asyncio.Lock()
        self.pending_preview: Image.Image | None = None
        self.previews_shown = 0
        self.started_at: float | None = None
        self.last_position: int | None = None

    async def follow(self, submit: Callable[[], Awaitable[asyncio.Future[Result]]]) -> None:
        backend = self.runner.backend
        try:
            future = await submit()
        except JobRefused as refusal:  # the limits moved since the early check, or no service
            await self.save(status=JobStatus.FAILED, error=str(refusal), finished_at=time.time())
            await self.discard_inputs()
            await self.conversation.tell(str(refusal))
            return
        if self.resumed:
            self.message_ready.set()  # the old progress message belongs to an expired interaction
        elif not await self._open_progress_message():
            await self._stop_unseen(future)
            return
        try:
            result = await future
        except Detached:
            log.info("job %s goes on without this bot process", self.record.job_id)
            return
        except BaseException as error:
            await self.failed(error, stopped_by_shutdown=backend.stopped_by_shutdown(self.record.job_id))
            if isinstance(error, asyncio.CancelledError):
                raise
            return
        await self.deliver(result)

    async def _stop_unseen(self, future: asyncio.Future[Result]) -> None:
        """The progress message could not be posted, so neither could the result: stop the job
        and record it as failed (not left "running", which a restart would misreport)."""
        await self.runner.backend.cancel(self.record.job_id)
        with contextlib.suppress(Exception):  # Cancelled, or whatever ended it first: it is over
            await future
        text = "I could not post your job's progress here, so I stopped it; please try again."
        await self.save(
            status=JobStatus.FAILED, error="the progress message could not be posted", finished_at=time.time()
        )
        await self.discard_inputs()
        await self.conversation.tell(text)  # quietly: it may well fail too

    async def save(self, **changes: Unpack[RecordChanges]) -> None:
        """Update the job's record (in a thread: a locked database waits there, not on the loop);
        a database that fails (locked, full) is logged, and the job goes on to tell its user how
        it ended all the same."""
        try:
            await asyncio.to_thread(self.bot.store.update, self.record.job_id, **changes)
        except (sqlite3.Error, OSError) as error:
            log.error("could not record %s for job %s: %s", sorted(changes), self.record.job_id, error)

    def save_now(self, **changes: Unpack[RecordChanges]) -> None:
        """:meth:`save` on the loop, for a change that must be visible before the next await."""
        try:
            self.bot.store.update(self.record.job_id, **changes)
        except (sqlite3.Error, OSError) as error:
            log.error("could not record %s for job %s: %s", sorted(changes), self.record.job_id, error)

    async def discard_inputs(self) -> None:
        """Let go of the job's stored inputs (it failed or was cancelled: nothing can re-run it)."""
        try:
            await asyncio.to_thread(self.bot.store.discard_inputs, self.record)
        except (sqlite3.Error, OSError) as error:
            log.error("could not delete the inputs of job %s: %s", self.record.job_id, error)

    # -- observers (the backend calls them on the event loop) ---------------------------------
    async def _open_progress_message(self) -> bool:
        """Post the message that shows the queue position, progress and Cancel; False when it
        cannot be posted (an error after discord.py's retries, or no permission in the channel)."""
        position = self.runner.backend.position(self.record.job_id)
        text = queue_text(position) if self.started_at is None else "Painting\u2026"
        try:
            self.message = await self.conversation.send(text, view=cancel_view(self.record.job_id))
        except discord.HTTPException as error:
            log.warning("cannot post the progress message of job %s: %s", self.record.job_id, error.status)
            self.message = None
        self.message_ready.set()
        if self.message is None:
            return False
        self.last_position = position
        await self.save(progress_message_id=self.message.id)
        return True

    async def on_position(self, position: int) -> None:
        """Show the job's place in line, read from the backend when the edit is made.

        Each announcement becomes its own task, and a burst of them (several jobs ahead finishing
        while an edit is in flight) waits on the edit lock; the number an announcement carried may
        be stale by then. Reading the backend under the lock makes the shown number only ever fall,
        and collapses a burst into one edit, whatever order the tasks run in.
        """
        del position  # the backend is asked instead; see above
        await self.message_ready.wait()
        async with self.edit_lock:
            position = self.runner.backend.position(self.record.job_id)
            if self.started_at is not None or position <= 0:
                return
            if self.last_position is not None and position >= self.last_position:
                return
            self.last_position = position
            await self._edit_locked(queue_text(position))

    def on_start(self) -> None:
        self.started_at = time.monotonic()
        self.save_now(status=JobStatus.RUNNING)

    async def on_progress(self, progress: Progress) -> None:
        if progress.preview is not None and self.previews_shown < self.settings.preview_count:
            self.pending_preview = progress.preview
        final = progress.step >= progress.total
        if not self.message_ready.is_set() or not self.throttle.should_edit(final=final):
            return
        if self.edit_lock.locked() and not final:
            return
        content = "Painting\u2026 " + render_progress(
            progress.step, progress.total, progress.elapsed, progress.eta
        )
        preview_file = None
        if self.pending_preview is not None:
            preview, self.pending_preview = self.pending_preview, None
            name = f"preview-{self.record.job_id}.png"
            preview_file = await self.runner.in_image_thread(
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
            view, attachments = cancel_view(self.record.job_id), None if preview is None else [preview]
        try:
            self.message = await self.conversation.edit(
                self.message, content=content, view=view, attachments=attachments
            )
        except discord.HTTPException as error:  # a skipped progress edit is harmless
            log.warning("progress edit failed for job %s: %s", self.record.job_id, error.status)

    # -- endings -------------------------------------------------------------------------------
    async def failed(
        self, error: BaseException, *, stopped_by_shutdown: bool, text: str | None = None
    ) -> None:
        cancelled = isinstance(error, (Cancelled, JobCancelled, asyncio.CancelledError))
        if text is None and stopped_by_shutdown:
            text = SHUTDOWN_TEXT
        elif text is None:
            text = friendly_error(error, preset=self.request.preset)
        if not cancelled:
            log.error("job %s failed", self.record.job_id, exc_info=error)
        await self.save(
            status=JobStatus.CANCELLED if cancelled and not stopped_by_shutdown else JobStatus.FAILED,
            error=text,
            finished_at=time.time(),
        )
        await self.discard_inputs()
        if self.message is not None:
            await self._edit(text, final=True)
            if stopped_by_shutdown:
                await self.conversation.tell(text)
        elif self.resumed:
            await self.conversation.send(f"{self.conversation.mention} {text}")
        else:
            await self.conversation.tell(text)

    async def deliver(self, result: Result) -> None:
        stats = result.stats
        limit = self.conversation.filesize_limit
        embed = self._embed(stats)
        view = result_view(self.record.job_id)
        message = None
        budget = limit - 4096  # room for the multipart envelope around the file
        for _attempt in range(UPLOAD_ATTEMPTS):
            max_bytes = max(MIN_UPLOAD_BYTES, budget)
            try:
                encoded = await self.runner.in_image_thread(
                    functools.partial(encode_image, result.image, max_bytes=max_bytes)
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
            spoiler = self.request.spoiler
            if not spoiler:  # an image inside an embed cannot be blurred: a spoiler stays outside
                embed.set_image(url=f"attachment://{name}")
            try:
                message = await self.conversation.send(
                    f"Done, {self.conversation.mention}!",
                    embeds=[embed],
                    files=[discord.File(io.BytesIO(encoded.data), filename=name, spoiler=spoiler)],
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
        # At once, on the loop: a reaction or a button on the result needs its record from now on.
        self.save_now(
            status=JobStatus.DONE,
            result_message_id=message.id,
            stats=stats.to_dict(),
            finished_at=time.time(),
        )
        await self._edit(f"Finished in {stats.seconds:.1f} s.", final=True)
        try:
            await message.add_reaction(self.settings.reaction_emoji)
        except (discord.HTTPException, AttributeError, TypeError) as error:
            log.info("could not add the reaction hint: %s", error)

    def _embed(self, stats: RunStats) -> discord.Embed:
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


def _png_file(image: Image.Image, name: str, *, spoiler: bool = False) -> discord.File:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    buffer.seek(0)
    return discord.File(buffer, filename=name, spoiler=spoiler)
