"""The remote backend: jobs go through Redis (arq) to ``nst-worker`` processes on any machines.

The bot applies the admission rule (:class:`~bot.core.admission.Admission`, the local backend's
too) to the jobs it has in flight, which are all the jobs when one bot feeds the workers. The
waiting line is arq's queue, a sorted set ordered by enqueue time: a job keeps its place when a
worker dies and it is taken up again, so positions only fall, and since one user has at most
``per_user_limit`` jobs in flight, nobody waits behind more than that many jobs of any one user.

Each job is followed by a task that relays its events (start, progress, previews) from its Redis
stream and resolves the job's future with its outcome. When the bot stops, the jobs go on: the
futures end with :class:`~bot.core.errors.Detached`, and the next bot process follows them again
(:meth:`ArqBackend.resume`). When Redis is away, new jobs are refused with
:class:`~bot.core.errors.ServiceUnavailable` and followers wait for it to come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nst_engine import Result
from nst_queue import protocol
from nst_queue.client import QueueClient, Unavailable

from .admission import Admission, Load, Reservation
from .animation import AnimatedResult
from .errors import Detached, ServiceUnavailable

if TYPE_CHECKING:
    from nst_engine.presets import PresetResolver

    from .backend import ClipJob, JobObserver, PaintJob
    from .records import JobRecord
    from .settings import Settings

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Remote:
    job_id: str
    user_id: int
    observer: JobObserver
    future: asyncio.Future[Result]
    started: bool = False
    position: int = -1
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class ArqBackend:
    """Paints on ``nst-worker`` processes through the Redis at ``settings.queue_url``."""

    def __init__(
        self,
        settings: Settings,
        *,
        resolver: PresetResolver | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert settings.queue_url
        self.settings = settings
        self.resolver = resolver
        self.client = QueueClient(settings.queue_url)
        self._jobs: dict[str, _Remote] = {}
        self.admission = Admission(
            self._load,
            queue_cap=settings.queue_cap,
            per_user_limit=settings.per_user_limit,
            cooldown_seconds=settings.cooldown_seconds,
            clock=clock,
        )

    # ------------------------------------------------------------------ admission
    def _load(self, user_id: int) -> Load:
        mine = sum(1 for job in self._jobs.values() if job.user_id == user_id)
        waiting = sum(1 for job in self._jobs.values() if not job.started)
        return Load(user_in_flight=mine, waiting=waiting)

    def reserve(self, user_id: int) -> Reservation:
        return self.admission.reserve(user_id)

    # ------------------------------------------------------------------ jobs
    async def submit(
        self, job: PaintJob, observer: JobObserver, reservation: Reservation | None = None
    ) -> asyncio.Future[Result]:
        self.admission.admit(job.user_id, reservation)
        loop = asyncio.get_running_loop()
        # Reserve the slot before the first await, so two quick requests cannot both pass the limit.
        remote = _Remote(job.job_id, job.user_id, observer, loop.create_future())
        self._jobs[job.job_id] = remote
        animation = job.animation
        try:
            style = job.style
            if style is None:
                assert self.resolver is not None and job.preset is not None
                style = await loop.run_in_executor(None, self.resolver.resolve, job.preset)
            payload = await loop.run_in_executor(
                None,
                lambda: protocol.job_payload(
                    job.content,
                    [style],
                    job.params.to_dict(),
                    preview_every=job.preview_every,
                    preview_size=job.preview_size,
                    clip=None if animation is None else _clip_job(animation),
                    start_from=job.start_from,
                ),
            )
            await self.client.enqueue(job.job_id, payload)
            remote.position = await self.client.position(job.job_id)
        except Unavailable as error:
            self._jobs.pop(job.job_id, None)
            log.warning("cannot enqueue job %s: %s", job.job_id, error)
            raise ServiceUnavailable() from None
        except BaseException:
            self._jobs.pop(job.job_id, None)
            raise
        self._follow(remote)
        return remote.future

    async def resume(self, record: JobRecord, observer: JobObserver) -> asyncio.Future[Result] | None:
        try:
            known = await self.client.exists(record.job_id)
        except Unavailable as error:
            log.warning("cannot look up job %s after a restart: %s", record.job_id, error)
            known = True  # Redis may be back soon; the follower waits for it
        if not known:
            return None
        remote = _Remote(record.job_id, record.user_id, observer, asyncio.get_running_loop().create_future())
        self._jobs[record.job_id] = remote
        self._follow(remote)
        return remote.future

    def _follow(self, remote: _Remote) -> None:
        remote.task = asyncio.create_task(self._watch(remote), name=f"follow-{remote.job_id}")

    async def _watch(self, remote: _Remote) -> None:
        job_id = remote.job_id
        try:
            async for _ in self.client.follow(
                job_id,
                on_start=lambda _try: self._started(remote),
                on_progress=remote.observer.on_progress,
            ):
                if not remote.started:
                    await self._check_position(remote)
            outcome: object = None
            while True:
                try:
                    _, outcome = await self.client.outcome(job_id)
                    break
                except Unavailable:
                    await asyncio.sleep(1.0)
            result = await asyncio.get_running_loop().run_in_executor(None, _result, outcome)
        except asyncio.CancelledError:
            if not remote.future.done():
                remote.future.set_exception(Detached())
            raise
        except BaseException as error:
            if not remote.future.done():
                remote.future.set_exception(error)
        else:
            if not remote.future.done():
                remote.future.set_result(result)
        finally:
            self._jobs.pop(job_id, None)

    def _started(self, remote: _Remote) -> None:
        if not remote.started:
            remote.started = True
            remote.position = 0
            remote.observer.on_start()

    async def _check_position(self, remote: _Remote) -> None:
        try:
            position = await self.client.position(remote.job_id)
        except Unavailable:
            return
        if position > 0 and (remote.position <= 0 or position < remote.position):
            remote.position = position
            await remote.observer.on_position(position)

    def position(self, job_id: str) -> int:
        remote = self._jobs.get(job_id)
        return -1 if remote is None else remote.position

    async def cancel(self, job_id: str) -> bool:
        if job_id not in self._jobs:
            return False
        try:
            return await self.client.cancel(job_id)
        except Unavailable:
            return False

    def stopped_by_shutdown(self, job_id: str) -> bool:
        return False  # remote jobs go on when the bot stops

    async def ping(self) -> None:
        try:
            await self.client.ping()
        except Unavailable:
            raise ServiceUnavailable() from None

    async def shutdown(self, timeout: float) -> int:
        """Stop following (the workers go on painting; the next bot process delivers)."""
        self.admission.closed = True
        tasks = [job.task for job in self._jobs.values() if job.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        with contextlib.suppress(Exception):
            await self.client.close()
        return len(tasks)


def _clip_job(animation: ClipJob) -> dict[str, object]:
    return protocol.clip_job(animation.data, animation.limits, animation.params, animation.output_format)


def _result(outcome: object) -> Result:
    """A job's outcome as the engine's result; an animation's with its painted file."""
    result = protocol.outcome_to_result(outcome)
    painted = protocol.outcome_clip(outcome)
    if painted is None:
        return result
    return AnimatedResult(
        image=result.image,
        stats=result.stats,
        frames=painted.frames,
        file=painted.data,
        file_format=painted.clip_format,
    )
