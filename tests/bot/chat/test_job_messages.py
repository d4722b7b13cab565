"""A job's messages: queue position, progress, the result's upload, a message that cannot be posted."""

from __future__ import annotations

import asyncio
from unittest.mock import MagicMock

import discord
import pytest

import bot.chat.job_messages as job_messages_module
from bot.chat.conversation import conversation_with
from bot.chat.job_messages import MIN_UPLOAD_BYTES
from bot.core.inputs import InputImage
from bot.core.records import JobStatus
from bot.core.requests import JobRequest
from tests.bot.conftest import (
    decode_file,
    make_channel,
    make_interaction,
    run_stylize,
    run_until_running,
    sent_files,
    texts,
    wait_for,
)
from tests.helpers.images import content_image, png_bytes, stripes_style


async def test_progress_edits_carry_the_bar_and_a_preview(make_bot) -> None:
    bot = await make_bot()
    interaction = await run_stylize(bot)
    progress, result = interaction.sent_messages[0], interaction.sent_messages[-1]
    edits = texts(progress.edit)
    assert any("4/4" in text and "100%" in text for text in edits)
    assert edits[-1].startswith("Finished in")
    previews = [c.kwargs["attachments"] for c in progress.edit.call_args_list if c.kwargs.get("attachments")]
    assert previews and decode_file(previews[0][0]).size[0] <= 32
    result.add_reaction.assert_awaited_once_with("\N{FLEXED BICEPS}")
    stored = bot.store.by_result_message(result.id)
    assert stored is not None and stored.progress_message_id == progress.id


async def test_long_job_continues_in_the_channel_after_the_token_expires(make_bot) -> None:
    bot = await make_bot(interaction_token_seconds=0)
    interaction = await run_stylize(bot)
    interaction.response.defer.assert_awaited_once()
    interaction.followup.send.assert_not_awaited()
    files = sent_files(interaction.channel.send)
    assert len(files) == 1 and decode_file(files[0]).size[0] == 48
    assert interaction.channel.send.call_args.args[0].startswith("<@42>")


async def test_upload_too_large_is_reencoded_smaller(make_bot) -> None:
    """Discord refuses the first file (413): the retry is a new encoding, smaller than the refused one."""
    bot = await make_bot(sizes={"small": 40, "medium": 48, "large": 96})
    interaction = make_interaction()
    limits: list[int] = []
    original = interaction.followup.send.side_effect

    def send(*args, **kwargs):
        if kwargs.get("files"):
            limits.append(kwargs["files"][0].fp.getbuffer().nbytes)
            if len(limits) == 1:
                raise discord.HTTPException(MagicMock(status=413, reason="Payload Too Large"), "too large")
        return original(*args, **kwargs)

    interaction.followup.send.side_effect = send
    await run_stylize(bot, interaction, size="large")
    assert len(limits) == 2
    # A result under the smallest budget would be re-sent as it was: this one must be above it.
    assert limits[0] > MIN_UPLOAD_BYTES, limits
    assert limits[1] <= limits[0] * 3 // 4, limits
    assert max(decode_file(sent_files(interaction.followup.send)[-1]).size) <= 96  # a whole picture
    assert bot.store.with_status(JobStatus.DONE)


async def test_a_result_that_cannot_be_encoded_small_enough_is_told_to_the_user(
    make_bot, monkeypatch
) -> None:
    bot = await make_bot()

    def too_big(image, *, max_bytes=None):
        raise ValueError(f"the image cannot be encoded in {max_bytes} bytes, even at 1x1")

    monkeypatch.setattr(job_messages_module, "encode_image", too_big)
    interaction = await run_stylize(bot)
    final = interaction.sent_messages[0].edit.call_args_list[-1].kwargs["content"]
    assert "could not make it small enough" in final and "bytes" not in final
    assert sent_files(interaction.followup.send) == []
    assert bot.store.with_status(JobStatus.FAILED)


async def test_upload_failure_is_told_to_the_user(make_bot) -> None:
    bot = await make_bot()
    interaction = make_interaction()
    original = interaction.followup.send.side_effect

    def send(*args, **kwargs):
        if kwargs.get("files"):
            raise discord.HTTPException(MagicMock(status=500, reason="Server Error"), "boom")
        return original(*args, **kwargs)

    interaction.followup.send.side_effect = send
    await run_stylize(bot, interaction)
    final = interaction.sent_messages[0].edit.call_args_list[-1].kwargs["content"]
    assert "could not upload" in final
    assert bot.store.with_status(JobStatus.FAILED)


async def test_second_user_sees_their_queue_position_then_progress(make_bot) -> None:
    bot = await make_bot(iterations=100_000)
    first = make_interaction(user_id=1)
    first_task = await run_until_running(bot, first)
    second = make_interaction(user_id=2)
    second_task = asyncio.create_task(run_stylize(bot, second))
    await wait_for(lambda: bool(second.sent_messages))
    assert "1 job ahead" in texts(second.followup.send)[0]
    bot.queue.cancel(bot.queue.jobs()[0].job_id)  # the running one: the second moves up and starts
    await wait_for(lambda: any("Painting" in text for text in texts(second.sent_messages[0].edit)))
    bot.queue.cancel(bot.queue.jobs()[0].job_id)
    await asyncio.wait_for(asyncio.gather(first_task, second_task), 30)
    assert texts(first.sent_messages[0].edit)[-1] == "Cancelled."


async def test_queue_position_edits_only_fall_and_a_burst_is_one_edit(make_bot) -> None:
    """Three jobs ahead leave while the waiting user's message edit is slow: the next edit shows where
    the job is now (1 ahead), not each step (2, then 1), and the number never goes back up."""
    bot = await make_bot(iterations=100_000)
    tasks = [await run_until_running(bot, make_interaction(user_id=1))]
    waiting = [make_interaction(user_id=user_id) for user_id in (2, 3, 4, 5)]
    for interaction in waiting:
        tasks.append(asyncio.create_task(run_stylize(bot, interaction)))
        await wait_for(lambda interaction=interaction: bool(interaction.sent_messages))
    last = waiting[-1]
    assert "4 jobs ahead" in texts(last.followup.send)[0]
    gate = asyncio.Event()
    progress_message = last.sent_messages[0]

    async def slow_edit(**kwargs):
        await gate.wait()
        return progress_message

    progress_message.edit.side_effect = slow_edit
    ahead = [job.job_id for job in bot.queue.jobs()[1:4]]
    bot.queue.cancel(ahead[0])
    await wait_for(lambda: progress_message.edit.await_count == 1)  # "3 ahead", held at the gate
    bot.queue.cancel(ahead[1])
    bot.queue.cancel(ahead[2])
    await asyncio.sleep(0.2)  # both announcements are now waiting behind the slow edit
    gate.set()
    await wait_for(lambda: progress_message.edit.await_count >= 2)
    await asyncio.sleep(0.2)
    shown = [text for text in texts(progress_message.edit) if text.startswith("Queued")]
    assert shown == ["Queued: 3 jobs ahead of yours.", "Queued: 1 job ahead of yours."]
    for job in bot.queue.jobs():
        bot.queue.cancel(job.job_id)
    await asyncio.wait_for(asyncio.gather(*tasks), 30)


@pytest.mark.parametrize("where", ["followup-503", "channel-403"])
async def test_a_progress_message_that_cannot_be_posted_stops_the_job(make_bot, where) -> None:
    """The job ran on with nowhere to post its result, its record stayed "running", and the next
    start told the user the bot had restarted. Now it is stopped and recorded as failed."""
    bot = await make_bot(iterations=100_000)  # would paint for minutes if it were not stopped
    if where == "followup-503":
        interaction = make_interaction()
        original = interaction.followup.send.side_effect

        def send(*args, **kwargs):
            if kwargs.get("view") is not None:  # the progress message, with its Cancel button
                raise discord.HTTPException(MagicMock(status=503, reason="Service Unavailable"), "down")
            return original(*args, **kwargs)

        interaction.followup.send.side_effect = send
        await asyncio.wait_for(run_stylize(bot, interaction), 20)
        told = texts(interaction.followup.send)
    else:  # a channel conversation (a reaction, or after the token expired) where the bot may not post
        channel = make_channel()
        channel.send.side_effect = discord.Forbidden(MagicMock(status=403, reason="Forbidden"), "no access")
        conversation = conversation_with(
            None, channel, 42, token_seconds=bot.settings.interaction_token_seconds
        )
        await asyncio.wait_for(
            bot.runner.start(
                conversation,
                InputImage(content_image(), data=png_bytes(content_image()), extension="png"),
                InputImage(stripes_style(), data=png_bytes(stripes_style()), extension="png"),
                JobRequest(),
                guild_id=1,
                channel_id=channel.id,
            ),
            20,
        )
        told = []
    [record] = bot.store.with_status(JobStatus.FAILED)
    assert "progress" in record.error
    assert not bot.queue.jobs()
    assert not bot.store.with_status(JobStatus.RUNNING, JobStatus.QUEUED)
    if where == "followup-503":
        assert told and "could not post" in told[-1]
