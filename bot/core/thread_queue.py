"""The local backend's queue: asyncio on the outside, engine runs in worker threads on the inside.

The event loop must never block on a style transfer (it would miss heartbeats and every other
user would wait), so each job's blocking ``work`` runs in a :class:`ThreadPoolExecutor` with
``threads`` worker threads (the ``concurrency`` setting; not to be confused with ``nst-worker``
processes, :mod:`nst_queue.worker`). Progress reported from a thread crosses back with
``loop.call_soon_threadsafe``. Who may join is :class:`~bot.core.admission.Admission`'s rule.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar, cast

from .admission import Admission, Load, Reservation
from .errors import JobCancelled

log = logging.getLogger(__name__)

P = TypeVar("P")  #: what a job's work reports as it goes (the engine's ``Progress`` in the bot)
R = TypeVar("R")  #: what a job's work returns

#: ``work(cancel_event, report_progress) -> result``; runs in a worker thread.
Work = Callable[[threading.Event, Callable[[P], None]], R]
#: An observer's call with its arguments bound; a plain function or a coroutine function.
Notice = Callable[[], Awaitable[None] | None]


@dataclass(eq=False)
class ThreadJob(Generic[P, R]):
    """One unit of work with its observers. Callbacks run on the event loop; they may be coroutines."""

    job_id: str
    user_id: int
    work: Work[P, R]
    on_position: Callable[[int], Awaitable[None] | None] | None = None
    on_start: Callable[[], Awaitable[None] | None] | None = None
    on_progress: Callable[[P], Awaitable[None] | None] | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    future: asyncio.Future[R] | None = None
    started: bool = False
    stopped_by_shutdown: bool = False
    #: Which of the ``threads`` runs it (0..threads-1, the lowest free one), set when it starts;
    #: with one thread per GPU, thread i paints on ``cuda:i``.
    slot: int = -1


class ThreadQueue:
    """Admits, orders and runs jobs; ``threads`` at a time, the rest wait in FIFO order."""

    def __init__(
        self,
        *,
        threads: int = 1,
        queue_cap: int = 20,
        per_user_limit: int = 1,
        cooldown_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threads = threads
        self.admission = Admission(
            self._load,
            queue_cap=queue_cap,
            per_user_limit=per_user_limit,
            cooldown_seconds=cooldown_seconds,
            clock=clock,
        )
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="nst-painter")
        self._waiting: list[ThreadJob[object, object]] = []
        self._running: dict[str, ThreadJob[object, object]] = {}
        self._tasks: set[asyncio.Future[None]] = set()

    # ------------------------------------------------------------------ admission
    def _load(self, user_id: int) -> Load:
        in_flight = sum(1 for job in self.jobs() if job.user_id == user_id)
        return Load(user_in_flight=in_flight, waiting=len(self._waiting))

    def reserve(self, user_id: int) -> Reservation:
        """Admit a request of ``user_id`` before its inputs are fetched (or raise ``JobRefused``)."""
        return self.admission.reserve(user_id)

    def submit(self, job: ThreadJob[P, R], reservation: Reservation | None = None) -> asyncio.Future[R]:
        """Admit ``job`` (or raise :class:`JobRefused`); the future resolves to ``work``'s result.

        With a held ``reservation`` the job takes its place: the limits were checked when it was made.
        """
        self.admission.admit(job.user_id, reservation)
        job.future = asyncio.get_running_loop().create_future()
        # The queue hands each job's progress only to that job's own observer, so erasing P and R
        # here loses nothing; the caller keeps the typed future.
        self._waiting.append(cast("ThreadJob[object, object]", job))
        self._pump()
        if not job.started and job.on_position is not None:
            self._notify(functools.partial(job.on_position, self.position(job.job_id)))
        return job.future

    # ------------------------------------------------------------------ inspection
    def jobs(self) -> list[ThreadJob[object, object]]:
        return [*self._running.values(), *self._waiting]

    def position(self, job_id: str) -> int:
        """The job's place in the waiting line: 1 starts next, 2 after it; 0 if running, -1 if unknown."""
        if job_id in self._running:
            return 0
        for index, job in enumerate(self._waiting):
            if job.job_id == job_id:
                return index + 1
        return -1

    @property
    def running(self) -> int:
        return len(self._running)

    # ------------------------------------------------------------------ control
    def cancel(self, job_id: str) -> bool:
        """Cancel a waiting job now, or ask a running one to stop; False when not found."""
        for job in self._waiting:
            if job.job_id == job_id:
                self._waiting.remove(job)
                if job.future is not None and not job.future.done():
                    job.future.set_exception(JobCancelled("cancelled before it started"))
                self._announce_positions()
                return True
        running = self._running.get(job_id)
        if running is None:
            return False
        running.cancel_event.set()
        return True

    async def shutdown(self, timeout: float = 30.0) -> list[ThreadJob[object, object]]:
        """Stop admitting, cancel everything, wait for running jobs to stop; returns the stopped jobs."""
        self.admission.closed = True
        stopped = list(self.jobs())
        for job in stopped:
            job.stopped_by_shutdown = True
        for job in list(self._waiting):
            self.cancel(job.job_id)
        for job in self._running.values():
            job.cancel_event.set()
        pending = [job.future for job in stopped if job.future is not None and not job.future.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        self._executor.shutdown(wait=False, cancel_futures=True)
        return stopped

    # ------------------------------------------------------------------ internals
    def _pump(self) -> None:
        started_any = False
        while self._waiting and len(self._running) < self.threads:
            job = self._waiting.pop(0)
            self._start(job)
            started_any = True
        if started_any:
            self._announce_positions()

    def _start(self, job: ThreadJob[object, object]) -> None:
        loop = asyncio.get_running_loop()
        job.started = True
        busy = {running.slot for running in self._running.values()}
        job.slot = min(set(range(self.threads)) - busy)
        self._running[job.job_id] = job
        if job.on_start is not None:
            self._notify(job.on_start)

        def report(value: object) -> None:  # runs in a worker thread
            if job.on_progress is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self._notify, functools.partial(job.on_progress, value))

        task = loop.create_task(self._run(job, report), name=f"job-{job.job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, job: ThreadJob[object, object], report: Callable[[object], None]) -> None:
        loop = asyncio.get_running_loop()
        assert job.future is not None
        try:
            result = await loop.run_in_executor(self._executor, job.work, job.cancel_event, report)
        except BaseException as error:  # delivered to whoever awaits the job
            if not job.future.done():
                job.future.set_exception(error)
        else:
            if not job.future.done():
                job.future.set_result(result)
        finally:
            self._running.pop(job.job_id, None)
            if not self.admission.closed:
                self._pump()

    def _announce_positions(self) -> None:
        for index, job in enumerate(self._waiting):
            if job.on_position is not None:
                self._notify(functools.partial(job.on_position, index + 1))

    def _notify(self, notice: Notice) -> None:
        """Call an observer on the loop; a coroutine becomes a task, an error is logged, never raised."""
        try:
            outcome = notice()
            if inspect.isawaitable(outcome):
                task = asyncio.ensure_future(outcome)
                self._tasks.add(task)
                task.add_done_callback(self._observer_done)
        except Exception:
            log.exception("a job observer failed")

    def _observer_done(self, task: asyncio.Future[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a job observer failed", exc_info=task.exception())
