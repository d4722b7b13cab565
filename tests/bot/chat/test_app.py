"""The bot class: intents, start-up recovery of interrupted jobs, graceful shutdown."""

from __future__ import annotations

import asyncio
from unittest.mock import AsyncMock, MagicMock

from discord import app_commands

from bot.chat.app import NSTBot, bot_intents
from bot.chat.conversation import defer
from bot.core.records import JobRecord, JobStatus
from bot.core.store import JobStore
from bot.core.texts import PRIVATE_ANSWER_NOTE
from tests.bot.conftest import make_channel, make_interaction, run_until_running, tiny_settings, wait_for


def test_the_bot_pings_no_one_by_default(tmp_path) -> None:
    bot = NSTBot(tiny_settings(tmp_path))
    try:
        assert bot.allowed_mentions is not None
        assert bot.allowed_mentions.to_dict() == {"parse": []}
    finally:
        bot.store.close()


async def test_a_command_error_after_a_public_defer_is_told_privately(tmp_path) -> None:
    bot = NSTBot(tiny_settings(tmp_path))
    interaction = make_interaction()
    await defer(interaction, ephemeral=False)
    interaction.response.is_done = MagicMock(return_value=True)
    interaction.edit_original_response = AsyncMock()
    try:
        await bot.on_app_command_error(interaction, app_commands.AppCommandError("boom"))
    finally:
        bot.store.close()
    assert interaction.edit_original_response.call_args.kwargs["content"] == PRIVATE_ANSWER_NOTE
    told = interaction.followup.send.call_args
    assert "went wrong" in told.args[0] and told.kwargs["ephemeral"] is True and "boom" not in told.args[0]


def test_intents_are_the_defaults_without_privileged_ones() -> None:
    intents = bot_intents()
    assert intents.reactions and intents.guilds
    assert not (intents.message_content or intents.members or intents.presences)


async def test_setup_hook_fails_interrupted_jobs_and_tells_their_users(tmp_path) -> None:
    settings = tiny_settings(tmp_path)
    store = JobStore(settings.database_path, settings.inputs_dir)
    store.add(
        JobRecord(
            job_id="abcdef0123456789",
            user_id=42,
            guild_id=1,
            channel_id=7,
            params={},
            status=JobStatus.RUNNING,
        )
    )
    store.close()
    bot = NSTBot(settings)
    channel = make_channel()
    bot.get_channel = MagicMock(return_value=channel)
    bot.wait_until_ready = AsyncMock()
    try:
        await bot.setup_hook()
        assert bot.tree.get_command("stylize") is not None and bot.tree.get_command("presets") is not None
        await wait_for(lambda: channel.send.await_count == 1)
        assert "<@42>" in channel.send.call_args.args[0] and "restarted" in channel.send.call_args.args[0]
        assert channel.send.call_args.kwargs["allowed_mentions"].to_dict() == {"parse": [], "users": [42]}
        assert bot.store.get("abcdef0123456789").status is JobStatus.FAILED
        await asyncio.wait_for(bot.model_ready.wait(), 60)
    finally:
        bot._purge_task.cancel()
        await bot.queue.shutdown()
        bot.store.close()


async def test_close_stops_jobs_and_tells_their_users(tmp_path) -> None:
    bot = NSTBot(tiny_settings(tmp_path, iterations=100_000))
    await bot.load_commands()
    interaction = make_interaction()
    task = await run_until_running(bot, interaction)
    await bot.close()
    await asyncio.wait_for(task, 30)
    told = [c.kwargs.get("content") for c in interaction.sent_messages[0].edit.call_args_list]
    assert any("restarting" in (text or "") for text in told)
    # The record outlives the process: reopened, it says the job failed because of the restart.
    store = JobStore(bot.settings.database_path, bot.settings.inputs_dir)
    try:
        [record] = store.with_status(JobStatus.FAILED)
        assert "restarting" in (record.error or "") and record.finished_at is not None
    finally:
        store.close()


async def test_a_job_of_an_unknown_kind_does_not_stop_the_recovery_of_the_others(tmp_path) -> None:
    """A record a newer version wrote (a kind this one does not know) is left alone, the rest recovered."""
    settings = tiny_settings(tmp_path)
    store = JobStore(settings.database_path, settings.inputs_dir)
    for job_id, params in (("0" * 16, {"kind": "made-by-a-newer-version"}), ("1" * 16, {})):
        store.add(
            JobRecord(
                job_id=job_id, user_id=42, guild_id=1, channel_id=7, params=params, status=JobStatus.RUNNING
            )
        )
    store.close()
    bot = NSTBot(settings)
    channel = make_channel()
    bot.get_channel = MagicMock(return_value=channel)
    bot.wait_until_ready = AsyncMock()
    try:
        await bot.setup_hook()
        await wait_for(lambda: channel.send.await_count == 1)
        assert bot.store.get("1" * 16).status is JobStatus.FAILED
        assert bot.store.get("0" * 16).status is JobStatus.RUNNING
        await asyncio.wait_for(bot.model_ready.wait(), 60)
    finally:
        bot._purge_task.cancel()
        await bot.queue.shutdown()
        bot.store.close()
