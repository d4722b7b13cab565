"""The job runner: the one place that decides the life of every job, wherever it is painted.

:class:`JobRunner` reserves a user's place (:meth:`~JobRunner.reserve`), turns a request into a
stored record and a job on the configured backend (:meth:`~JobRunner.start`), paints a record
again (:meth:`~JobRunner.plan_rerun`, :meth:`~JobRunner.rerun`), follows again after a restart
the jobs a remote backend still paints (:meth:`~JobRunner.recover`), and cancels and deletes
jobs. Each job is then followed by a :class:`~bot.core.life.JobLife`. Nothing here knows
Discord: the user is a :class:`~bot.core.life.Talk`, and a job's messages come from the
:class:`Messenger` the Discord layer gives the runner.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar, cast

from . import texts
from .admission import RerunRule
from .animation import AnimatedResult, Pace
from .backend import ClipJob, PaintJob
from .clip_inputs import load_clip
from .errors import JobRefused, RerunRefused, friendly_error
from .inputs import InputImage, load_input
from .life import JobLife, JobMessages, Talk
from .progress import preview_every
from .records import JobRecord, JobStatus, new_job_id
from .requests import JobKind, JobRequest, clip_params, style_params, upscale_side
from .strength import Rerun, apply_rerun

if TYPE_CHECKING:
    from nst_engine import Result, StyleParams
    from nst_engine.clips import ClipFormat

    from .admission import RerunClaim, Reservation
    from .backend import Backend
    from .guild_settings import GuildSettingsStore
    from .settings import Settings
    from .store import JobStore

log = logging.getLogger(__name__)

#: Threads that decode and encode pictures (uploads, stored inputs, results, previews): a few, so
#: twenty photos arriving at once are decoded a few at a time instead of all at once (each decode
#: and lossless WebP encode of a phone photo takes tens of MB while it runs).
IMAGE_THREADS = min(4, os.cpu_count() or 1)

T = TypeVar("T")

#: A job whose bot process died is painted again from its stored inputs at most this many times
#: (local backend): a job that keeps crashing the bot must not crash it forever.
MAX_RESUMES = 1


class ImageThreads:
    """The threads that decode and encode pictures, off the event loop."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=IMAGE_THREADS, thread_name_prefix="nst-images")

    async def run(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, work)

    def close(self) -> None:
        """Let the threads go once their work is done."""
        self._pool.shutdown(wait=False, cancel_futures=True)


class Messenger(Protocol):
    """What the runner needs from the chat side: a job's messages, and its user after a restart."""

    def job_messages(
        self, talk: Talk, record: JobRecord, request: JobRequest, *, resumed: bool
    ) -> JobMessages: ...

    async def reach(self, record: JobRecord) -> Talk:
        """The user of ``record``'s job, in its channel (no interaction survives a restart)."""


class RerunReservation:
    """What a re-run holds from its request to its job's end: the result, marked as being re-run
    (:class:`~bot.core.admission.RerunClaim`), and the user's place in the limits (``place``).

    :meth:`JobRunner.rerun` releases it as soon as its job has ended (done, failed, cancelled);
    use it as a context manager around that call too, so that leaving the block gives both back
    on every other path (refused, expired, an error before the job was submitted). Releasing is
    idempotent.
    """

    def __init__(self, claim: RerunClaim, place: Reservation) -> None:
        self.claim = claim
        self.place = place

    def __enter__(self) -> RerunReservation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def release(self) -> None:
        spent = not self.place.held  # a job was submitted with the place: the budget is spent
        self.place.release()
        self.claim.release(spent=spent)


class JobRunner:
    """Starts, follows, re-runs, cancels, deletes and (after a restart) resumes jobs on one backend."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: JobStore,
        backend: Backend,
        guild_settings: GuildSettingsStore,
        messenger: Messenger,
        images: ImageThreads,
    ) -> None:
        self.settings = settings
        self.store = store
        self.backend = backend
        self.guild_settings = guild_settings
        self.messenger = messenger
        self.images = images
        #: Tasks following a job to its end (so ``close`` lets them say goodbye).
        self.active: set[asyncio.Task[None]] = set()
        #: One re-run of a result at a time; each user's budget of re-runs of others' results.
        self.reruns = RerunRule(per_hour=settings.others_reruns_per_hour)
        #: How long a clip takes here, learnt from the clips painted (the acknowledgement's ETA).
        self.pace = Pace()
        #: This process, in the records of the jobs it follows: a job queued or running under
        #: another id is a previous process's leftover (:meth:`recover`), never one of ours, even
        #: when recovery runs after the first interactions were accepted.
        self.boot_id = uuid.uuid4().hex

    @property
    def max_side(self) -> int:
        """The longest side any job (a re-run, an upscale) can paint: inputs are decoded and kept no
        larger, and no smaller either, so that an upscale paints the photo's own detail."""
        return self.settings.largest_side

    def reserve(self, user_id: int) -> Reservation:
        """A place for a new job of ``user_id``, taken before its inputs are fetched; raises the
        :class:`JobRefused` it meets. Release it on every path (the job takes it over)."""
        return self.backend.reserve(user_id)

    def reserve_rerun(self, record: JobRecord, user_id: int, *, channel_id: int | None) -> RerunReservation:
        """A re-run of ``record`` by ``user_id`` (asked in ``channel_id``), admitted now or refused
        with the :class:`JobRefused` it meets: :class:`~bot.core.errors.RerunInProgress` while
        ``record`` is being re-run, :class:`~bot.core.errors.RerunBudgetSpent`, then the limits of
        :meth:`reserve`. Nothing awaits in between, so of simultaneous requests one wins."""
        self.reruns.check(record.job_id, record.user_id, user_id)
        place = self.reserve(user_id)
        claim = self.reruns.claim(record.job_id, record.user_id, user_id, channel_id)
        return RerunReservation(claim, place)

    async def cancel(self, job_id: str) -> bool:
        return await self.backend.cancel(job_id)

    # ------------------------------------------------------------------ new jobs
    async def start(
        self,
        talk: Talk,
        content: InputImage,
        style: InputImage | None,
        request: JobRequest,
        *,
        guild_id: int | None,
        channel_id: int | None,
        reservation: Reservation | None = None,
        on_end: Callable[[], None] | None = None,
        start_from: InputImage | None = None,
    ) -> None:
        """Store, enqueue and follow one job until its result (or failure) is posted.

        Inputs not stored yet are written (in a thread: a photo's file is written off the event
        loop); a re-run's are shared with its job. The job takes over ``reservation``.
        ``on_end`` is called once the submitted job has ended (painted, failed or cancelled),
        before its result is posted. ``start_from`` (an upscale's starting picture, already stored
        as another job's result) is shared with that job like a re-run's inputs.
        """
        record = JobRecord(
            job_id=new_job_id(),
            user_id=talk.user_id,
            guild_id=guild_id,
            channel_id=channel_id,
            params=request.to_dict(),
            start_path=None if start_from is None else start_from.path,
            boot_id=self.boot_id,
        )
        try:
            await asyncio.to_thread(self.store.add_with_inputs, record, content, style)
            job = await self._paint_job(record, request, content, style, start_from)
        except Exception as error:  # a full disk, a locked database: the user hears it at once
            if not isinstance(error, JobRefused):
                log.error("could not store job %s", record.job_id, exc_info=error)
            await talk.tell(friendly_error(error))
            return
        life = self._life(talk, record, request, resumed=False)
        animation = job.animation
        if animation is not None:
            life.messages.plan_animation(*self._clip_plan(animation, job.params))

        async def submit() -> asyncio.Future[Result]:
            future = await self.backend.submit(job, life, reservation)
            if animation is not None:
                future.add_done_callback(functools.partial(self._learn_pace, animation, job.params))
            if on_end is not None:
                future.add_done_callback(lambda _: on_end())
            return future

        await self._follow(life, submit)

    def _clip_plan(self, animation: ClipJob, params: StyleParams) -> tuple[int, float]:
        """Frames to paint (a frame repeated in the clip is painted once) and the seconds expected."""
        frames = len(animation.clip.without_repeats().frames)
        return frames, self.pace.estimate(frames, animation.clip.size, params, animation.params)

    def _learn_pace(self, animation: ClipJob, params: StyleParams, future: asyncio.Future[Result]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        result = future.result()
        if isinstance(result, AnimatedResult):
            self.pace.learn(
                result.stats.seconds, result.frames, animation.clip.size, params, animation.params
            )

    async def _paint_job(
        self,
        record: JobRecord,
        request: JobRequest,
        content: InputImage,
        style: InputImage | None,
        start_from: InputImage | None = None,
    ) -> PaintJob:
        """What the backend paints for ``record``: its decoded inputs, the engine's parameters, an
        animation's clip (whose kept file is what travels to the workers), an upscale's start."""
        params = style_params(self.settings, request)
        animation = None
        if content.clip is not None and content.path is not None:
            clip_path = content.path
            animation = ClipJob(
                clip=content.clip,
                data=await asyncio.to_thread(Path(clip_path).read_bytes),
                limits=self.settings.clip_limits(),
                params=clip_params(self.settings),
                output_format=cast("ClipFormat", self.settings.animation_format),  # validated by Settings
            )
        return PaintJob(
            job_id=record.job_id,
            user_id=record.user_id,
            content=content.image,
            style=None if style is None else style.image,
            preset=request.preset,
            params=params,
            preview_every=preview_every(params.iterations, self.settings.preview_count),
            preview_size=self.settings.preview_size,
            animation=animation,
            start_from=None if start_from is None else start_from.image,
        )

    def _life(
        self, talk: Talk, record: JobRecord, request: JobRequest, *, resumed: bool, repainted: bool = False
    ) -> JobLife:
        """The one way a job is built from its record, new, re-run or resumed."""
        messages = self.messenger.job_messages(talk, record, request, resumed=resumed)
        return JobLife(
            record,
            request,
            messages,
            store=self.store,
            backend=self.backend,
            resumed=resumed,
            keep_results_below=self.settings.max_upscale_side,
            repainted=repainted,
        )

    async def _load_inputs(
        self, record: JobRecord, request: JobRequest, start_path: str | None = None
    ) -> tuple[InputImage, InputImage | None, InputImage | None] | None:
        """``record``'s stored inputs (an animation's clip decoded as its upload was) and
        ``start_path`` (an upscale's starting picture), decoded in a thread (never copied); None
        when any is gone."""
        max_side = self.max_side
        content_path = record.content_path
        style_path = None if request.preset else record.style_path
        clip = None
        if request.kind is JobKind.ANIMATE:
            limits, clip_side = self.settings.clip_limits(), self.settings.animation_size
            clip = await self.images.run(lambda: load_clip(content_path, limits=limits, max_side=clip_side))
        content, style, start = await self.images.run(
            lambda: (
                (clip.frames[0] if clip is not None else None)
                if request.kind is JobKind.ANIMATE
                else load_input(content_path, max_side=max_side),
                None if style_path is None else load_input(style_path, max_side=max_side),
                None if start_path is None else load_input(start_path, max_side=max_side),
            )
        )
        if content is None or (style is None and not request.preset) or (start is None and start_path):
            return None
        return (
            InputImage(content, path=content_path, clip=clip),
            None if style is None else InputImage(style, path=style_path),
            None if start is None else InputImage(start, path=start_path),
        )

    # ------------------------------------------------------------------ re-runs
    @staticmethod
    def _stored_request(record: JobRecord) -> JobRequest:
        """``record``'s request, or :class:`RerunRefused` for one this version cannot read."""
        try:
            return JobRequest.from_dict(record.params)
        except ValueError as error:  # a kind of job a newer version wrote
            log.warning("cannot re-run job %s, which this version cannot read: %s", record.job_id, error)
            raise RerunRefused(texts.UNKNOWN_JOB) from None

    @staticmethod
    def _check_kept(record: JobRecord, request: JobRequest, *more: str | None) -> None:
        """:class:`RerunRefused` (expired) unless ``record``'s inputs (and ``more`` files) are kept."""
        paths = [record.content_path] if request.preset else [record.content_path, record.style_path]
        if request.kind is JobKind.UPSCALE:
            paths.append(record.start_path)
        paths.extend(more)
        if record.expired or not all(path and Path(path).is_file() for path in paths):
            raise RerunRefused(texts.EXPIRED_TEXT)

    def upscale_limit(self, guild_id: int | None) -> int:
        """The longest side an Upscale may paint in ``guild_id`` now (0: no upscales)."""
        return self.guild_settings.get(guild_id).upscale_limit(self.settings.max_upscale_side)

    def plan_upscale(self, record: JobRecord, *, reply_to: int | None = None) -> JobRequest:
        """The request that paints ``record``'s result at twice its size (up to the server's
        largest upscale), continuing from that picture, replying to ``reply_to`` (the result's
        message; by default the one recorded); raises :class:`RerunRefused` when it cannot: the
        result is already at the limit (the sentence says the limit), or its picture or inputs
        expired."""
        request = self._stored_request(record)
        if self.store.deliveries.is_unrecorded(record.job_id):  # delivered, its record unwritten
            raise RerunRefused(texts.CANNOT_RERUN_NOW)
        if request.kind is JobKind.ANIMATE:  # the engine continues stills only
            raise RerunRefused(texts.UPSCALE_NOT_FOR_ANIMATIONS)
        limit = self.upscale_limit(record.guild_id)
        stats = record.stats or {}
        width, height = stats.get("width"), stats.get("height")
        if not isinstance(width, int) or not isinstance(height, int):
            raise RerunRefused(texts.EXPIRED_TEXT)
        side = upscale_side(max(width, height), limit)
        if side is None:
            raise RerunRefused(texts.upscale_at_limit(limit))
        self._check_kept(record, request, record.result_path)
        server = self.guild_settings.get(record.guild_id)
        return dataclasses.replace(
            request,
            kind=JobKind.UPSCALE,
            side=side,
            spoiler=request.spoiler or server.spoilers,
            reply_to=reply_to if reply_to is not None else record.result_message_id,
        )

    def plan_rerun(self, record: JobRecord, action: Rerun) -> JobRequest:
        """The request that paints ``record`` again, changed by ``action`` (as the server is set
        now); raises :class:`RerunRefused` when it cannot, as far as is known without loading the
        inputs (already at the end of the levels, or the inputs expired). A re-run of an upscale is
        an upscale of the same picture, to the same size."""
        request = self._stored_request(record)
        if self.store.deliveries.is_unrecorded(record.job_id):  # delivered, its record unwritten
            raise RerunRefused(texts.CANNOT_RERUN_NOW)
        changed = apply_rerun(request.strength, request.seed, action)
        if changed is None:
            raise RerunRefused(texts.already_at_end(action is Rerun.STRONGER))
        self._check_kept(record, request)
        strength, seed = changed
        server = self.guild_settings.get(record.guild_id)
        return JobRequest(
            strength=strength,
            size=server.clamp_size(request.size),
            preserve_color=request.preserve_color,
            seed=seed,
            preset=request.preset,
            spoiler=request.spoiler or server.spoilers,
            kind=request.kind,
            side=request.side,
            reply_to=request.reply_to,
        )

    async def rerun(
        self, record: JobRecord, request: JobRequest, talk: Talk, *, reservation: RerunReservation
    ) -> None:
        """Paint ``record``'s inputs again as ``request`` (from :meth:`plan_rerun`), with the
        ``reservation`` of :meth:`reserve_rerun`; returns when the new job ends.

        The new job shares ``record``'s stored inputs (they are decoded in a thread, never copied);
        inputs gone since the plan raise :class:`RerunRefused`. ``reservation`` is released as soon
        as the job has ended (before its result is posted, so a press on the result it came from
        right after is a new re-run); the caller also releases it after this returns or raises (a
        ``with`` block), for a job never submitted.
        """
        start_path = record.start_path if request.kind is JobKind.UPSCALE else None
        await self._paint_again(record, request, talk, reservation=reservation, start_path=start_path)

    async def upscale(
        self, record: JobRecord, request: JobRequest, talk: Talk, *, reservation: RerunReservation
    ) -> None:
        """Paint ``record``'s result larger as ``request`` (from :meth:`plan_upscale`), starting
        from its kept picture; otherwise as :meth:`rerun` (the same reservation, the same rules)."""
        await self._paint_again(record, request, talk, reservation=reservation, start_path=record.result_path)

    async def _paint_again(
        self,
        record: JobRecord,
        request: JobRequest,
        talk: Talk,
        *,
        reservation: RerunReservation,
        start_path: str | None,
    ) -> None:
        inputs = await self._load_inputs(record, request, start_path)
        if inputs is None:
            raise RerunRefused(texts.EXPIRED_TEXT)
        content, style, start = inputs
        await self.start(
            talk,
            content,
            style,
            request,
            guild_id=record.guild_id,
            channel_id=record.channel_id,
            reservation=reservation.place,
            on_end=reservation.release,
            start_from=start,
        )

    # ------------------------------------------------------------------ after a restart
    async def recover(self) -> None:
        """After a restart: follow again or paint again the jobs a previous process left.

        Only jobs of another process (:attr:`boot_id`) are touched, so a job this process took
        before recovery ran is never taken for a leftover. First the journal's delivered results
        are recorded (their jobs were never lost). A job the backend still has (remote workers)
        goes on and its result is delivered to its channel. A job painted in the old process (the
        local backend) is painted again from its stored inputs, once (:data:`MAX_RESUMES`); after
        a second interruption, or when its inputs are gone, its user is told and it ends.
        """
        try:
            pending = await asyncio.to_thread(self.store.replay_deliveries)
            records = await asyncio.to_thread(self.store.leftovers, self.boot_id)
        except (sqlite3.Error, OSError) as error:
            log.error("cannot read the jobs left by the previous run: %s", error)
            return
        delivered = {delivery.job_id for delivery in pending}
        for record in records:
            if record.job_id in delivered:  # its picture was posted; the record is written later
                log.info(
                    "job %s was delivered before the restart; its record is not written yet", record.job_id
                )
                continue
            try:
                request = JobRequest.from_dict(record.params)
            except ValueError as error:  # a kind of job a newer version wrote: left for it
                log.warning("not recovering job %s, which this version cannot read: %s", record.job_id, error)
                continue
            talk = await self.messenger.reach(record)
            life = self._life(talk, record, request, resumed=True)
            future = await self.backend.resume(record, life)
            if future is not None:
                log.info("following job %s again after a restart", record.job_id)
                await life.save(boot_id=self.boot_id)
                self._follow_in_background(life, functools.partial(_ready, future))
                continue
            if await self._repaint_leftover(record, request, talk):
                continue
            await life.save(
                status=JobStatus.FAILED,
                error="the bot restarted while this job ran",
                finished_at=time.time(),
                boot_id=self.boot_id,
            )
            await life.discard_inputs()
            await life.messages.close_old(record.progress_message_id, texts.RESTARTED_STOPPED)
            await life.messages.announce(texts.RESTARTED)

    async def _repaint_leftover(self, record: JobRecord, request: JobRequest, talk: Talk) -> bool:
        """Paint a job the previous process was painting again, from its stored inputs, unless it
        was painted again once already or its inputs are gone; whether it was."""
        if record.resumes >= MAX_RESUMES:
            log.warning("job %s was interrupted again after it was painted again; it ends", record.job_id)
            return False
        start_path = record.start_path if request.kind is JobKind.UPSCALE else None
        try:
            inputs = await self._load_inputs(record, request, start_path)
        except Exception as error:  # an unreadable file: told like a lost job
            log.error("cannot read the stored inputs of job %s: %s", record.job_id, error)
            inputs = None
        if inputs is None:
            return False
        record.resumes += 1
        record.boot_id = self.boot_id
        record.status = JobStatus.QUEUED
        life = self._life(talk, record, request, resumed=True, repainted=True)
        if not await life.save(status=JobStatus.QUEUED, boot_id=self.boot_id, resumes=record.resumes):
            return False  # not counted: painting it again could go on forever
        try:
            job = await self._paint_job(record, request, *inputs)
        except OSError as error:  # the kept clip cannot be read: told like a lost job
            log.error("cannot read the stored clip of job %s: %s", record.job_id, error)
            return False
        if job.animation is not None:
            life.messages.plan_animation(*self._clip_plan(job.animation, job.params))
        log.info("painting job %s again after a restart", record.job_id)

        async def submit() -> asyncio.Future[Result]:
            return await self.backend.submit(job, life)

        self._follow_in_background(life, submit)
        return True

    def _follow_in_background(
        self, life: JobLife, submit: Callable[[], Awaitable[asyncio.Future[Result]]]
    ) -> None:
        task = asyncio.create_task(self._follow(life, submit))
        self.active.add(task)
        task.add_done_callback(self.active.discard)

    async def _follow(self, life: JobLife, submit: Callable[[], Awaitable[asyncio.Future[Result]]]) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.active.add(task)
        try:
            await life.follow(submit)
        finally:
            if task is not None:
                self.active.discard(task)

    # ------------------------------------------------------------------ Delete
    async def delete(self, record: JobRecord) -> None:
        """Forget a result its user deleted: its stored inputs go at once (also where a re-run
        shares them) and the record says ``deleted``. Blocks in a thread; raises what fails."""
        await asyncio.to_thread(self.store.discard_inputs, record, everywhere=True)
        await asyncio.to_thread(self.store.update, record.job_id, status=JobStatus.DELETED)


async def _ready(future: asyncio.Future[Result]) -> asyncio.Future[Result]:
    return future
