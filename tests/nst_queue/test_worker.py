"""nst-worker: where it keeps style targets, and what it does with jobs planted in Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from arq.constants import job_key_prefix, result_key_prefix
from redis import Redis

from nst_engine import StyleParams
from nst_engine.cache import StyleTargetCache
from nst_queue import protocol
from nst_queue.client import QueueClient, run_job
from nst_queue.worker import Painter
from tests.helpers.images import content_image, stripes_style
from tests.helpers.planted import job_record, oversized, pickled_job, plant_job
from tests.helpers.workers import WorkerProcess, wait_ready


def test_the_worker_reads_the_style_targets_the_cli_and_the_bot_store(tmp_path: Path) -> None:
    """`nst --cache-dir`, the bot's `cache_dir` and `nst-worker --cache-dir` share one folder."""
    StyleTargetCache.under(tmp_path).store("gram", {"relu1_1": torch.ones(2, 2)})
    worker_cache = Painter("cpu", "worker-1", tmp_path).style_cache
    assert worker_cache is not None
    loaded = worker_cache.load("gram")
    assert loaded is not None and torch.equal(loaded["relu1_1"], torch.ones(2, 2))


def test_a_worker_without_a_cache_dir_keeps_no_style_targets() -> None:
    assert Painter("cpu", "worker-1", None).style_cache is None


# ---------------------------------------------------------------------------- planted jobs
# A real nst-worker on a real Redis: records planted under arq:job:<id> are refused unread.


@pytest.fixture(scope="module")
def worker(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    process = WorkerProcess(redis_url, "planted", tmp_path_factory.mktemp("worker-log"))
    try:
        wait_ready([process])
        yield process
    finally:
        process.stop()


def valid_payload() -> dict[str, Any]:
    return protocol.job_payload(content_image(40, 30), [stripes_style(32, 32)], {"size": 40})


#: Each planted record, made only for its own test (the limits are read when it runs).
PLANTED_JOBS: dict[str, Callable[[Path], bytes]] = {
    "pickle": pickled_job,
    "not msgpack": lambda _marker: b"\xc1\x00 garbage",
    "wrong shape": lambda _marker: job_record(
        {**valid_payload(), "content": {"format": "raw", "width": 9, "height": 9, "data": b"x"}}
    ),
    "another function": lambda _marker: job_record(valid_payload(), function="shell"),
    "oversized": lambda _marker: oversized(protocol.JOB_MAX_BYTES),
}


@pytest.mark.parametrize("kind", list(PLANTED_JOBS))
async def test_a_planted_job_is_failed_unread_with_one_log_line(
    kind: str, redis_url: str, worker: WorkerProcess, tmp_path: Path
) -> None:
    marker = tmp_path / "code-ran"
    job_id = f"planted-{kind.replace(' ', '-')}"
    with Redis.from_url(redis_url) as redis:
        plant_job(redis, job_id, PLANTED_JOBS[kind](marker))
        deadline = time.monotonic() + 30
        while not redis.exists(result_key_prefix + job_id):
            assert time.monotonic() < deadline, f"the worker did not fail the job:\n{worker.log()}"
            await asyncio.sleep(0.05)
        assert redis.zscore(protocol.QUEUE_NAME, job_id) is None, "taken off the queue"
        assert not redis.exists(job_key_prefix + job_id)
    assert not marker.exists(), "the planted pickle ran code in the worker"
    await asyncio.sleep(0.3)  # anything arq logs after failing the job
    lines = [line for line in worker.log_path.read_text().splitlines() if job_id in line]
    assert len(lines) == 1, worker.log()
    assert f"refused job {job_id}: " in lines[0] and "it was not run" in lines[0], lines[0]
    assert "Traceback" not in worker.log()
    client = QueueClient(redis_url)
    try:
        ended, outcome = await client.outcome(job_id)
    finally:
        await client.close()
    assert ended and outcome["kind"] == "refused", outcome
    with pytest.raises(protocol.RemoteFailure, match="refused unread"):
        protocol.outcome_to_result(outcome)


async def test_after_refusing_planted_jobs_the_worker_paints_a_real_one(
    redis_url: str, worker: WorkerProcess
) -> None:
    with Redis.from_url(redis_url) as redis:
        plant_job(redis, "planted-before-a-real-one", b"\x80\x04junk")
    result = await run_job(
        redis_url,
        content_image(40, 30),
        [stripes_style(32, 32)],
        StyleParams(size=40, iterations=3, scales=1).to_dict(),
        on_progress=lambda _progress: None,
        start_timeout=60,
    )
    assert result.image.size == (40, 30)
    with Redis.from_url(redis_url) as redis:
        stored = [redis.get(key) for key in redis.scan_iter(f"{result_key_prefix}*")]
    assert stored and not any(data.startswith(b"\x80") for data in stored if data), "no pickles written"
