"""Faults through the real bot: engine errors, Discord errors, expired tokens, a killed process."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import bot.core.local_backend as backends_module
from bot.chat.app import NSTBot
from bot.core.records import JobStatus
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
from tests.fakediscord import FakeDiscord


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


@pytest.mark.slow
async def test_bot_killed_mid_job_tells_the_user_at_next_start(
    fake_discord: FakeDiscord, make_settings, config_dir: Path, tmp_path: Path
) -> None:
    settings = make_settings()
    environment = bot_environment(fake_discord, config_dir, settings.data_dir, settings.cache_dir)
    environment["NST_BOT_LOG_LEVEL"] = "DEBUG"  # the most verbose logs must still not hold the token
    log_path = tmp_path / "bot-stderr.log"
    await crash_bot_mid_job(fake_discord, environment, log_path)
    logged = log_path.read_text(errors="replace")
    assert "IDENTIFY" in logged, "the child's debug log should show the gateway traffic"
    assert fake_discord.token not in logged
    async with started(settings, fake_discord) as bot:
        [told] = await fake_discord.wait_for(lambda: fake_discord.find_messages("restarted"), timeout=30)
        assert fake_discord.alice.mention in told.text()
        failed = bot.store.with_status(JobStatus.FAILED)
        assert [r.user_id for r in failed] == [fake_discord.alice.id]
        assert bot.store.with_status(JobStatus.RUNNING, JobStatus.QUEUED) == []


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
