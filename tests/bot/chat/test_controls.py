"""The job controls: Stronger / Weaker / Re-roll, Cancel and Delete buttons, and the reaction."""

from __future__ import annotations

import asyncio
from unittest.mock import AsyncMock, MagicMock

import discord

from bot.chat.buttons import CancelButton, DeleteButton, RerunButton
from bot.core.guild_settings import RERUN_ANYONE, GuildSettings
from bot.core.records import JobStatus
from bot.core.strength import Rerun
from bot.core.texts import DELETE_REFUSED_TEXT, EXPIRED_TEXT, already_rerunning, rerun_budget_spent
from tests.bot.conftest import (
    controls_of,
    decode_file,
    make_channel,
    make_interaction,
    make_message,
    run_stylize,
    sent_files,
    texts,
    wait_for,
)


def anyone_may_rerun(bot) -> None:
    """The server lets members re-run each other's pictures (not the default)."""
    bot.guild_settings.save(1, 99, GuildSettings(reruns=RERUN_ANYONE))


async def test_stronger_button_reruns_with_the_next_step(make_bot) -> None:
    bot = await make_bot()
    anyone_may_rerun(bot)
    first = await run_stylize(bot)
    job_id = first.followup.send.call_args_list[-1].kwargs["view"].children[0].custom_id.split(":")[2]
    press = make_interaction(user_id=77)
    press.client = bot
    await RerunButton(Rerun.STRONGER, job_id).callback(press)
    press.response.defer.assert_awaited_once()
    embed = press.followup.send.call_args_list[-1].kwargs["embeds"][0]
    assert {f.name: f.value for f in embed.fields}["Strength"] == "strong"
    assert len(sent_files(press.followup.send)) == 1
    new_ids = {
        item.custom_id.split(":")[2]
        for item in press.followup.send.call_args_list[-1].kwargs["view"].children
    }
    rerun_record = bot.store.get(new_ids.pop())
    assert rerun_record.user_id == 77 and rerun_record.params["strength"] == "strong"


async def test_reroll_changes_seed_and_weaker_stops_at_subtle(make_bot) -> None:
    bot = await make_bot()
    first = await run_stylize(bot, strength="subtle")
    job_id = first.followup.send.call_args_list[-1].kwargs["view"].children[0].custom_id.split(":")[2]
    weaker = make_interaction()
    await controls_of(bot).rerun_pressed(weaker, job_id, Rerun.WEAKER)
    # known before deferring: refused in the (private) response itself, nothing public
    weaker.response.send_message.assert_awaited_once()
    assert "weakest" in texts(weaker.response.send_message)[-1]
    assert weaker.response.send_message.call_args.kwargs["ephemeral"] is True
    weaker.response.defer.assert_not_awaited()
    reroll = make_interaction()
    await controls_of(bot).rerun_pressed(reroll, job_id, Rerun.REROLL)
    embed = reroll.followup.send.call_args_list[-1].kwargs["embeds"][0]
    assert {f.name: f.value for f in embed.fields}["Seed"] != "0"


async def dispatch_reaction(bot, payload) -> None:
    """Deliver a reaction to every listener the bot registered for it, as discord.py would."""
    listeners = bot.extra_events.get("on_raw_reaction_add", [])
    assert listeners, "the cog must listen to reactions"
    for listener in listeners:
        await listener(payload)


async def test_reaction_reruns_stronger_in_the_channel(make_bot) -> None:
    bot = await make_bot()
    anyone_may_rerun(bot)
    channel = make_channel()
    first = await run_stylize(bot, make_interaction(channel=channel))
    result_id = bot.store.with_status(JobStatus.DONE)[0].result_message_id
    bot.get_channel = MagicMock(return_value=channel)
    payload = MagicMock(spec=discord.RawReactionActionEvent)
    payload.user_id, payload.message_id, payload.channel_id = 99, result_id, channel.id
    payload.guild_id = 1  # the server that lets anyone re-run
    payload.emoji = discord.PartialEmoji(name="\N{FLEXED BICEPS}")
    followups_before = first.followup.send.await_count
    await dispatch_reaction(bot, payload)
    files = sent_files(channel.send)
    assert len(files) == 1 and decode_file(files[0]).size[0] == 48
    embed = channel.send.call_args_list[-1].kwargs["embeds"][0]
    assert {f.name: f.value for f in embed.fields}["Strength"] == "strong"
    assert first.followup.send.await_count == followups_before  # the re-run went to the channel
    other = MagicMock(spec=discord.RawReactionActionEvent)
    other.user_id, other.message_id, other.channel_id = 99, result_id, channel.id
    other.emoji = discord.PartialEmoji(name="\N{THUMBS UP SIGN}")
    before = channel.send.await_count
    await dispatch_reaction(bot, other)
    assert channel.send.await_count == before


async def test_rerun_of_an_expired_job_says_so(make_bot) -> None:
    bot = await make_bot()
    first = await run_stylize(bot)
    job_id = first.followup.send.call_args_list[-1].kwargs["view"].children[0].custom_id.split(":")[2]
    assert bot.store.purge(-1) == 1
    press = make_interaction()
    await controls_of(bot).rerun_pressed(press, job_id, Rerun.STRONGER)
    assert texts(press.response.send_message) == [EXPIRED_TEXT]
    assert press.response.send_message.call_args.kwargs["ephemeral"] is True
    press.response.defer.assert_not_awaited()


async def test_cancel_only_by_requester_or_moderator(make_bot) -> None:
    bot = await make_bot(iterations=100_000)
    interaction = make_interaction(user_id=42)
    task = asyncio.create_task(run_stylize(bot, interaction))
    await wait_for(lambda: bot.queue.running == 1 and interaction.followup.send.await_count >= 1)
    job_id = bot.queue.jobs()[0].job_id
    stranger = make_interaction(user_id=5)
    stranger.client = bot
    await CancelButton(job_id).callback(stranger)
    assert "Only the person" in stranger.response.send_message.call_args.args[0]
    assert bot.queue.running == 1
    moderator = make_interaction(user_id=6, manage_messages=True)
    await controls_of(bot).cancel_pressed(moderator, job_id)
    await asyncio.wait_for(task, 30)
    assert bot.store.get(job_id).status is JobStatus.CANCELLED
    assert interaction.sent_messages[0].edit.call_args_list[-1].kwargs["content"] == "Cancelled."
    assert sent_files(interaction.followup.send) == []


async def test_refused_reactions_post_at_most_one_notice_per_user(make_bot) -> None:
    """Ten 💪 that cannot be honoured (cooling down, already extreme) gave ten public messages."""
    bot = await make_bot(cooldown_seconds=3600)
    channel = make_channel()
    bot.get_channel = MagicMock(return_value=channel)
    await run_stylize(bot, make_interaction(user_id=42, channel=channel), strength="extreme")
    result_id = bot.store.with_status(JobStatus.DONE)[0].result_message_id

    def reaction(user_id: int) -> MagicMock:
        payload = MagicMock(spec=discord.RawReactionActionEvent)
        payload.user_id, payload.message_id, payload.channel_id = user_id, result_id, channel.id
        payload.emoji = discord.PartialEmoji(name="\N{FLEXED BICEPS}")
        return payload

    anyone_may_rerun(bot)
    before = channel.send.await_count
    for _ in range(10):  # 42 is cooling down
        await dispatch_reaction(bot, reaction(42))
    notices = texts(channel.send)[before:]
    assert len(notices) == 1 and "<@42>" in notices[0] and "wait" in notices[0], notices
    for _ in range(10):  # 77 may ask, but extreme is the strongest already: that result had its notice
        await dispatch_reaction(bot, reaction(77))
    assert texts(channel.send)[before:] == notices
    assert not bot.queue.jobs()


async def test_cancel_button_survives_the_switch_to_channel_messages(make_bot) -> None:
    """After the token's 14 minutes the progress message is re-posted in the channel; it lost its
    Cancel button, so a long job could no longer be cancelled."""
    bot = await make_bot(interaction_token_seconds=1.0, iterations=100_000)
    channel = make_channel()
    posted: list[MagicMock] = []
    channel.send.side_effect = lambda *a, **k: posted.append(make_message(discord.Message)) or posted[-1]
    interaction = make_interaction(channel=channel)
    task = asyncio.create_task(run_stylize(bot, interaction))
    await wait_for(lambda: bot.queue.running == 1 and bool(interaction.sent_messages))
    assert interaction.followup.send.call_args_list[0].kwargs["view"] is not None
    await wait_for(lambda: channel.send.await_count >= 1)  # the token expired: now in the channel
    view = channel.send.call_args_list[0].kwargs.get("view")
    assert view is not None, "the channel progress message has no Cancel button"
    [button] = view.children
    job_id = button.custom_id.split(":")[2]
    assert button.custom_id == f"nst:cancel:{job_id}"
    press = make_interaction(user_id=42)
    press.client = bot
    await CancelButton(job_id).callback(press)
    await asyncio.wait_for(task, 20)
    assert bot.store.get(job_id).status is JobStatus.CANCELLED
    assert "Cancelled." in texts(*(message.edit for message in posted))


async def test_delete_only_by_requester_or_a_moderator_of_that_channel(make_bot) -> None:
    bot = await make_bot()
    interaction = await run_stylize(bot)
    custom_id = interaction.followup.send.call_args_list[-1].kwargs["view"].children[0].custom_id
    job_id = custom_id.split(":")[2]
    result = make_message(discord.Message)

    stranger = make_interaction(user_id=5)
    stranger.client, stranger.message = bot, result
    await DeleteButton(job_id).callback(stranger)
    assert stranger.response.send_message.call_args.args[0] == DELETE_REFUSED_TEXT
    result.delete.assert_not_awaited()
    assert len(list(bot.store.inputs_dir.iterdir())) == 2

    moderator = make_interaction(user_id=6, manage_messages=True)
    moderator.message = result
    moderator.response.defer = AsyncMock()
    await controls_of(bot).delete_pressed(moderator, job_id)
    moderator.response.defer.assert_awaited_once_with()  # a silent acknowledgement
    result.delete.assert_awaited_once()
    record = bot.store.get(job_id)
    assert record.status is JobStatus.DELETED and record.expired
    assert list(bot.store.inputs_dir.iterdir()) == []


async def test_a_refused_deletion_keeps_the_inputs_and_says_so_privately(make_bot) -> None:
    bot = await make_bot()
    interaction = await run_stylize(bot)
    custom_id = interaction.followup.send.call_args_list[-1].kwargs["view"].children[0].custom_id
    job_id = custom_id.split(":")[2]
    requester = make_interaction(user_id=42)
    requester.message = make_message(discord.Message)
    requester.message.delete = AsyncMock(side_effect=discord.Forbidden(MagicMock(status=403), "no"))
    await controls_of(bot).delete_pressed(requester, job_id)
    [(args, kwargs)] = [(c.args, c.kwargs) for c in requester.followup.send.call_args_list]
    assert "could not delete" in args[0] and kwargs["ephemeral"] is True
    assert bot.store.get(job_id).status is JobStatus.DONE
    assert len(list(bot.store.inputs_dir.iterdir())) == 2


async def test_a_store_failure_after_deleting_is_told_privately(make_bot, monkeypatch) -> None:
    bot = await make_bot()
    interaction = await run_stylize(bot)
    custom_id = interaction.followup.send.call_args_list[-1].kwargs["view"].children[0].custom_id
    requester = make_interaction(user_id=42)
    requester.message = make_message(discord.Message)

    def disk_error(record) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bot.store, "discard_inputs", disk_error)
    await controls_of(bot).delete_pressed(requester, custom_id.split(":")[2])
    requester.message.delete.assert_awaited_once()
    [call] = requester.followup.send.call_args_list
    assert "picture is deleted" in call.args[0] and call.kwargs["ephemeral"] is True
    assert "No space" not in call.args[0]


# ---------------------------------------------------------------------------- 💪 cannot flood
def reaction_by(user_id: int, message_id: int, channel_id: int) -> MagicMock:
    payload = MagicMock(spec=discord.RawReactionActionEvent)
    payload.user_id, payload.message_id, payload.channel_id = user_id, message_id, channel_id
    payload.guild_id = 1
    payload.emoji = discord.PartialEmoji(name="\N{FLEXED BICEPS}")
    return payload


async def test_reactions_of_many_members_at_once_start_one_rerun_and_no_notice(make_bot) -> None:
    bot = await make_bot()
    anyone_may_rerun(bot)
    channel = make_channel()
    bot.get_channel = MagicMock(return_value=channel)
    await run_stylize(bot, make_interaction(channel=channel))
    result_id = bot.store.with_status(JobStatus.DONE)[0].result_message_id
    await asyncio.gather(
        *(dispatch_reaction(bot, reaction_by(100 + n, result_id, channel.id)) for n in range(12))
    )
    records = bot.store.with_status(*JobStatus)
    assert len(records) == 2, "one re-run, not twelve"
    assert len(sent_files(channel.send)) == 1
    assert not [text for text in texts(channel.send) if text and text.startswith("<@")], "no notice"
    assert not bot.runner.reruns.rerunning, "the result is free again once its re-run ended"
    await dispatch_reaction(bot, reaction_by(100, result_id, channel.id))
    assert len(bot.store.with_status(*JobStatus)) == 3


async def test_a_press_while_the_result_is_being_rerun_is_told_where(make_bot) -> None:
    bot = await make_bot()
    anyone_may_rerun(bot)
    first = await run_stylize(bot)
    job_id = first.followup.send.call_args_list[-1].kwargs["view"].children[0].custom_id.split(":")[2]
    record = bot.store.get(job_id)
    with bot.runner.reserve_rerun(record, 5, channel_id=321):  # someone's re-run, reserved
        press = make_interaction(user_id=77)
        await controls_of(bot).rerun_pressed(press, job_id, Rerun.REROLL)
        assert texts(press.response.send_message) == [already_rerunning(321)]
        assert "<#321>" in already_rerunning(321)
        assert press.response.send_message.call_args.kwargs["ephemeral"] is True
        press.response.defer.assert_not_awaited()
    again = make_interaction(user_id=77)  # given back unused: free again, and 5's budget too
    await controls_of(bot).rerun_pressed(again, job_id, Rerun.REROLL)
    again.response.defer.assert_awaited_once()
    assert not bot.runner.reruns.rerunning and 5 not in bot.runner.reruns.spent


async def test_a_failed_reaction_rerun_frees_its_result(make_bot) -> None:
    bot = await make_bot()
    anyone_may_rerun(bot)
    channel = make_channel()
    bot.get_channel = MagicMock(return_value=channel)
    await run_stylize(bot, make_interaction(channel=channel))
    result_id = bot.store.with_status(JobStatus.DONE)[0].result_message_id
    assert bot.store.purge(-1) == 1  # its inputs expired: refused once reserved
    await dispatch_reaction(bot, reaction_by(77, result_id, channel.id))
    assert EXPIRED_TEXT in texts(channel.send)[-1]
    assert not bot.runner.reruns.rerunning and 77 not in bot.runner.reruns.spent


async def test_the_budget_counts_reruns_of_others_results_only(make_bot) -> None:
    bot = await make_bot(others_reruns_per_hour=1)
    anyone_may_rerun(bot)
    first = await run_stylize(bot)  # user 42's
    job_id = first.followup.send.call_args_list[-1].kwargs["view"].children[0].custom_id.split(":")[2]
    press = make_interaction(user_id=77)
    await controls_of(bot).rerun_pressed(press, job_id, Rerun.STRONGER)
    [own_id] = {
        item.custom_id.split(":")[2]
        for item in press.followup.send.call_args_list[-1].kwargs["view"].children
    }
    again = make_interaction(user_id=77)
    await controls_of(bot).rerun_pressed(again, job_id, Rerun.REROLL)
    assert texts(again.response.send_message) == [rerun_budget_spent(1, 3600)]
    assert again.response.send_message.call_args.kwargs["ephemeral"] is True
    own = make_interaction(user_id=77)  # the re-run is 77's own picture: not counted
    await controls_of(bot).rerun_pressed(own, own_id, Rerun.REROLL)
    own.response.defer.assert_awaited_once()
    requester = make_interaction(user_id=42)  # 42's own picture, any number of times
    await controls_of(bot).rerun_pressed(requester, job_id, Rerun.REROLL)
    requester.response.defer.assert_awaited_once()
