"""The life of one job while this bot process follows it: submitted (or resumed) to done or failed.

:class:`JobLife` is the backend's observer for one job and the one place that decides how its
record changes (queued → running → done | failed | cancelled) and what its user is told when it
ends. How that is shown (a progress message, a result with buttons) is the
:class:`JobMessages` given to it, which the Discord layer implements (:mod:`bot.chat.job_messages`).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from nst_engine.errors import Cancelled
from nst_queue.protocol import RemoteFailure

from . import texts
from .animation import AnimatedResult
from .deliveries import Delivery
from .errors import Detached, JobCancelled, JobRefused, StorageFull, Undeliverable, friendly_error
from .records import JobRecord, JobStatus, RecordChanges

if TYPE_CHECKING:
    from PIL import Image
    from typing_extensions import Unpack

    from nst_engine import Progress, Result, RunStats

    from .backend import Backend
    from .requests import JobRequest
    from .store import JobStore

log = logging.getLogger(__name__)

#: The last record write of a delivered job (status ``done``, its result message) is tried this
#: many times, waiting this long (seconds) before each retry, before the delivery goes to the
#: journal (:mod:`bot.core.deliveries`); each try may also wait out the database's busy timeout.
DELIVERY_WRITE_ATTEMPTS = 3
DELIVERY_WRITE_BACKOFF = (0.2, 1.0)


class Talk(Protocol):
    """The user a job answers to, as the core sees them (the Discord layer's ``Conversation``)."""

    @property
    def user_id(self) -> int: ...

    async def tell(self, text: str) -> None:
        """A short notice to the user, privately where possible; never raises."""


class JobMessages(Protocol):
    """How one job shows itself to its user while it waits, runs and ends."""

    async def open(self) -> int | None:
        """Post the message that shows the queue position, progress and Cancel; its id, or None
        when it cannot be posted."""

    def resume(self) -> None:
        """The job is followed again after a restart: its old progress message is not ours."""

    async def reopen(self, message_id: int | None) -> int | None:
        """The job is painted again after a restart: its old progress message ``message_id``
        (left with a dead Cancel button) becomes the new progress message, or a new one is posted
        in the channel where it cannot be edited; the message's id, or None when neither worked."""

    async def close_old(self, message_id: int | None, text: str) -> None:
        """The job ended while no process followed it: its old progress message ``message_id``
        says ``text`` and loses its Cancel button (quietly nothing when it cannot be edited)."""

    def started(self) -> None:
        """The job left the queue and is being painted."""

    async def show_position(self) -> None:
        """Show the job's place in line (read from the backend when the edit is made)."""

    async def show_progress(self, progress: Progress) -> None: ...

    def plan_animation(self, frames: int, eta_seconds: float) -> None:
        """The job paints an animation: ``frames`` frames, in about ``eta_seconds`` once it starts
        (said from the first message on)."""

    async def post_result(self, result: Result) -> int:
        """Post the finished picture; the result message's id. Raises :class:`Undeliverable`."""

    async def finish(self, stats: RunStats) -> None:
        """After the result is recorded: close the progress message, hint at the reaction."""

    async def ended(self, text: str, *, stopped_by_shutdown: bool) -> None:
        """Tell the user how the job failed or was cancelled (``text``)."""

    async def tell(self, text: str) -> None: ...

    async def announce(self, text: str) -> None:
        """Say ``text`` to the user in the job's channel, naming them (no interaction left)."""


class JobLife:
    """One job, followed to its end; the backend calls its ``on_*`` methods on the event loop."""

    def __init__(
        self,
        record: JobRecord,
        request: JobRequest,
        messages: JobMessages,
        *,
        store: JobStore,
        backend: Backend,
        resumed: bool = False,
        keep_results_below: int = 0,
        repainted: bool = False,
    ) -> None:
        """``resumed``: followed again after a restart (no interaction left); ``repainted``: also
        painted again from its stored inputs (its old progress message is taken up again).
        ``keep_results_below``: a delivered picture whose longest side is under this (the
        operator's largest upscale; 0: none) is kept for its Upscale button."""
        self.record = record
        self.keep_results_below = keep_results_below
        self.request = request
        self.messages = messages
        self.store = store
        self.backend = backend
        self.resumed = resumed
        self.repainted = repainted
        #: The last record write asked for: each write waits for the one before it, so they land
        #: in the order they were asked for although each runs in a thread.
        self._last_write: asyncio.Task[bool] | None = None

    @property
    def job_id(self) -> str:
        return self.record.job_id

    async def follow(self, submit: Callable[[], Awaitable[asyncio.Future[Result]]]) -> None:
        """Submit (or resume) the job, then see it to its end."""
        try:
            future = await submit()
        except JobRefused as refusal:  # the limits moved since the early check, or no service
            await self.save(status=JobStatus.FAILED, error=str(refusal), finished_at=time.time())
            await self.discard_inputs()
            await self.messages.tell(str(refusal))
            return
        if self.resumed and not self.repainted:
            self.messages.resume()
        else:
            if self.repainted:
                message_id = await self.messages.reopen(self.record.progress_message_id)
            else:
                message_id = await self.messages.open()
            if message_id is None:
                await self._stop_unseen(future)
                return
            await self.save(progress_message_id=message_id)
        try:
            result = await future
        except Detached:
            log.info("job %s goes on without this bot process", self.job_id)
            return
        except BaseException as error:
            await self.failed(error, stopped_by_shutdown=self.backend.stopped_by_shutdown(self.job_id))
            if isinstance(error, asyncio.CancelledError):
                raise
            return
        await self.deliver(result)

    async def _stop_unseen(self, future: asyncio.Future[Result]) -> None:
        """The progress message could not be posted, so neither could the result: stop the job
        and record it as failed (not left "running", which a restart would misreport)."""
        await self.backend.cancel(self.job_id)
        with contextlib.suppress(Exception):  # Cancelled, or whatever ended it first: it is over
            await future
        await self.save(
            status=JobStatus.FAILED, error="the progress message could not be posted", finished_at=time.time()
        )
        await self.discard_inputs()
        await self.messages.tell(texts.PROGRESS_NOT_POSTED)  # quietly: it may well fail too

    # -- the record ----------------------------------------------------------------------------
    async def save(self, **changes: Unpack[RecordChanges]) -> bool:
        """Update the job's record (in a thread: a locked database waits there, never on the
        loop), after the writes asked for before; whether it was written. A database that fails
        (locked, full) is logged, and the job goes on to tell its user how it ended all the same."""
        return await self._save_in_order(changes)

    def _save_in_order(self, changes: RecordChanges) -> asyncio.Task[bool]:
        """Start the write of ``changes`` behind the ones asked for before (no await in between,
        so a write asked for from a plain callback keeps its place too)."""
        previous = self._last_write
        task = asyncio.create_task(self._write(previous, changes))
        self._last_write = task
        return task

    async def _write(self, previous: asyncio.Task[bool] | None, changes: RecordChanges) -> bool:
        if previous is not None:
            await asyncio.wait({previous})
        try:
            await asyncio.to_thread(self.store.update, self.job_id, **changes)
        except (sqlite3.Error, OSError) as error:
            log.error("could not record %s for job %s: %s", sorted(changes), self.job_id, error)
            return False
        return True

    async def discard_inputs(self) -> None:
        """Let go of the job's stored inputs (it failed or was cancelled: nothing can re-run it)."""
        try:
            await asyncio.to_thread(self.store.discard_inputs, self.record)
        except (sqlite3.Error, OSError) as error:
            log.error("could not delete the inputs of job %s: %s", self.job_id, error)

    # -- observers (the backend calls them on the event loop) -----------------------------------
    async def on_position(self, position: int) -> None:
        del position  # read from the backend when the edit is made; see JobMessages.show_position
        await self.messages.show_position()

    def on_start(self) -> None:
        self.messages.started()
        self._save_in_order({"status": JobStatus.RUNNING})

    async def on_progress(self, progress: Progress) -> None:
        await self.messages.show_progress(progress)

    # -- endings -------------------------------------------------------------------------------
    async def failed(self, error: BaseException, *, stopped_by_shutdown: bool) -> None:
        cancelled = isinstance(error, (Cancelled, JobCancelled, asyncio.CancelledError))
        if stopped_by_shutdown:
            text = texts.SHUTDOWN_TEXT
        else:
            text = friendly_error(error, preset=self.request.preset)
        if isinstance(error, RemoteFailure):  # a worker's failure, told over the queue: its words
            log.error("job %s failed on the workers: %s", self.job_id, error)
        elif not cancelled:
            log.error("job %s failed", self.job_id, exc_info=error)
        await self.save(
            status=JobStatus.CANCELLED if cancelled and not stopped_by_shutdown else JobStatus.FAILED,
            error=text,
            finished_at=time.time(),
        )
        await self.discard_inputs()
        await self.messages.ended(text, stopped_by_shutdown=stopped_by_shutdown)

    async def deliver(self, result: Result) -> None:
        # An animation is never upscaled, so its first frame is not kept.
        if max(result.image.size) < self.keep_results_below and not isinstance(result, AnimatedResult):
            # Kept before its Upscale button can be pressed: the picture and its size are recorded
            # before the result is posted.
            result_path = await asyncio.to_thread(self._keep_result, result.image)
            self.record.result_path = result_path  # a failure below deletes it with the inputs
            await self.save(result_path=result_path, stats=result.stats.to_dict())
        try:
            message_id = await self.messages.post_result(result)
        except Undeliverable as error:
            await self.failed(error, stopped_by_shutdown=False)
            return
        await self.record_delivery(
            Delivery(self.job_id, message_id, finished_at=time.time(), stats=result.stats.to_dict())
        )
        await self.messages.finish(result.stats)

    def _keep_result(self, image: Image.Image) -> str | None:
        """Store the painting as lossless WebP (a fresh encode: no metadata) for an upscale; its
        path, or None when there is no room (its Upscale button then says it has expired).

        Effort 2 of 6: a 768x530 photo took 119 ms and 518 KB on this 2-core CPU, against 51 ms
        and 561 KB at 0 and 185 ms and 511 KB at 4 (PNG: 31 ms, 771 KB); it delays the result by
        about that much."""
        buffer = io.BytesIO()
        image.save(buffer, format="WEBP", lossless=True, quality=50, method=2)
        try:
            return self.store.keep_result(self.job_id, buffer.getvalue())
        except (StorageFull, OSError) as error:
            log.warning("could not keep the result of job %s for upscaling: %s", self.job_id, error)
            return None

    async def record_delivery(self, delivery: Delivery) -> None:
        """Write the delivered job's record (done, its result message), retried a few times; when
        it still fails, keep the delivery in the journal (:mod:`bot.core.deliveries`), so that no
        start after this one reports the picture lost. A reaction on the result finds its job
        from now on, while the write waits and after it failed."""
        journal = self.store.deliveries
        journal.posting(delivery)
        changes = RecordChanges(
            status=JobStatus.DONE,
            result_message_id=delivery.result_message_id,
            stats=delivery.stats,
            finished_at=delivery.finished_at,
        )
        for attempt in range(DELIVERY_WRITE_ATTEMPTS):
            if attempt:
                await asyncio.sleep(DELIVERY_WRITE_BACKOFF[min(attempt, len(DELIVERY_WRITE_BACKOFF)) - 1])
            if await self._save_in_order(changes):
                journal.recorded(delivery)
                return
        try:
            await asyncio.to_thread(journal.add, delivery)
        except OSError as error:
            log.error(
                "job %s was delivered, but neither its record nor the journal could say so: %s",
                self.job_id,
                error,
            )
            return
        log.warning("job %s was delivered; its record is written at the next start", self.job_id)
