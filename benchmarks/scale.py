"""What the Redis queue costs and what a second worker brings; print tables for docs/benchmarks.md.

Starts its own redis-server on a free loopback port and real ``nst-worker`` processes (CPU).

- overhead: the same job painted in-process (``nst_engine.stylize``, one thread like a worker)
  and through the queue (``nst_queue.client.run_job`` to one worker), median of N. What the queue
  adds (encoding and sending inputs, polling, the result back) is the difference of the time
  spent outside the engine's own run (``RunStats.seconds``) in the two, which keeps a loaded
  machine's noise in the engine's time out of it. Measured at 512 px with few iterations, so the
  transfer is a real 512 px job's while the run stays short.
- throughput: J jobs of 64 px enqueued at once, drained by 1 and then 2 workers, each worker
  pinned to its own core (taskset).
- retry: a worker SIGKILLed mid-job; seconds until another worker starts the job again.

    python benchmarks/scale.py --repeats 5 --jobs 8
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # the helpers live under tests/, importable from the root
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402
from redis import Redis  # noqa: E402

from nst_engine import StyleParams, preload, stylize  # noqa: E402
from nst_queue import protocol  # noqa: E402
from nst_queue.client import QueueClient, run_job  # noqa: E402
from tests.helpers.images import content_image, stripes_style  # noqa: E402
from tests.helpers.redis_server import RedisServer  # noqa: E402
from tests.helpers.workers import WorkerProcess, wait_ready  # noqa: E402


def params(size: int, iterations: int) -> StyleParams:
    return StyleParams(size=size, iterations=iterations, scales=1, device="cpu", precision="fp32")


def starts(url: str, job_id: str) -> int:
    with Redis.from_url(url) as redis:
        return int(redis.llen(protocol.starts_key(job_id)))


async def overhead(url: str, size: int, iterations: int, repeats: int) -> dict[str, float]:
    content, style = content_image(size * 4 // 3, size), stripes_style(size, size)
    job = params(size, iterations)
    torch.set_num_threads(1)  # as a worker (OMP_NUM_THREADS=1)
    preload(job)
    stylize(content, [style], job)  # warm-up
    local, local_outside = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        result = stylize(content, [style], job)
        local.append(time.perf_counter() - started)
        local_outside.append(local[-1] - result.stats.seconds)
    await run_job(url, content, [style], job.to_dict(), on_progress=lambda _: None, start_timeout=60)
    remote, remote_outside = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        result = await run_job(
            url, content, [style], job.to_dict(), on_progress=lambda _: None, start_timeout=60
        )
        remote.append(time.perf_counter() - started)
        remote_outside.append(remote[-1] - result.stats.seconds)
    return {
        "local": statistics.median(local),
        "queue": statistics.median(remote),
        # Time outside the engine's own run (its stats.seconds), in-process and through the queue:
        # their difference is what the queue adds, with the engine's load-dependent time removed.
        "added": statistics.median(remote_outside) - statistics.median(local_outside),
    }


async def drain(url: str, jobs: int, size: int, iterations: int) -> float:
    client = QueueClient(url)
    payload = protocol.job_payload(
        content_image(64, 48), [stripes_style(64, 64)], params(size, iterations).to_dict()
    )
    ids = [
        f"{index:032x}"
        for index in range(int(time.time() * 1000) * 100, int(time.time() * 1000) * 100 + jobs)
    ]
    started = time.perf_counter()
    for job_id in ids:
        await client.enqueue(job_id, payload)
    pending = set(ids)
    while pending:
        for job_id in list(pending):
            ended, _ = await client.outcome(job_id)
            if ended:
                pending.discard(job_id)
        await asyncio.sleep(0.05)
    seconds = time.perf_counter() - started
    await client.close()
    return seconds


async def until(predicate: Callable[[], bool]) -> None:
    while True:
        if predicate():
            return
        await asyncio.sleep(0.05)


async def retry_delay(url: str, workers: list[WorkerProcess]) -> float:
    client = QueueClient(url)
    job_id = f"{int(time.time() * 1e6):032x}"
    payload = protocol.job_payload(
        content_image(48, 40), [stripes_style(48, 48)], params(40, 100000).to_dict()
    )
    await client.enqueue(job_id, payload)
    await until(lambda: starts(url, job_id) >= 1)
    with Redis.from_url(url) as redis:
        first = redis.lindex(protocol.starts_key(job_id), 0).decode().split(":", 1)[1]  # type: ignore[union-attr]
    victim = next(w for w in workers if w.name == first)
    await asyncio.sleep(1.0)
    victim.kill(signal.SIGKILL)
    killed = time.perf_counter()
    await until(lambda: starts(url, job_id) >= 2)
    delay = time.perf_counter() - killed
    await client.cancel(job_id)
    await client.close()
    return delay


async def main_async(args: argparse.Namespace) -> None:
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        server = RedisServer(directory)
        server.start()
        started: list[WorkerProcess] = []
        try:
            if "overhead" in parts:
                await report_overhead(server.url, directory, started, args)
            if "throughput" in parts:
                await report_throughput(server.url, directory, started, args)
            if "retry" in parts:
                await report_retry(server.url, directory, started, args)
        finally:
            for worker in started:
                worker.stop()
            server.stop()


async def report_overhead(
    url: str, directory: Path, started: list[WorkerProcess], args: argparse.Namespace
) -> None:
    one = WorkerProcess(url, "b1", directory)
    started.append(one)
    wait_ready([one])
    rows = []
    for size, iterations in ((512, args.iterations), (64, args.iterations)):
        rows.append((size, iterations, await overhead(url, size, iterations, args.repeats)))
    one.stop()
    print("\n| job | in-process (s) | through the queue (s) | queue adds (ms) | share |")
    print("|---|---|---|---|---|")
    for size, iterations, figures in rows:
        added = figures["added"]
        print(
            f"| {size} px, {iterations} it | {figures['local']:.3f} | {figures['queue']:.3f} "
            f"| {added * 1000:.0f} | {added / figures['queue']:.1%} |",
            flush=True,
        )


async def report_throughput(
    url: str, directory: Path, started: list[WorkerProcess], args: argparse.Namespace
) -> None:
    pinned = [WorkerProcess(url, f"p{core}", directory, cpu=core) for core in (0, 1)]
    started += pinned
    wait_ready(pinned)
    pinned[1].kill(signal.SIGSTOP)
    single = await drain(url, args.jobs, 64, args.throughput_iterations)
    pinned[1].kill(signal.SIGCONT)
    double = await drain(url, args.jobs, 64, args.throughput_iterations)
    what = f"{args.jobs} jobs of 64 px, {args.throughput_iterations} it (s)"
    print(f"\n| workers | {what} | jobs/s | speed-up |")
    print("|---|---|---|---|")
    print(f"| 1 (core 0) | {single:.1f} | {args.jobs / single:.2f} | 1.00x |")
    print(
        f"| 2 (cores 0, 1) | {double:.1f} | {args.jobs / double:.2f} | {single / double:.2f}x |", flush=True
    )
    for worker in pinned:
        worker.stop()


async def report_retry(
    url: str, directory: Path, started: list[WorkerProcess], args: argparse.Namespace
) -> None:
    delays = []
    for attempt in range(args.kills):
        pair = [WorkerProcess(url, f"k{attempt}{i}", directory) for i in (1, 2)]
        started += pair
        wait_ready(pair)
        delays.append(await retry_delay(url, pair))
        for worker in pair:
            worker.stop()
    print("\n| SIGKILL of a worker mid-job -> the job starts on another worker (s) |")
    print("|---|")
    print("| " + ", ".join(f"{d:.1f}" for d in delays) + f" (max {max(delays):.1f}) |", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5, help="runs per overhead figure (median)")
    parser.add_argument("--iterations", type=int, default=3, help="iterations of the overhead jobs")
    parser.add_argument("--jobs", type=int, default=8, help="jobs per throughput run")
    parser.add_argument("--throughput-iterations", type=int, default=30)
    parser.add_argument("--kills", type=int, default=3, help="SIGKILL measurements")
    parser.add_argument(
        "--parts", default="overhead,throughput,retry", help="which measurements (comma-separated)"
    )
    args = parser.parse_args(argv)
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
