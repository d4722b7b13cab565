"""The job queue: asyncio on the outside, engine runs in worker threads on the inside.

The event loop must never block on a style transfer (it would miss heartbeats and every other
user would wait), so each job's blocking ``work`` runs in a :class:`ThreadPoolExecutor` with as
many workers as the configured concurrency. Progress reported from that thread crosses back with
``loop.call_soon_threadsafe``. Admission rules live here too, so they are tested without Discord:
a per-user limit of jobs in flight, a global cap on waiting jobs and a per-user cooldown.

A request takes a :class:`Reservation` before anything is downloaded: it counts as one of the
user's jobs (and one waiting job) until the job itself is submitted, or until it is given back
because the request failed. So simultaneous requests over the limit are refused before any of
them is downloaded or decoded.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar, cast

log = logging.getLogger(__name__)

P = TypeVar("P")  #: what a job's work reports as it goes (the engine's ``Progress`` in the bot)
R = TypeVar("R")  #: what a job's work returns

#: ``work(cancel_event, report_progress) -> result``; runs in a worker thread.
Work = Callable[[threading.Event, Callable[[P], None]], R]
#: An observer's call with its arguments bound; a plain function or a coroutine function.
Notice = Callable[[], Awaitable[None] | None]


class JobRefused(Exception):
    """A job was not admitted; the message is written for the user."""


class QueueFull(JobRefused):
    def __init__(self) -> None:
        super().__init__("The queue is full right now, try again in a minute.")


class TooManyJobs(JobRefused):
    def __init__(self, limit: int) -> None:
        noun = "job" if limit == 1 else "jobs"
        super().__init__(f"You already have {limit} {noun} in progress; wait for it to finish.")


class CoolingDown(JobRefused):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"Please wait {max(1, round(retry_after))} s before asking again.")
        self.retry_after = retry_after


class Reservation:
    """A user's place in the limits, taken before a request downloads anything.

    Given back with :meth:`release` (idempotent: call it on every path, a ``finally``), unless a
    submitted job took it over first. Given back unused, it also gives back the cooldown it started.
    """

    def __init__(self, book: Reservations, user_id: int, previous_submit: float | None, at: float) -> None:
        self._book = book
        self.user_id = user_id
        self._previous_submit = previous_submit
        self._at = at
        self.held = True

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def taken_over(self) -> None:
        """A job was submitted with it: the job counts from now on."""
        if self.held:
            self.held = False
            self._book.held[self.user_id] -= 1

    def release(self) -> None:
        if not self.held:
            return
        self.taken_over()
        if self._book.last_submit.get(self.user_id) == self._at:
            if self._previous_submit is None:
                del self._book.last_submit[self.user_id]
            else:
                self._book.last_submit[self.user_id] = self._previous_submit


class Reservations:
    """The reservations held and each user's last request time (for the cooldown), per backend."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.held: Counter[int] = Counter()
        self.last_submit: dict[int, float] = {}

    @property
    def total(self) -> int:
        return sum(self.held.values())

    def cooling_down(self, user_id: int, cooldown_seconds: float) -> None:
        """Raise :class:`CoolingDown` when ``user_id`` asked less than ``cooldown_seconds`` ago."""
        last = self.last_submit.get(user_id)
        if last is not None and cooldown_seconds > 0:
            remaining = cooldown_seconds - (self.clock() - last)
            if remaining > 0:
                raise CoolingDown(remaining)

    def take(self, user_id: int) -> Reservation:
        now = self.clock()
        reservation = Reservation(self, user_id, self.last_submit.get(user_id), now)
        self.held[user_id] += 1
        self.last_submit[user_id] = now
        return reservation

    def submitted(self, user_id: int, reservation: Reservation | None) -> None:
        """A job of ``user_id`` was admitted (with its reservation, or without one)."""
        if reservation is not None and reservation.held:
            reservation.taken_over()
        else:
            self.last_submit[user_id] = self.clock()


class JobCancelled(Exception):
    """The job was cancelled before it started, or stopped by a shutdown."""


@dataclass(eq=False)
class Job(Generic[P, R]):
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
    #: Which of the ``workers`` runs it (0..workers-1, the lowest free one), set when it starts;
    #: with one worker per GPU, worker i paints on ``cuda:i``.
    slot: int = -1


class JobQueue:
    """Admits, orders and runs jobs; ``workers`` at a time, the rest wait in FIFO order."""

    def __init__(
        self,
        *,
        workers: int = 1,
        queue_cap: int = 20,
        per_user_limit: int = 1,
        cooldown_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.workers = workers
        self.queue_cap = queue_cap
        self.per_user_limit = per_user_limit
        self.cooldown_seconds = cooldown_seconds
        self.clock = clock
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nst-worker")
        self._waiting: list[Job[object, object]] = []
        self._running: dict[str, Job[object, object]] = {}
        self.reservations = Reservations(clock)
        self._tasks: set[asyncio.Future[None]] = set()
        self._closed = False

    # ------------------------------------------------------------------ admission
    def check_admission(self, user_id: int) -> None:
        """Raise the :class:`JobRefused` a new job from ``user_id`` would meet, without submitting."""
        if self._closed:
            raise JobRefused("The bot is shutting down; try again in a minute.")
        in_flight = sum(1 for job in self.jobs() if job.user_id == user_id)
        if in_flight + self.reservations.held[user_id] >= self.per_user_limit:
            raise TooManyJobs(self.per_user_limit)
        self.reservations.cooling_down(user_id, self.cooldown_seconds)
        if len(self._waiting) + self.reservations.total >= self.queue_cap:
            raise QueueFull()

    def reserve(self, user_id: int) -> Reservation:
        """Admit a request of ``user_id`` before its inputs are fetched (or raise :class:`JobRefused`)."""
        self.check_admission(user_id)
        return self.reservations.take(user_id)

    def submit(self, job: Job[P, R], reservation: Reservation | None = None) -> asyncio.Future[R]:
        """Admit ``job`` (or raise :class:`JobRefused`); the future resolves to ``work``'s result.

        With a held ``reservation`` the job takes its place: the limits were checked when it was made.
        """
        if self._closed:
            raise JobRefused("The bot is shutting down; try again in a minute.")
        if reservation is None or not reservation.held:
            self.check_admission(job.user_id)
        loop = asyncio.get_running_loop()
        job.future = loop.create_future()
        self.reservations.submitted(job.user_id, reservation)
        # The queue hands each job's progress only to that job's own observer, so erasing P and R
        # here loses nothing; the caller keeps the typed future.
        self._waiting.append(cast("Job[object, object]", job))
        self._pump()
        if not job.started and job.on_position is not None:
            self._notify(functools.partial(job.on_position, self.position(job.job_id)))
        return job.future

    # ------------------------------------------------------------------ inspection
    def jobs(self) -> list[Job[object, object]]:
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

    async def shutdown(self, timeout: float = 30.0) -> list[Job[object, object]]:
        """Stop admitting, cancel everything, wait for running jobs to stop; returns the stopped jobs."""
        self._closed = True
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
        while self._waiting and len(self._running) < self.workers:
            job = self._waiting.pop(0)
            self._start(job)
            started_any = True
        if started_any:
            self._announce_positions()

    def _start(self, job: Job[object, object]) -> None:
        loop = asyncio.get_running_loop()
        job.started = True
        busy = {running.slot for running in self._running.values()}
        job.slot = min(set(range(self.workers)) - busy)
        self._running[job.job_id] = job
        if job.on_start is not None:
            self._notify(job.on_start)

        def report(value: object) -> None:  # runs in the worker thread
            if job.on_progress is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self._notify, functools.partial(job.on_progress, value))

        task = loop.create_task(self._run(job, report), name=f"job-{job.job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, job: Job[object, object], report: Callable[[object], None]) -> None:
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
            if not self._closed:
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
