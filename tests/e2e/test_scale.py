"""The bot with the arq backend: a real redis-server, real ``nst-worker`` processes, the fake Discord.

Two workers serve every test of this module (they load the model once); tests that kill a worker
or stop Redis get their own. Jobs are tiny (40 px) and most take a fraction of a second; the ones
that must be caught running take a few hundred iterations or more and are cancelled or killed.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from arq.constants import abort_jobs_ss, in_progress_key_prefix
from PIL import Image
from redis import Redis

from bot.core.records import JobStatus
from nst_engine import StyleParams, decode_clip
from nst_queue import protocol
from nst_queue.client import QueueClient
from tests.e2e.conftest import (
    bot_environment,
    crash_bot_mid_job,
    painting,
    photo,
    result_file,
    results,
    started,
)
from tests.e2e.harness import decode
from tests.e2e.test_upscale import LARGEST, cancel_an_upscale, continued, field, first_result, upscaled
from tests.fakediscord import FakeDiscord
from tests.helpers import REPO_ROOT
from tests.helpers.images import content_image, moving_square_gif, stripes_style
from tests.helpers.redis_server import RedisServer
from tests.helpers.workers import WorkerProcess, wait_ready

TINY = ["--size", "48", "--iterations", "5", "--scales", "1"]


@pytest.fixture(scope="module")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), password="test-secret")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shared_workers(
    shared_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[WorkerProcess]]:
    logs = tmp_path_factory.mktemp("worker-logs")
    workers = [WorkerProcess(shared_redis.url, name, logs) for name in ("w1", "w2")]
    try:
        wait_ready(workers)
        yield workers
    finally:
        for worker in workers:
            worker.stop()


@pytest.fixture
def queue_url(shared_redis: RedisServer, shared_workers: list[WorkerProcess]) -> Iterator[str]:
    """The shared Redis with idle workers; afterwards, jobs a test left running are aborted."""
    yield shared_redis.url
    with Redis.from_url(shared_redis.url) as redis:
        redis.delete(protocol.QUEUE_NAME)
        deadline = time.monotonic() + 60
        while running := [
            k.decode().removeprefix(in_progress_key_prefix) for k in redis.keys("arq:in-progress:*")
        ]:
            redis.zadd(abort_jobs_ss, {job_id: int(time.time() * 1000) for job_id in running})
            assert time.monotonic() < deadline, f"workers still busy with {running}"
            time.sleep(0.2)
        for key in redis.scan_iter("*"):
            if not key.startswith(b"nst:worker:"):
                redis.delete(key)


def starts(url: str, job_id: str) -> list[tuple[int, str]]:
    """``(try, worker)`` of each time a worker started the job."""
    with Redis.from_url(url) as redis:
        entries = redis.lrange(protocol.starts_key(job_id), 0, -1)
    return [(int(entry.split(b":", 1)[0]), entry.split(b":", 1)[1].decode()) for entry in entries]


async def stylize(fake: FakeDiscord, user=None):  # type: ignore[no-untyped-def]
    return await fake.slash_command(
        "stylize", {"content": photo(fake), "style": painting(fake)}, user=user or fake.alice
    )


async def test_whole_flow_on_two_workers(fake_discord: FakeDiscord, make_settings, queue_url: str) -> None:
    settings = make_settings(queue_url=queue_url, iterations=150, progress_interval=0.1)
    async with started(settings, fake_discord) as bot:
        assert bot.queue is None, "with queue_url nothing is painted in the bot's process"
        first = await stylize(fake_discord, fake_discord.alice)
        await stylize(fake_discord, fake_discord.bob)
        await fake_discord.wait_for(lambda: len(results(fake_discord)) == 2, timeout=120)
        done = await fake_discord.wait_for(
            lambda: len(bot.store.with_status(JobStatus.DONE)) == 2 and bot.store.with_status(JobStatus.DONE),
            timeout=10,
        )
    assert len(done) == 2
    workers = {worker for record in done for _, worker in starts(queue_url, record.job_id)}
    assert workers == {"w1", "w2"}, "two jobs at once must run on both workers"
    for message in results(fake_discord):
        assert decode(result_file(message)).size == (40, 33)
    progress = fake_discord.original(first)
    assert progress is not None and "Finished" in progress.content
    shown = [r.content for r in progress.revisions]
    assert any("%)" in text and "ETA" in text for text in shown), shown
    assert any(a.filename.startswith("preview-") for r in progress.revisions for a in r.attachments)
    with Redis.from_url(queue_url) as redis:
        lifetimes = {key: redis.ttl(key) for key in redis.scan_iter("*")}
    assert lifetimes and all(ttl > 0 for ttl in lifetimes.values()), f"keys without a TTL: {lifetimes}"


async def test_cancel_while_running_frees_the_worker(
    fake_discord: FakeDiscord, make_settings, queue_url: str
) -> None:
    settings = make_settings(queue_url=queue_url, iterations=20000, progress_interval=0.1)
    async with started(settings, fake_discord) as bot:
        interaction = await stylize(fake_discord)
        progress = await fake_discord.wait_for(
            lambda: (m := fake_discord.original(interaction)) and "%)" in m.content and m, timeout=60
        )
        [record] = bot.store.with_status(JobStatus.RUNNING)
        pressed = time.monotonic()
        await fake_discord.click(progress, "Cancel", user=fake_discord.alice)
        await fake_discord.wait_for(lambda: "Cancelled" in progress.content, timeout=30)
        told_after = time.monotonic() - pressed
        assert told_after < 5, f"the user was told only after {told_after:.1f} s"
        assert bot.store.get(record.job_id).status is JobStatus.CANCELLED  # type: ignore[union-attr]
        # Both workers are free again: two more jobs run at once, one of them on the worker that
        # painted the cancelled job.
        await fake_discord.wait_for(lambda: not bot.runner.active, timeout=10)
        await stylize(fake_discord, fake_discord.alice)
        await stylize(fake_discord, fake_discord.bob)
        await fake_discord.wait_for(lambda: len(bot.store.with_status(JobStatus.RUNNING)) == 2, timeout=60)
        running = bot.store.with_status(JobStatus.RUNNING)
        assert {w for r in running for _, w in starts(queue_url, r.job_id)} == {"w1", "w2"}
        for r in running:
            assert await bot.runner.cancel(r.job_id)
        await fake_discord.wait_for(lambda: not bot.store.with_status(JobStatus.RUNNING), timeout=30)


async def test_per_user_limit_holds_over_both_workers(
    fake_discord: FakeDiscord, make_settings, queue_url: str
) -> None:
    settings = make_settings(queue_url=queue_url, iterations=20000, per_user_limit=2)
    async with started(settings, fake_discord) as bot:
        first = await stylize(fake_discord)
        await stylize(fake_discord)
        await fake_discord.wait_for(lambda: len(bot.store.with_status(JobStatus.RUNNING)) == 2, timeout=60)
        running = bot.store.with_status(JobStatus.RUNNING)
        assert {w for r in running for _, w in starts(queue_url, r.job_id)} == {"w1", "w2"}
        third = await stylize(fake_discord)
        await fake_discord.wait_for(lambda: fake_discord.original(third), timeout=30)
        assert "You already have 2 jobs" in fake_discord.original(third).content  # type: ignore[union-attr]
        # Bob is not starved by Alice's jobs: his waits first in line and runs on the next free worker.
        bob = await stylize(fake_discord, fake_discord.bob)
        queued = await fake_discord.wait_for(
            lambda: (m := fake_discord.original(bob)) and "Queued" in m.content and m, timeout=30
        )
        assert "2 jobs ahead" in queued.content, "Alice's two running jobs"
        # A waiting job is withdrawn at once when cancelled.
        other = await stylize(fake_discord, fake_discord.moderator)
        waiting = await fake_discord.wait_for(
            lambda: (m := fake_discord.original(other)) and "Queued" in m.content and m, timeout=30
        )
        assert "3 jobs ahead" in waiting.content
        await fake_discord.click(waiting, "Cancel", user=fake_discord.moderator)
        await fake_discord.wait_for(lambda: "Cancelled" in waiting.content, timeout=10)
        first_message = fake_discord.original(first)
        assert first_message is not None
        [first_record] = [r for r in running if r.progress_message_id == first_message.id]
        assert await bot.runner.cancel(first_record.job_id)
        await fake_discord.wait_for(
            lambda: fake_discord.bob.id in {r.user_id for r in bot.store.with_status(JobStatus.RUNNING)},
            timeout=30,
        )
        # The freed worker may take Bob's job before the cancelled message is edited; both follow the cancel.
        await fake_discord.wait_for(lambda: "Cancelled" in first_message.content, timeout=10)
        for record in bot.store.with_status(JobStatus.RUNNING):
            await bot.runner.cancel(record.job_id)
        await fake_discord.wait_for(lambda: not bot.store.with_status(JobStatus.RUNNING), timeout=30)


@pytest.mark.slow
async def test_worker_killed_mid_job_completes_on_the_other(
    fake_discord: FakeDiscord, make_settings, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path)
    server.start()
    workers = [WorkerProcess(server.url, name, tmp_path, "--grace", "5") for name in ("k1", "k2")]
    try:
        wait_ready(workers)
        settings = make_settings(queue_url=server.url, iterations=300, progress_interval=0.1)
        async with started(settings, fake_discord) as bot:
            interaction = await stylize(fake_discord)
            await fake_discord.wait_for(
                lambda: (m := fake_discord.original(interaction)) and "%)" in m.content, timeout=60
            )
            [record] = bot.store.with_status(JobStatus.RUNNING)
            [(_, first)] = starts(server.url, record.job_id)
            victim = next(w for w in workers if w.name == first)
            victim.kill(signal.SIGKILL)
            killed_at = time.monotonic()
            await fake_discord.wait_for(lambda: len(starts(server.url, record.job_id)) == 2, timeout=60)
            retried_after = time.monotonic() - killed_at
            [result] = await fake_discord.wait_for(lambda: results(fake_discord), timeout=120)
            await asyncio.sleep(1.0)
            assert len(results(fake_discord)) == 1, "delivered once"
        (_, first), (second_try, second) = starts(server.url, record.job_id)
        assert second != first and second_try == 2
        assert retried_after <= 30, f"the job ran again only {retried_after:.1f} s after the kill"
        assert fake_discord.alice.mention in result.text()
        print(f"job ran again {retried_after:.1f} s after its worker was killed")
    finally:
        for worker in workers:
            worker.stop()
        server.stop()


@pytest.mark.slow
@pytest.mark.timeout(600)  # a 400-iteration job behind a bot restart: slow on a loaded machine
async def test_bot_killed_mid_job_delivers_after_restart(
    fake_discord: FakeDiscord, make_settings, config_dir: Path, tmp_path: Path, queue_url: str
) -> None:
    settings = make_settings(queue_url=queue_url, iterations=400, progress_interval=0.1)
    environment = bot_environment(fake_discord, config_dir, settings.data_dir, settings.cache_dir)
    environment["NST_BOT_QUEUE_URL"] = queue_url
    environment["NST_BOT_ITERATIONS"] = "400"
    log_path = tmp_path / "bot-stderr.log"
    await crash_bot_mid_job(fake_discord, environment, log_path)
    assert "test-secret" not in log_path.read_text(errors="replace"), "the Redis password must not be logged"
    async with started(settings, fake_discord) as bot:
        [result] = await fake_discord.wait_for(lambda: results(fake_discord), timeout=400)
        assert result.channel_id == fake_discord.channel.id
        assert fake_discord.alice.mention in result.text()
        [record] = await fake_discord.wait_for(lambda: bot.store.with_status(JobStatus.DONE), timeout=10)
        assert record.result_message_id == result.id
    assert not fake_discord.find_messages("restarted"), "the user must not be told to start over"
    assert not fake_discord.find_messages("try again")


@pytest.mark.slow
async def test_redis_stopped_and_started_again(
    fake_discord: FakeDiscord, make_settings, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path)
    server.start()
    worker = WorkerProcess(server.url, "r1", tmp_path)
    try:
        wait_ready([worker])
        async with started(make_settings(queue_url=server.url), fake_discord) as bot:
            worker.kill(signal.SIGSTOP)  # the job waits in Redis, and Redis forgets it on restart
            lost = await stylize(fake_discord)
            await fake_discord.wait_for(
                lambda: (m := fake_discord.original(lost)) and "Starting" in m.content, timeout=30
            )
            server.stop()
            refused = await stylize(fake_discord, fake_discord.bob)
            told = await fake_discord.wait_for(
                lambda: fake_discord.find_messages("painting service is unavailable"), timeout=30
            )
            assert "try again in a minute" in told[0].text()
            assert fake_discord.original(refused) is not None
            server.start()
            worker.kill(signal.SIGCONT)
            await fake_discord.wait_for(
                lambda: "Something went wrong" in fake_discord.original(lost).content,  # type: ignore[union-attr]
                timeout=60,
            )
            await asyncio.get_running_loop().run_in_executor(None, wait_ready, [worker])
            await stylize(fake_discord, fake_discord.bob)
            await fake_discord.wait_for(lambda: results(fake_discord), timeout=90)
            assert bot.is_ready() and not bot.is_closed()
    finally:
        worker.stop()
        server.stop()


# ---------------------------------------------------------------------------- nst --queue
def _images(tmp_path: Path) -> tuple[Path, Path]:
    content, style = tmp_path / "photo.png", tmp_path / "stripes.png"
    content_image(64, 48).save(content)
    stripes_style(56, 56).save(style)
    return content, style


def _nst(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nst_engine", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_nst_queue_paints_on_the_workers(queue_url: str, tmp_path: Path) -> None:
    content, style = _images(tmp_path)
    out = tmp_path / "painted.png"
    done = _nst(str(content), str(style), "-o", str(out), "--queue", queue_url, *TINY)
    assert done.returncode == 0, done.stderr
    with Image.open(out) as image:
        assert image.size == (48, 36)
    assert "painting: 100%" in done.stderr and "wrote" in done.stderr
    assert "test-secret" not in done.stderr


def test_nst_queue_without_a_worker_gives_up(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    try:
        content, style = _images(tmp_path)
        started_at = time.monotonic()
        done = _nst(str(content), str(style), "-o", str(tmp_path / "x.png"), "--queue", server.url,
                    "--queue-timeout", "2", *TINY)  # fmt: skip
        assert done.returncode == 1
        assert time.monotonic() - started_at < 60
        [line] = [line for line in done.stderr.splitlines() if line.startswith("nst:")]
        assert "no worker took the job within 2 s" in line
        with Redis.from_url(server.url) as redis:
            assert redis.zcard(protocol.QUEUE_NAME) == 0, "the job must be withdrawn"
    finally:
        server.stop()
    unreachable = _nst(str(content), str(style), "-o", str(tmp_path / "x.png"), "--queue", server.url, *TINY)
    assert unreachable.returncode == 1
    assert "cannot reach the queue" in unreachable.stderr and "Traceback" not in unreachable.stderr
    assert not (tmp_path / "x.png").exists()


# ---------------------------------------------------------------------------- workers alone
def _payload(iterations: int) -> dict[str, object]:
    params = StyleParams(size=40, iterations=iterations, scales=1, device="cpu", precision="fp32")
    return protocol.job_payload(content_image(48, 40), [stripes_style(48, 48)], params.to_dict())


async def _wait(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)
    return value


@pytest.mark.slow
async def test_worker_finishes_its_job_on_sigterm_and_exits_0(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    worker = WorkerProcess(server.url, "t1", tmp_path)
    client = QueueClient(server.url)
    try:
        await asyncio.get_running_loop().run_in_executor(None, wait_ready, [worker])
        await client.enqueue("a" * 32, _payload(400))
        await _wait(lambda: starts(server.url, "a" * 32), 60, "the job to start")
        worker.kill(signal.SIGTERM)
        await client.enqueue("b" * 32, _payload(5))
        exit_code = await asyncio.get_running_loop().run_in_executor(None, worker.process.wait, 120)
        assert exit_code == 0, worker.log()
        ended, outcome = await client.outcome("a" * 32)
        assert ended and protocol.outcome_to_result(outcome).image.size == (40, 33)
        assert not starts(server.url, "b" * 32), "a stopping worker takes no new job"
    finally:
        await client.close()
        worker.stop()
        server.stop()


@pytest.mark.slow
async def test_a_job_runs_at_most_twice(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    server.start()
    workers = [WorkerProcess(server.url, name, tmp_path) for name in ("x1", "x2")]
    client = QueueClient(server.url)
    job_id = "c" * 32
    try:
        await asyncio.get_running_loop().run_in_executor(None, wait_ready, workers)
        await client.enqueue(job_id, _payload(50000))
        for attempt in (1, 2):
            [*_, (job_try, name)] = await _wait(
                lambda n=attempt: len(starts(server.url, job_id)) == n and starts(server.url, job_id),
                60,
                f"start number {attempt}",
            )
            assert job_try == attempt
            next(w for w in workers if w.name == name).kill(signal.SIGKILL)
        third = WorkerProcess(server.url, "x3", tmp_path)
        workers.append(third)
        ended, outcome = False, None
        deadline = time.monotonic() + 90
        while not ended:
            assert time.monotonic() < deadline, third.log()
            await asyncio.sleep(0.2)
            ended, outcome = await client.outcome(job_id)
        with pytest.raises(protocol.RemoteFailure, match="max 2 retries"):
            protocol.outcome_to_result(outcome)
        assert len(starts(server.url, job_id)) == 2, "the third worker must not paint it"
    finally:
        await client.close()
        for worker in workers:
            worker.stop()
        server.stop()


async def test_check_reports_redis_and_its_workers(tmp_path: Path) -> None:
    """``nst-bot check`` with queue_url: Redis answering, workers alive, the password never shown."""
    from bot.chat.doctor import _queue_check
    from bot.core.settings import Settings

    server = RedisServer(tmp_path, password="check-secret")
    server.start()
    settings = Settings(data_dir=tmp_path / "data", queue_url=server.url)
    try:
        idle = await _queue_check(settings)
        assert idle.failure is not None and "no nst-worker is running" in idle.line
        with Redis.from_url(server.url) as redis:
            redis.set(protocol.WORKER_KEY_PREFIX + "gpu0", b"alive", ex=30)
        ready = await _queue_check(settings)
        assert ready.failure is None and "1 worker(s): gpu0" in ready.line
    finally:
        server.stop()
    gone = await _queue_check(settings)
    assert gone.failure is not None and "did not answer" in gone.line
    assert all("check-secret" not in check.line for check in (idle, ready, gone))


async def test_an_animation_on_the_workers(fake_discord: FakeDiscord, make_settings, queue_url: str) -> None:
    """A GIF travels as its file, is painted frame by frame on a worker and comes back encoded (here
    as MP4, posted outside the embed); a clip over the limits is refused privately by the bot
    before anything is queued."""
    settings = make_settings(
        queue_url=queue_url, animation_frame_iterations=2, animation_max_seconds=1.0, animation_format="mp4"
    )
    async with started(settings, fake_discord) as bot:
        clip = fake_discord.make_attachment(moving_square_gif(frames=3), "clip.gif", content_type="image/gif")
        interaction = await fake_discord.slash_command(
            "stylize", {"content": clip, "style": painting(fake_discord)}
        )
        [result] = await fake_discord.wait_for(lambda: results(fake_discord), timeout=120)
        video = result_file(result)
        assert video.filename.endswith(".mp4") and not result.embeds[0].get("image"), (
            "a video is not an embed's image"
        )
        painted = decode_clip(video.data)
        assert (len(painted.frames), painted.durations_ms) == (3, (120, 120, 120))
        progress = fake_discord.original(interaction)
        assert progress is not None
        assert any("frame 3 of 3" in r.content for r in progress.revisions), [
            r.content for r in progress.revisions
        ]

        too_long = fake_discord.make_attachment(
            moving_square_gif(frames=4, duration_ms=500), "long.gif", content_type="image/gif"
        )
        await fake_discord.slash_command(
            "stylize", {"content": too_long, "style": painting(fake_discord)}, user=fake_discord.bob
        )
        [told] = await fake_discord.wait_for(
            lambda: fake_discord.find_messages("can't use", user=fake_discord.bob)
        )
        assert told.visible_to == fake_discord.bob.id and "the limit of 1 seconds" in told.text()
        assert len(bot.store.with_status(*JobStatus)) == 1, "the refused clip was never stored nor queued"


async def test_upscale_on_the_workers_fits_the_upload_limit_and_cancels(
    fake_discord: FakeDiscord, make_settings, queue_url: str
) -> None:
    """Upscale with ``queue_url``: the job carries its starting picture to a worker; the upscaled
    picture, over the channel's upload limit as PNG, comes back as a high-quality JPEG/WebP that
    says so; Cancel stops an upscale on its worker."""
    fake = fake_discord
    async with started(make_settings(max_upscale_side=LARGEST, queue_url=queue_url), fake) as bot:
        first = await first_result(fake)
        await fake.wait_for(lambda: not bot.runner.active, timeout=30)
        fake.upload_limit = 4096 + 8192
        second = await upscaled(fake, first)
        assert second.reply_to == first.id and field(second, "Size") == "80\u00d767"
        assert result_file(second).filename.endswith((".jpg", ".webp"))
        assert "over this channel's 12 KB upload limit" in field(second, "File")
        assert decode(result_file(second)).size == (80, 67)
        kept = bot.store.by_result_message(second.id)
        assert kept is not None and continued(kept.stats), "the worker was given the picture"
        await fake.wait_for(lambda: not bot.runner.active, timeout=30)

    # An upscale that paints until cancelled: Cancel stops it on the worker.
    fake.upload_limit = 10 * 1024 * 1024
    settings = make_settings(max_upscale_side=LARGEST, queue_url=queue_url, iterations=100_000)
    async with started(settings, fake) as bot:
        await cancel_an_upscale(fake, first)
        await fake.wait_for(lambda: not bot.runner.active, timeout=30)
        assert len(results(fake)) == 2
