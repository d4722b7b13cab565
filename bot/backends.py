"""Where paintings are made, behind one small interface.

:class:`Backend` is all :mod:`bot.runner` knows of painting: admit a job, submit it with an
observer (queue position, start, progress), wait for its :class:`~nst_engine.Result`, cancel it,
ask where it stands in line. Two implementations:

- :class:`LocalBackend` (the default): the engine in this process, in a thread pool
  (:class:`~bot.jobs.JobQueue`); nothing else to run.
- ``ArqBackend`` (:mod:`bot.arq_backend`): the job goes to Redis and one of any number of
  ``nst-worker`` processes paints it; chosen when the ``queue_url`` setting is set.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from nst_engine import Progress, Result, StyleParams
from nst_engine import stylize as engine_stylize

from .jobs import Job, JobQueue, JobRefused, Reservation

if TYPE_CHECKING:
    from PIL import Image

    from nst_engine.cache import StyleTargetCache
    from nst_engine.presets import PresetResolver

    from .settings import Settings
    from .store import JobRecord


class ServiceUnavailable(JobRefused):
    """The painting service (Redis) cannot be reached; the message is written for the user."""

    def __init__(self) -> None:
        super().__init__("The painting service is unavailable, try again in a minute.")


class Detached(Exception):
    """The bot stopped following a job that goes on without it (a remote job at shutdown)."""


@dataclass(frozen=True)
class PaintJob:
    """One painting to make: decoded inputs and the engine's parameters, nothing of Discord."""

    job_id: str
    user_id: int
    content: Image.Image
    style: Image.Image | None  #: None: paint with ``preset``
    preset: str | None
    params: StyleParams
    preview_every: int
    preview_size: int


class JobObserver(Protocol):
    """What a backend tells about a job while it waits and runs (called on the event loop)."""

    async def on_position(self, position: int) -> None: ...

    def on_start(self) -> None: ...

    async def on_progress(self, progress: Progress) -> None: ...


class Backend(Protocol):
    """The painting service as the runner sees it."""

    def reserve(self, user_id: int) -> Reservation:
        """Take a place for a request of ``user_id`` before its inputs are fetched (limits, cap,
        cooldown), or raise the :class:`JobRefused` it meets."""

    async def submit(
        self, job: PaintJob, observer: JobObserver, reservation: Reservation | None = None
    ) -> asyncio.Future[Result]:
        """Admit and enqueue ``job`` (or raise :class:`JobRefused`); the future gives its result.
        The job takes over ``reservation``'s place."""

    async def resume(self, record: JobRecord, observer: JobObserver) -> asyncio.Future[Result] | None:
        """Follow again a job a previous bot process started; None when it cannot go on."""

    def position(self, job_id: str) -> int:
        """Jobs ahead of this one (0: running or next; -1: unknown)."""

    async def cancel(self, job_id: str) -> bool:
        """Cancel a waiting job, or stop a running one; False when the job is unknown or over."""

    def stopped_by_shutdown(self, job_id: str) -> bool:
        """Whether the job ended because the bot is shutting down (its user is told so)."""

    async def ping(self) -> None:
        """Raise :class:`ServiceUnavailable` when the painting service cannot be reached."""

    async def shutdown(self, timeout: float) -> int:
        """Stop admitting and let go of every job; returns how many were stopped or left running."""


class LocalBackend:
    """The engine in this process: ``settings.workers`` threads, the rest wait in line."""

    def __init__(
        self,
        settings: Settings,
        *,
        resolver: PresetResolver | None,
        style_cache: StyleTargetCache | None,
    ) -> None:
        self.queue = JobQueue(
            workers=settings.workers,
            queue_cap=settings.queue_cap,
            per_user_limit=settings.per_user_limit,
            cooldown_seconds=settings.cooldown_seconds,
        )
        self.resolver = resolver
        self.style_cache = style_cache
        self._jobs: dict[str, Job[Progress, Result]] = {}

    def reserve(self, user_id: int) -> Reservation:
        return self.queue.reserve(user_id)

    async def submit(
        self, job: PaintJob, observer: JobObserver, reservation: Reservation | None = None
    ) -> asyncio.Future[Result]:
        queued: Job[Progress, Result] = Job(
            job_id=job.job_id,
            user_id=job.user_id,
            work=lambda cancel, report: self._paint(job, cancel, report, slot=queued.slot),
            on_position=observer.on_position,
            on_start=observer.on_start,
            on_progress=observer.on_progress,
        )
        future = self.queue.submit(queued, reservation)
        self._jobs[job.job_id] = queued
        future.add_done_callback(lambda _: self._forget(job.job_id))
        return future

    def _forget(self, job_id: str) -> None:
        # Kept a moment longer than the future, so stopped_by_shutdown can still be asked.
        asyncio.get_running_loop().call_later(60, self._jobs.pop, job_id, None)

    def _paint(
        self, job: PaintJob, cancel: threading.Event, report: Callable[[Progress], None], *, slot: int
    ) -> Result:
        """Runs in a worker thread: worker ``slot`` of the pool."""
        params = job.params
        if params.device in ("auto", "cuda"):  # several GPUs: worker i paints on cuda:i
            gpus = self.gpu_count()
            if gpus > 1:
                params = params.replace(device=f"cuda:{slot % gpus}")
        style = job.style
        if style is None:
            assert self.resolver is not None and job.preset is not None
            style = self.resolver.resolve(job.preset, cancel=cancel)  # a download stops on Cancel
        return engine_stylize(
            job.content,
            [style],
            params,
            progress=report,
            cancel=cancel,
            preview_every=job.preview_every,
            preview_size=job.preview_size,
            style_cache=self.style_cache,
        )

    @staticmethod
    def gpu_count() -> int:
        """CUDA devices visible to this process (0 without CUDA)."""
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0

    async def resume(self, record: JobRecord, observer: JobObserver) -> asyncio.Future[Result] | None:
        return None  # a job painted in this process died with the previous one

    def position(self, job_id: str) -> int:
        return self.queue.position(job_id)

    async def cancel(self, job_id: str) -> bool:
        return self.queue.cancel(job_id)

    def stopped_by_shutdown(self, job_id: str) -> bool:
        job = self._jobs.get(job_id)
        return job is not None and job.stopped_by_shutdown

    async def ping(self) -> None:
        return None  # nothing to reach

    async def shutdown(self, timeout: float) -> int:
        return len(await self.queue.shutdown(timeout=timeout))
