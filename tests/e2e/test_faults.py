"""Faults through the real bot: engine errors, Discord errors, expired tokens, a killed process."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

import bot.core.local_backend as backends_module
from bot.chat.app import NSTBot
from bot.core.records import JobStatus
from bot.core.store import JobStore
from bot.core.texts import CANNOT_RERUN_NOW, PAINTING_AGAIN, RESTARTED, RESTARTED_STOPPED
from tests.e2e.conftest import (
    TEST_SIZES,
    bot_environment,
    crash_bot_mid_job,
    painting,
    photo,
    result_file,
    results,
    started,
)
from tests.e2e.harness import decode
from tests.fakediscord import FakeDiscord, FakeMessage, RecordedRequest


async def test_engine_out_of_memory_is_told_and_the_queue_goes_on(
    fake_discord: FakeDiscord, stylebot: NSTBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = backends_module.engine_stylize
    calls: list[int] = []

    def out_of_memory_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(*args, **kwargs)

    monkeypatch.setattr(backends_module, "engine_stylize", out_of_memory_once)
    await fake_discord.slash_command(
        "stylize", {"content": photo(fake_discord), "style": painting(fake_discord)}, user=fake_discord.alice
    )
    [told] = await fake_discord.wait_for(lambda: fake_discord.find_messages("out of memory"), timeout=30)
    assert "CUDA" not in told.text() and "Tried to allocate" not in told.text()
    await fake_discord.slash_command(
        "stylize", {"content": photo(fake_discord), "style": painting(fake_discord)}, user=fake_discord.bob
    )
    await fake_discord.wait_for(lambda: results(fake_discord), timeout=60)
    await fake_discord.wait_for(lambda: stylebot.queue.running == 0)
    await fake_discord.slash_command(
        "stylize", {"content": photo(fake_discord), "style": painting(fake_discord)}, user=fake_discord.alice
    )
    await fake_discord.wait_for(lambda: len(results(fake_discord)) == 2, timeout=60)


@pytest.mark.parametrize("status", [429, 500])
async def test_failed_progress_edit_still_delivers(
    fake_discord: FakeDiscord, stylebot: NSTBot, status: int
) -> None:
    fake_discord.fail(
        status,
        "original_edit",  # the progress message is the interaction's original response
        times=2,
        retry_after=0.2,
        when=lambda details: "Painting" in str((details["json"] or {}).get("content", "")),
    )
    await fake_discord.slash_command(
        "stylize", {"content": photo(fake_discord), "style": painting(fake_discord)}
    )
    await fake_discord.wait_for(lambda: results(fake_discord), timeout=60)
    await asyncio.sleep(0.3)
    edits = [r for r in fake_discord.requests_to("original_edit") if "Painting" in str(r.json.get("content"))]
    assert [r.status for r in edits[:1]] == [status]
    assert len(results(fake_discord)) == 1


async def test_413_on_upload_is_re_encoded_smaller(fake_discord: FakeDiscord, make_settings) -> None:
    fake_discord.fail(413, "followup_create", when=lambda details: bool(details["files"]))
    async with started(make_settings(sizes={**TEST_SIZES, "large": 96}), fake_discord):
        await fake_discord.slash_command(
            "stylize", {"content": photo(fake_discord), "style": painting(fake_discord), "size": "large"}
        )
        [result] = await fake_discord.wait_for(lambda: results(fake_discord), timeout=60)
    uploads = [r for r in fake_discord.requests_to("followup_create") if r.files]
    assert uploads[0].status == 413
    assert len(result_file(result).data) < uploads[0].total_upload_bytes
    decode(result_file(result))


@pytest.mark.parametrize("status", [404, 401])
async def test_expired_token_falls_back_to_the_channel(
    fake_discord: FakeDiscord, make_settings, status: int
) -> None:
    fake_discord.expired_token_status = status
    async with started(make_settings(iterations=40, progress_interval=0.05), fake_discord) as bot:
        interaction = await fake_discord.slash_command(
            "stylize",
            {"content": photo(fake_discord), "style": painting(fake_discord)},
            user=fake_discord.alice,
        )
        await fake_discord.wait_for(lambda: bot.queue.running == 1, timeout=30)
        fake_discord.expire_interaction(interaction)
        [result] = await fake_discord.wait_for(lambda: results(fake_discord), timeout=60)
    assert result.interaction_id is None, "the result must come as a channel message"
    assert fake_discord.alice.mention in result.text()


async def test_long_job_switches_to_the_channel_before_the_token_expires(
    fake_discord: FakeDiscord, make_settings
) -> None:
    fake_discord.token_ttl = 6.0
    settings = make_settings(iterations=40, interaction_token_seconds=0.3)
    async with started(settings, fake_discord):
        await fake_discord.slash_command(
            "stylize",
            {"content": photo(fake_discord), "style": painting(fake_discord)},
            user=fake_discord.bob,
        )
        [result] = await fake_discord.wait_for(lambda: results(fake_discord), timeout=60)
    assert result.interaction_id is None and fake_discord.bob.mention in result.text()
    assert not [r for r in fake_discord.requests if r.status == 401]


def edits_of(fake: FakeDiscord, message: FakeMessage) -> list[RecordedRequest]:
    """The edits of ``message`` through its channel (how a restarted bot reaches an old message)."""
    return [r for r in fake.requests_to("message_edit") if r.path.endswith(f"/{message.id}")]


@pytest.mark.slow
async def test_a_job_the_bot_died_painting_is_painted_again_at_next_start(
    fake_discord: FakeDiscord, make_settings, config_dir: Path, tmp_path: Path
) -> None:
    """Killed at some % of a job (SIGKILL, no shutdown hook), the bot paints it again from its
    stored inputs when it comes back: the old progress message (left with a dead Cancel) becomes
    the new one, the result comes in the channel, and the record counts one resume."""
    settings = make_settings()
    environment = bot_environment(fake_discord, config_dir, settings.data_dir, settings.cache_dir)
    environment["NST_BOT_LOG_LEVEL"] = "DEBUG"  # the most verbose logs must still not hold the token
    log_path = tmp_path / "bot-stderr.log"
    interaction = await crash_bot_mid_job(fake_discord, environment, log_path)
    logged = log_path.read_text(errors="replace")
    assert "IDENTIFY" in logged, "the child's debug log should show the gateway traffic"
    assert fake_discord.token not in logged
    progress = fake_discord.original(interaction)
    assert progress is not None and "%)" in progress.content and progress.button("Cancel")
    async with started(settings, fake_discord) as bot:
        [result] = await fake_discord.wait_for(lambda: results(fake_discord), timeout=60)
        assert fake_discord.alice.mention in result.text()
        [record] = await fake_discord.wait_for(lambda: bot.store.with_status(JobStatus.DONE), timeout=10)
        assert record.resumes == 1 and record.result_message_id == result.id
        assert record.content_path is not None, "a delivered job keeps its inputs for re-runs"
    reopened = edits_of(fake_discord, progress)
    assert reopened and PAINTING_AGAIN in reopened[0].json["content"]
    assert "Cancel" in str(reopened[0].json["components"]), "the painted-again job has a live Cancel"
    assert progress.content.startswith("Finished") and not progress.buttons()
    assert not fake_discord.find_messages(RESTARTED)


@pytest.mark.slow
async def test_a_job_interrupted_again_after_it_was_painted_again_ends_and_is_told(
    fake_discord: FakeDiscord, make_settings, config_dir: Path, tmp_path: Path
) -> None:
    """At most one more try: a job whose record says it was painted again once already (as the
    previous test's restart leaves it) and that a crash interrupted again is not painted a third
    time; the next start tells its user, ends it and takes the Cancel off its old progress message."""
    settings = make_settings()
    environment = bot_environment(fake_discord, config_dir, settings.data_dir, settings.cache_dir)
    interaction = await crash_bot_mid_job(fake_discord, environment, tmp_path / "bot-stderr.log")
    progress = fake_discord.original(interaction)
    assert progress is not None and progress.button("Cancel")
    with contextlib.closing(sqlite3.connect(settings.database_path)) as database, database:
        database.execute("UPDATE jobs SET resumes = 1")  # it had been painted again once
    async with started(settings, fake_discord) as bot:
        [told] = await fake_discord.wait_for(lambda: fake_discord.find_messages(RESTARTED), timeout=30)
        assert fake_discord.alice.mention in told.text()
        [failed] = await fake_discord.wait_for(lambda: bot.store.with_status(JobStatus.FAILED), timeout=10)
        assert failed.user_id == fake_discord.alice.id and failed.expired
        assert bot.store.with_status(JobStatus.RUNNING, JobStatus.QUEUED) == []
        await fake_discord.wait_for(lambda: progress.content == RESTARTED_STOPPED, timeout=10)
        assert not progress.buttons(), "no Cancel on a dead job"
        assert results(fake_discord) == []


async def test_graceful_shutdown_tells_the_user_whose_job_it_stops(
    fake_discord: FakeDiscord, make_settings
) -> None:
    settings = make_settings(iterations=2000, progress_interval=0.1)
    async with started(settings, fake_discord) as bot:
        await fake_discord.slash_command(
            "stylize",
            {"content": photo(fake_discord), "style": painting(fake_discord)},
            user=fake_discord.alice,
        )
        await fake_discord.wait_for(lambda: bot.queue.running == 1, timeout=30)
    told = fake_discord.find_messages("restarting")
    assert told, fake_discord.describe()
    assert results(fake_discord) == []
    async with started(settings, fake_discord) as bot:
        assert bot.store.with_status(JobStatus.RUNNING, JobStatus.QUEUED) == []


async def test_a_delivered_picture_whose_record_cannot_be_written_is_never_reported_lost(
    fake_discord: FakeDiscord, make_settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database refuses the last write of a job (a full disk, a read-only data dir) after its
    picture was posted: the picture's 💪 and buttons still answer (it cannot be re-run now), and
    the next start neither reports it lost nor paints it again; its record says done then."""
    fake = fake_discord
    real_update = JobStore.update

    def refusing_done(store: JobStore, job_id: str, **changes: Any) -> None:
        if changes.get("status") is JobStatus.DONE:
            raise sqlite3.OperationalError("disk I/O error")
        real_update(store, job_id, **changes)

    monkeypatch.setattr(JobStore, "update", refusing_done)
    settings = make_settings()
    async with started(settings, fake) as bot:
        await fake.slash_command(
            "stylize", {"content": photo(fake), "style": painting(fake)}, user=fake.alice
        )
        [result] = await fake.wait_for(lambda: results(fake), timeout=60)
        await fake.wait_for(lambda: not bot.runner.active, timeout=30)  # the write was given up
        await fake.react(result, "💪", user=fake.alice)
        [told] = await fake.wait_for(lambda: fake.find_messages(CANNOT_RERUN_NOW), timeout=30)
        assert fake.alice.mention in told.text() and not told.ephemeral
        press = await fake.click(result, "Stronger", user=fake.alice)
        answer = await fake.wait_for(lambda: fake.original(press), timeout=30)
        assert answer.content == CANNOT_RERUN_NOW and answer.ephemeral
    monkeypatch.undo()
    async with started(settings, fake) as bot:
        [record] = await fake.wait_for(lambda: bot.store.with_status(JobStatus.DONE), timeout=30)
        assert record.result_message_id == result.id
        press = await fake.click(result, "Stronger", user=fake.alice)  # re-runs work again
        await fake.wait_for(lambda: len(results(fake)) == 2, timeout=60)
    assert not fake.find_messages(RESTARTED) and not fake.find_messages("lost")


async def test_a_job_taken_before_the_bot_is_ready_is_not_taken_for_a_crash_leftover(
    fake_discord: FakeDiscord, make_settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interactions arrive from the gateway's first moments, while discord.py still waits up to
    2 s for the servers before it is ready and recovery runs: a /stylize taken then is this
    process's own job, never failed as a leftover of the previous one."""
    fake = fake_discord
    bot = NSTBot(make_settings(), guild_ready_timeout=2.0)  # discord.py's own default
    real = backends_module.engine_stylize

    def after_recovery(*args: Any, **kwargs: Any) -> Any:  # still painting when recovery runs
        while not bot.is_ready():
            time.sleep(0.05)
        time.sleep(0.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(backends_module, "engine_stylize", after_recovery)
    running = asyncio.create_task(bot.start(fake.token))
    try:
        await fake.wait_for(lambda: fake.connected, timeout=60)
        await fake.slash_command(
            "stylize", {"content": photo(fake), "style": painting(fake)}, user=fake.alice
        )
        await fake.wait_for(lambda: bot.store.with_status(JobStatus.QUEUED, JobStatus.RUNNING), timeout=30)
        assert not bot.is_ready(), "the job must be stored before recovery runs"
        [result] = await fake.wait_for(lambda: results(fake), timeout=60)
        [record] = await fake.wait_for(lambda: bot.store.with_status(JobStatus.DONE), timeout=10)
        assert record.result_message_id == result.id and not record.expired
    finally:
        await bot.close()
        await asyncio.wait_for(running, timeout=30)
    assert not fake.find_messages(RESTARTED)
