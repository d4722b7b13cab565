"""Sending paint jobs to the workers through Redis and following them (the bot and ``nst --queue``).

:class:`QueueClient` wraps one arq connection. Redis being away is never fatal here: every call
raises :class:`Unavailable` (a connection error, a timeout) and the next call connects again by
itself (redis-py reconnects on demand).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from arq.connections import ArqRedis
from arq.constants import abort_jobs_ss, in_progress_key_prefix, job_key_prefix, result_key_prefix
from arq.jobs import DeserializationError
from arq.jobs import Job as ArqJob
from redis.asyncio import ConnectionPool
from redis.exceptions import RedisError, WatchError

from . import protocol, wire

log = logging.getLogger(__name__)

#: How long one blocking read of a job's events waits before the outcome is checked again.
POLL_MS = 500
#: How often a followed job is checked to still exist (Redis restarted without persistence).
LOST_CHECK_SECONDS = 5.0
#: Refused results (and jobs with unreadable events) remembered per client, so that each is logged
#: once however often it is asked for.
REFUSED_REMEMBERED = 1000


class Unavailable(Exception):
    """Redis could not be reached (or answered with an error)."""


class QueueClient:
    """Enqueue, follow, cancel and locate paint jobs on one Redis."""

    def __init__(self, url: str, *, connect_timeout: float = 2.0) -> None:
        self.url = url
        pool = ConnectionPool.from_url(
            url,
            socket_connect_timeout=connect_timeout,
            socket_timeout=connect_timeout + POLL_MS / 1000 + 5,
            health_check_interval=30,
        )
        # Jobs are written, and results read, as msgpack (nst_queue.wire), never as pickles.
        self.redis = ArqRedis(
            pool,
            default_queue_name=protocol.QUEUE_NAME,
            job_serializer=wire.dump,
            job_deserializer=wire.load_result,
        )
        self._refused: dict[str, dict[str, Any]] = {}
        self._unreadable_events: set[str] = set()

    async def close(self) -> None:
        await self.redis.aclose(close_connection_pool=True)

    async def ping(self) -> None:
        try:
            await self.redis.ping()
        except (RedisError, OSError) as error:
            raise Unavailable(str(error)) from None

    async def workers(self) -> list[str]:
        """Names of the workers alive now (each renews its health key every few seconds)."""
        try:
            keys = [key async for key in self.redis.scan_iter(match=f"{protocol.WORKER_KEY_PREFIX}*")]
        except (RedisError, OSError) as error:
            raise Unavailable(str(error)) from None
        return sorted(key.decode().removeprefix(protocol.WORKER_KEY_PREFIX) for key in keys)

    async def enqueue(self, job_id: str, payload: dict[str, Any]) -> None:
        try:
            job = await self.redis.enqueue_job(
                protocol.PAINT_FUNCTION,
                payload,
                _job_id=job_id,
                _queue_name=protocol.QUEUE_NAME,
                _expires=protocol.JOB_TTL_SECONDS,
            )
        except (RedisError, OSError) as error:
            raise Unavailable(str(error)) from None
        if job is None:
            raise ValueError(f"job {job_id} already exists")

    async def exists(self, job_id: str) -> bool:
        """Whether Redis still knows the job (waiting, running, or with a result)."""
        try:
            found = await self.redis.exists(job_key_prefix + job_id, result_key_prefix + job_id)
        except (RedisError, OSError) as error:
            raise Unavailable(str(error)) from None
        return bool(found)

    async def outcome(self, job_id: str) -> tuple[bool, Any]:
        """``(True, outcome)`` once the job has ended: one of the protocol's outcome maps.

        A result record this version refuses (a pickle, malformed, oversized: see
        :mod:`nst_queue.wire`) is never loaded; the job counts as failed
        (:func:`~nst_queue.protocol.refused`), logged once.
        """
        if job_id in self._refused:
            return True, self._refused[job_id]
        job = ArqJob(job_id, self.redis, _queue_name=protocol.QUEUE_NAME, _deserializer=wire.load_result)
        try:
            info = await job.result_info()
        except (RedisError, OSError) as error:
            raise Unavailable(str(error)) from None
        except DeserializationError as error:
            reason = wire.refusal_reason(error) or str(error)
            log.warning("refused the result of job %s: %s; the job counts as failed", job_id, reason)
            if len(self._refused) >= REFUSED_REMEMBERED:
                del self._refused[next(iter(self._refused))]
            self._refused[job_id] = protocol.refused(reason)
            return True, self._refused[job_id]
        if info is None:
            return False, None
        return True, info.result

    async def events(
        self, job_id: str, after: str = "0-0", *, wait: bool = True
    ) -> list[tuple[str, str, Any]]:
        """The job's events after ``after`` (with ``wait``, waiting up to POLL_MS for one):
        ``(id, kind, value)``."""
        try:
            answer = await self.redis.xread(
                {protocol.events_key(job_id): after}, count=100, block=POLL_MS if wait else None
            )
        except (RedisError, OSError) as error:
            raise Unavailable(str(error)) from None
        found: list[tuple[str, str, Any]] = []
        for _stream, entries in answer or []:
            for entry_id, fields in entries:
                try:
                    kind, value = protocol.read_event(fields)
                except ValueError as error:  # skipped; logged once per job
                    if job_id not in self._unreadable_events:
                        if len(self._unreadable_events) >= REFUSED_REMEMBERED:
                            self._unreadable_events.clear()
                        self._unreadable_events.add(job_id)
                        log.warning("skipped an unreadable event of job %s: %s", job_id, error)
                    kind, value = "unreadable", None
                found.append((entry_id.decode(), kind, value))
        return found

    async def position(self, job_id: str) -> int:
        """Jobs ahead of this one in line, running or waiting (0: it runs, or starts next); -1 unknown.

        The line is arq's queue, ordered by arrival; a job keeps its place until it ends (also
        while a worker that died is replaced), so this number only falls.
        """
        try:
            rank = await self.redis.zrank(protocol.QUEUE_NAME, job_id)
            if rank is None:
                return 0 if await self.redis.exists(result_key_prefix + job_id) else -1
            if await self.redis.exists(in_progress_key_prefix + job_id):
                return 0
        except (RedisError, OSError) as error:
            raise Unavailable(str(error)) from None
        return int(rank)

    async def cancel(self, job_id: str) -> bool:
        """Withdraw a waiting job, or ask the worker painting it to stop (arq's abort).

        Returns False when the job has already ended. A withdrawn job gets a cancelled outcome
        here, so whoever follows it learns it the same way as for a running one.
        """
        try:
            if await self.redis.exists(result_key_prefix + job_id):
                return False
            in_progress = in_progress_key_prefix + job_id
            try:
                async with self.redis.pipeline(transaction=True) as pipe:
                    await pipe.watch(in_progress)
                    if not await pipe.exists(in_progress) and await pipe.zscore(protocol.QUEUE_NAME, job_id):
                        pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves Pipeline.multi unannotated
                        pipe.zrem(protocol.QUEUE_NAME, job_id)
                        pipe.delete(job_key_prefix + job_id)
                        pipe.set(
                            result_key_prefix + job_id,
                            _cancelled_result(job_id),
                            ex=protocol.RESULT_TTL_SECONDS,
                        )
                        await pipe.execute()
                        return True
            except WatchError:
                pass  # a worker took it meanwhile: abort it there
            await self.redis.zadd(abort_jobs_ss, {job_id: _now_ms()})
        except (RedisError, OSError) as error:
            raise Unavailable(str(error)) from None
        return True

    async def follow(
        self,
        job_id: str,
        *,
        on_start: Callable[[int], Any],
        on_progress: Callable[[Any], Any],
        after: str = "0-0",
    ) -> AsyncIterator[None]:
        """Yield after each poll (so the caller can check positions or give up), relaying events.

        Ends when the job has an outcome; read it with :meth:`outcome`. Redis outages are waited
        out here (a second between attempts), never raised; a job Redis forgot (a restart without
        persistence) raises :class:`~nst_queue.protocol.JobLost`.
        """
        loop = asyncio.get_running_loop()
        next_check = loop.time() + LOST_CHECK_SECONDS

        async def relay(events: list[tuple[str, str, Any]]) -> None:
            nonlocal after
            for entry_id, kind, value in events:
                after = entry_id
                if kind == "start":
                    await _maybe_await(on_start(value))
                elif kind == "progress":
                    await _maybe_await(on_progress(value))

        while True:
            try:
                await relay(await self.events(job_id, after))
                ended, _ = await self.outcome(job_id)
                if ended:  # the last events may have been written after this poll read the stream
                    await relay(await self.events(job_id, after, wait=False))
                if not ended and loop.time() >= next_check:
                    next_check = loop.time() + LOST_CHECK_SECONDS
                    if not await self.exists(job_id) and not (await self.outcome(job_id))[0]:
                        raise protocol.JobLost(f"Redis no longer knows job {job_id} (restarted?)")
            except Unavailable as error:
                log.warning("Redis unavailable while following job %s: %s", job_id, error)
                next_check = 0.0  # when it is back, check at once that it still knows the job
                await asyncio.sleep(1.0)
                yield
                continue
            if ended:
                return
            yield


async def _maybe_await(value: Any) -> None:
    if asyncio.iscoroutine(value):
        await value


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def _cancelled_result(job_id: str) -> bytes:
    """An arq result record saying the job was cancelled before it started."""
    from arq.jobs import serialize_result

    now = _now_ms()
    data = serialize_result(
        protocol.PAINT_FUNCTION, (), {}, 0, now, True, protocol.failure(_cancelled()), now, now,
        f"{job_id}:{protocol.PAINT_FUNCTION}", protocol.QUEUE_NAME, job_id=job_id,
        serializer=wire.dump,
    )  # fmt: skip
    assert data is not None
    return data


def _cancelled() -> BaseException:
    from nst_engine.errors import Cancelled

    return Cancelled("cancelled before it started")


class NoWorker(Exception):
    """No worker started the job in time."""


async def run_job(
    url: str,
    content: Any,
    styles: list[Any],
    params: dict[str, Any],
    *,
    on_progress: Callable[[Any], Any],
    start_timeout: float,
) -> Any:
    """Paint one picture on the workers (``nst --queue``): enqueue, relay progress, return the Result.

    Raises :class:`NoWorker` (and withdraws the job) when no worker starts it within
    ``start_timeout`` seconds, :class:`Unavailable` when Redis cannot be reached, and the engine's
    errors as the worker reported them. Interrupted (Ctrl-C), it cancels the job on the workers.
    """
    from uuid import uuid4

    client = QueueClient(url)
    job_id = uuid4().hex
    loop = asyncio.get_running_loop()
    started = False

    def on_start(_try: int) -> None:
        nonlocal started
        started = True

    try:
        payload = await loop.run_in_executor(None, lambda: protocol.job_payload(content, styles, params))
        await client.enqueue(job_id, payload)
        deadline = loop.time() + start_timeout
        try:
            async for _ in client.follow(job_id, on_start=on_start, on_progress=on_progress):
                if not started and loop.time() > deadline:
                    await client.cancel(job_id)
                    raise NoWorker(
                        f"no worker took the job within {start_timeout:g} s; is nst-worker running?"
                    )
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.cancel(job_id), 5)
            raise
        _, outcome = await client.outcome(job_id)
        return protocol.outcome_to_result(outcome)
    finally:
        await client.close()
