"""The default backend: the engine in this process, on worker threads.

Jobs wait in a :class:`~bot.core.thread_queue.ThreadQueue` and run on ``settings.worker_threads``
threads; with several GPUs, thread i paints on ``cuda:i``. Nothing else has to run.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from nst_engine import Progress, Result
from nst_engine import stylize as engine_stylize

from .settings import gpu_count
from .thread_queue import ThreadJob, ThreadQueue

if TYPE_CHECKING:
    from nst_engine.cache import StyleTargetCache
    from nst_engine.presets import PresetResolver

    from .admission import Reservation
    from .backend import JobObserver, PaintJob
    from .records import JobRecord
    from .settings import Settings


class LocalBackend:
    """The engine in this process: ``settings.worker_threads`` threads, the rest wait in line."""

    def __init__(
        self,
        settings: Settings,
        *,
        resolver: PresetResolver | None,
        style_cache: StyleTargetCache | None,
    ) -> None:
        self.queue = ThreadQueue(
            threads=settings.worker_threads,
            queue_cap=settings.queue_cap,
            per_user_limit=settings.per_user_limit,
            cooldown_seconds=settings.cooldown_seconds,
        )
        self.resolver = resolver
        self.style_cache = style_cache
        self._jobs: dict[str, ThreadJob[Progress, Result]] = {}

    def reserve(self, user_id: int) -> Reservation:
        return self.queue.reserve(user_id)

    async def submit(
        self, job: PaintJob, observer: JobObserver, reservation: Reservation | None = None
    ) -> asyncio.Future[Result]:
        queued: ThreadJob[Progress, Result] = ThreadJob(
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
        """Runs in a worker thread: thread ``slot`` of the pool."""
        params = job.params
        if params.device in ("auto", "cuda"):  # several GPUs: thread i paints on cuda:i
            gpus = gpu_count()
            if gpus > 1:
                params = params.replace(device=f"cuda:{slot % gpus}")
        style = job.style
        if style is None:
            assert self.resolver is not None and job.preset is not None
            style = self.resolver.resolve(job.preset, cancel=cancel)  # a download stops on Cancel
        if job.animation is not None:
            from nst_engine import stylize_clip

            from .animation import AnimatedResult

            painted = stylize_clip(
                job.animation.clip,
                [style],
                params,
                job.animation.params,
                progress=report,
                cancel=cancel,
                preview_every=job.preview_every,
                preview_size=job.preview_size,
                style_cache=self.style_cache,
            )
            return AnimatedResult.painted(painted)
        return engine_stylize(
            job.content,
            [style],
            params,
            progress=report,
            cancel=cancel,
            preview_every=job.preview_every,
            preview_size=job.preview_size,
            style_cache=self.style_cache,
            start_from=job.start_from,
        )

    async def resume(self, record: JobRecord, observer: JobObserver) -> asyncio.Future[Result] | None:
        # A job painted in this process died with the previous one; the runner paints it again
        # from its stored inputs (JobRunner.recover).
        return None

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
