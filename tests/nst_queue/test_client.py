"""QueueClient, the path the bot's arq backend and ``nst --queue`` take: what it reads from Redis.

Records planted under ``arq:result:<id>`` for a job the client is following are refused unread:
the job counts as failed, with one log line, and nothing in them runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from arq.constants import result_key_prefix
from redis import Redis

from nst_engine import Progress
from nst_engine.errors import Cancelled
from nst_queue import protocol
from nst_queue.client import QueueClient
from tests.helpers.images import content_image, stripes_style
from tests.helpers.planted import oversized, pickled_result, plant_result, result_record


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[QueueClient]:
    queue = QueueClient(redis_url)
    yield queue
    await queue.close()


async def enqueued(client: QueueClient) -> str:
    """A real job waiting in the queue (no worker runs in this module)."""
    job_id = uuid4().hex
    payload = protocol.job_payload(content_image(40, 30), [stripes_style(32, 32)], {"size": 40})
    await client.enqueue(job_id, payload)
    return job_id


async def follow_to_the_end(client: QueueClient, job_id: str) -> Any:
    """What the bot's ArqBackend does: follow the job's events, then read its outcome and convert it."""
    progress: list[Progress] = []

    async def until_it_ends() -> None:
        async for _ in client.follow(job_id, on_start=lambda _try: None, on_progress=progress.append):
            pass

    await asyncio.wait_for(until_it_ends(), 30)
    _, outcome = await client.outcome(job_id)
    return protocol.outcome_to_result(outcome)


#: Each planted record, made only for its own test (the limits are read when it runs).
PLANTED_RESULTS: dict[str, Callable[[Path, str], bytes]] = {
    "pickle": pickled_result,
    "not msgpack": lambda _marker, _job_id: b"\xc1\x00 garbage",
    "wrong shape": lambda _marker, job_id: result_record(
        job_id, {"ok": True, "image": "a picture", "stats": {}}
    ),
    "oversized": lambda _marker, _job_id: oversized(protocol.RESULT_RECORD_MAX_BYTES),
}


@pytest.mark.parametrize("kind", list(PLANTED_RESULTS))
async def test_a_planted_result_fails_the_job_unread_with_one_log_line(
    kind: str, client: QueueClient, redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "code-ran"
    job_id = await enqueued(client)
    with Redis.from_url(redis_url) as redis:
        plant_result(redis, job_id, PLANTED_RESULTS[kind](marker, job_id))
    with caplog.at_level(logging.DEBUG):
        try:
            await follow_to_the_end(client, job_id)
        except Exception as error:
            failed: Exception | None = error
        else:
            failed = None
    assert not marker.exists(), "the planted pickle ran code in the client"
    assert isinstance(failed, protocol.RemoteFailure) and "refused unread" in str(failed), repr(failed)
    lines = [record.getMessage() for record in caplog.records if job_id in record.getMessage()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"refused the result of job {job_id}: ") and "counts as failed" in lines[0]
    assert all(record.exc_info is None for record in caplog.records)


async def test_a_job_cancelled_while_waiting_has_a_msgpack_result(
    client: QueueClient, redis_url: str
) -> None:
    job_id = await enqueued(client)
    assert await client.cancel(job_id)
    with Redis.from_url(redis_url) as redis:
        stored = redis.get(result_key_prefix + job_id)
    assert stored is not None and not stored.startswith(b"\x80"), "not a pickle"
    with pytest.raises(Cancelled):
        await follow_to_the_end(client, job_id)


async def test_an_unreadable_event_is_skipped_with_one_log_line(
    client: QueueClient, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    job_id = await enqueued(client)
    started: list[int] = []
    with Redis.from_url(redis_url) as redis:
        for _ in range(3):
            redis.xadd(protocol.events_key(job_id), {"kind": "progress", "step": "x"})
        redis.xadd(protocol.events_key(job_id), protocol.start_event(2, "w"))
    with caplog.at_level(logging.WARNING):
        async for _ in client.follow(job_id, on_start=started.append, on_progress=lambda _p: None):
            break
    assert started == [2], "the events after the unreadable ones still arrive"
    lines = [record.getMessage() for record in caplog.records if job_id in record.getMessage()]
    assert len(lines) == 1 and lines[0].startswith(f"skipped an unreadable event of job {job_id}"), lines


async def test_the_events_a_worker_writes_just_before_its_outcome_are_relayed(
    client: QueueClient, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's last progress and its result can both land between a poll's read of the events
    and its look at the outcome; the follower still relays those events (a bar ends at 100%)."""
    job_id = await enqueued(client)
    read = client.events
    reads = 0

    async def worker_finishes_after_the_first_read(
        job: str, after: str = "0-0", *, wait: bool = True
    ) -> list[tuple[str, str, Any]]:
        nonlocal reads
        found = await read(job, after, wait=wait)
        reads += 1
        if reads == 1:
            with Redis.from_url(redis_url) as redis:
                redis.xadd(protocol.events_key(job_id), protocol.start_event(1, "w"))
                plant_result(redis, job_id, result_record(job_id, protocol.failure(RuntimeError("done"))))
        return found

    monkeypatch.setattr(client, "events", worker_finishes_after_the_first_read)
    started: list[int] = []
    async for _ in client.follow(job_id, on_start=started.append, on_progress=lambda _p: None):
        pass
    assert started == [1]
