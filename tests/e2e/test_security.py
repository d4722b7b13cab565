"""Security properties of the running bot: who may do what, what is logged, what is on disk."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from redis import Redis

from bot.chat.app import NSTBot
from bot.core.records import JobStatus
from bot.core.settings import Settings
from nst_queue import protocol
from tests.e2e.conftest import let_anyone_rerun, painting, photo, results, started
from tests.e2e.harness import files_under, mode_bits
from tests.fakediscord import FakeDiscord
from tests.helpers.planted import pickled_result, plant_result
from tests.helpers.redis_server import RedisServer


async def test_rerun_by_someone_else_counts_against_them(fake_discord: FakeDiscord, make_settings) -> None:
    async with started(make_settings(iterations=4), fake_discord) as bot:
        await let_anyone_rerun(fake_discord)
        await fake_discord.slash_command(
            "stylize",
            {"content": photo(fake_discord), "style": painting(fake_discord)},
            user=fake_discord.alice,
        )
        [first] = await fake_discord.wait_for(lambda: results(fake_discord), timeout=60)
        await fake_discord.wait_for(lambda: not bot.queue.jobs())
        await fake_discord.react(first, "💪", user=fake_discord.bob)
        second = (
            await fake_discord.wait_for(
                lambda: len(results(fake_discord)) == 2 and results(fake_discord), timeout=60
            )
        )[1]
        record = bot.store.by_result_message(second.id)
        assert record is not None and record.user_id == fake_discord.bob.id
        assert fake_discord.bob.mention in second.text()


async def test_rerun_while_busy_is_refused_for_the_reactor_only(
    fake_discord: FakeDiscord, make_settings
) -> None:
    async with started(make_settings(iterations=80), fake_discord) as bot:
        await let_anyone_rerun(fake_discord)
        await fake_discord.slash_command(
            "stylize",
            {"content": photo(fake_discord), "style": painting(fake_discord)},
            user=fake_discord.alice,
        )
        [first] = await fake_discord.wait_for(lambda: results(fake_discord), timeout=60)
        await fake_discord.wait_for(lambda: not bot.queue.jobs())
        # bob has a long job of his own in flight: his re-run of alice's result must be refused
        bobs_job = await fake_discord.slash_command(
            "stylize",
            {"content": photo(fake_discord), "style": painting(fake_discord)},
            user=fake_discord.bob,
        )
        await fake_discord.wait_for(
            lambda: any(j.user_id == fake_discord.bob.id for j in bot.queue.jobs()), timeout=30
        )
        click = await fake_discord.click(first, "Stronger", user=fake_discord.bob)
        message = await fake_discord.wait_for(lambda: fake_discord.original(click), timeout=30)
        assert "already have" in message.text() and message.ephemeral
        assert bobs_job.response_type == 5


async def test_token_never_logged(
    fake_discord: FakeDiscord,
    stylebot: NSTBot,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_discord.fail(500, "original_edit", times=1)
    await fake_discord.slash_command(
        "stylize", {"content": photo(fake_discord), "style": painting(fake_discord)}
    )
    await fake_discord.slash_command("stylize", {"content": photo(fake_discord), "preset": "nope"})
    await fake_discord.wait_for(lambda: results(fake_discord), timeout=60)
    assert caplog.records, "the run must have logged something for this check to mean anything"
    assert fake_discord.token not in caplog.text
    assert all(fake_discord.token not in repr(r.args) for r in caplog.records)


async def test_data_dir_and_database_are_private(
    fake_discord: FakeDiscord, stylebot: NSTBot, settings: Settings
) -> None:
    await fake_discord.slash_command(
        "stylize", {"content": photo(fake_discord), "style": painting(fake_discord)}
    )
    await fake_discord.wait_for(lambda: results(fake_discord), timeout=60)
    assert mode_bits(settings.data_dir) & 0o077 == 0
    assert mode_bits(settings.database_path) & 0o077 == 0
    for path in files_under(settings.data_dir):
        assert mode_bits(path) & 0o077 == 0, f"{path} is readable by others"
    for directory in {p.parent for p in files_under(settings.data_dir)}:
        assert mode_bits(directory) & 0o007 == 0, f"{directory} is open to others"


async def test_refused_jobs_leave_no_inputs_on_disk(
    fake_discord: FakeDiscord, stylebot: NSTBot, settings: Settings, tmp_path: Path
) -> None:
    # two at once from one user: the first takes the user's place before downloading, so the
    # second is refused before its photo is even downloaded, and nothing of it reaches the disk
    photos = [photo(fake_discord) for _ in range(2)]
    for content in photos:
        await fake_discord.slash_command(
            "stylize", {"content": content, "style": painting(fake_discord)}, user=fake_discord.alice
        )
    await fake_discord.wait_for(lambda: results(fake_discord) and stylebot.queue.running == 0, timeout=60)
    assert [content.downloads for content in photos] == [1, 0]
    assert fake_discord.find_messages("already have 1 job", user=fake_discord.alice)
    [done] = await fake_discord.wait_for(lambda: stylebot.store.with_status(JobStatus.DONE), timeout=10)
    assert stylebot.store.with_status(JobStatus.FAILED) == []
    assert files_under(settings.inputs_dir) == {Path(done.content_path), Path(done.style_path)}


async def test_a_result_planted_in_redis_runs_nothing_in_the_bot(
    fake_discord: FakeDiscord, make_settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Whoever can write to Redis plants a pickle as the result of a job the bot follows (arq's
    default format would unpickle it in the bot's process, next to the Discord token): it is
    refused unread, and the user is told the job failed."""
    marker = tmp_path / "code-ran"
    server = RedisServer(tmp_path / "redis-dir")
    server.directory.mkdir()
    server.start()
    try:
        async with started(make_settings(queue_url=server.url), fake_discord) as bot:
            interaction = await fake_discord.slash_command(
                "stylize", {"content": photo(fake_discord), "style": painting(fake_discord)}
            )
            [record] = await fake_discord.wait_for(
                lambda: bot.store.with_status(JobStatus.QUEUED, JobStatus.RUNNING), timeout=30
            )
            message = await fake_discord.wait_for(lambda: fake_discord.original(interaction), timeout=30)
            with Redis.from_url(server.url) as redis:
                # Planted once the bot has enqueued the job (arq enqueues no job that has a result).
                await fake_discord.wait_for(
                    lambda: redis.zscore(protocol.QUEUE_NAME, record.job_id), timeout=30
                )
                plant_result(redis, record.job_id, pickled_result(marker, record.job_id))
            await fake_discord.wait_for(lambda: "Something went wrong" in message.content, timeout=30)
            assert bot.store.get(record.job_id).status is JobStatus.FAILED  # type: ignore[union-attr]
    finally:
        server.stop()
    assert not marker.exists(), "the planted pickle ran code in the bot"
    refused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused the result")]
    assert len(refused) == 1 and refused[0].startswith(f"refused the result of job {record.job_id}: a pickle")
