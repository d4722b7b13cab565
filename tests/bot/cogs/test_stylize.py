"""The /stylize, button and reaction handlers, with spec'd Discord mocks and the real engine."""

from __future__ import annotations

import asyncio
from unittest.mock import AsyncMock, MagicMock
from urllib.parse import urlsplit

import discord
import pytest

import bot.backends as backends_module
import bot.runner as runner_module
from bot.cogs.admin import DM_TEXT
from bot.cogs.stylize import DELETE_REFUSED_TEXT, EXPIRED_TEXT, CancelButton, DeleteButton, RerunButton
from bot.guild_settings import GuildSettings
from bot.runner import MIN_UPLOAD_BYTES, JobRequest
from bot.store import InputImage, JobStatus
from bot.strength import Rerun
from tests.bot.conftest import (
    cdn,
    cog_of,
    decode_file,
    make_attachment,
    make_channel,
    make_interaction,
    make_message,
    run_until_running,
    sent_files,
    texts,
    wait_for,
)
from tests.helpers.images import content_image, png_bytes, stripes_style
from tests.helpers.preset_http import Route


def uploads(filename: str = "../../etc/passwd.png") -> tuple[MagicMock, MagicMock]:
    return (
        make_attachment(png_bytes(content_image(64, 48)), filename),
        make_attachment(png_bytes(stripes_style()), "style.png"),
    )


async def run_stylize(bot, interaction=None, **options):
    interaction = interaction or make_interaction()
    content, style = uploads()
    await cog_of(bot).handle_stylize(interaction, content, style=style, **options)
    return interaction


async def test_stylize_defers_reports_progress_and_posts_a_png(make_bot) -> None:
    bot = await make_bot()
    interaction = await run_stylize(bot, size="medium", strength="strong")
    interaction.response.defer.assert_awaited_once()
    files = sent_files(interaction.followup.send)
    assert len(files) == 1
    image = decode_file(files[0])
    assert max(image.size) == 48 and files[0].filename.endswith(".png")
    result_call = interaction.followup.send.call_args_list[-1]
    embed: discord.Embed = result_call.kwargs["embeds"][0]
    fields = {field.name: field.value for field in embed.fields}
    assert fields["Strength"] == "strong" and "cpu" in fields["Time"] and "42" in fields["Requested by"]
    custom_ids = {item.custom_id for item in result_call.kwargs["view"].children}
    assert {cid.split(":")[1] for cid in custom_ids} == {"stronger", "weaker", "reroll", "delete"}
    record = bot.store.get(custom_ids.pop().split(":")[2])
    assert record.status is JobStatus.DONE and record.stats["iterations"] == 4
    # The first followup is the progress message: edited with a bar, then with the final line.
    first = interaction.followup.send.call_args_list[0]
    assert isinstance(first.kwargs["view"].children[0], CancelButton)
    assert "cancel" in first.kwargs["view"].children[0].custom_id


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


async def test_inputs_are_stored_under_generated_names(make_bot) -> None:
    bot = await make_bot()
    await run_stylize(bot)
    names = [path.name for path in bot.store.inputs_dir.iterdir()]
    assert len(names) == 2 and not any("passwd" in name for name in names)


@pytest.mark.parametrize("style, preset", [(True, "starry-night"), (False, None)])
async def test_exactly_one_of_style_and_preset(make_bot, style, preset) -> None:
    bot = await make_bot()
    interaction = make_interaction()
    content, style_upload = uploads()
    await cog_of(bot).handle_stylize(
        interaction, content, style=style_upload if style else None, preset=preset
    )
    interaction.response.send_message.assert_awaited_once()
    assert "exactly one" in interaction.response.send_message.call_args.args[0]
    assert interaction.response.send_message.call_args.kwargs["ephemeral"] is True
    interaction.response.defer.assert_not_awaited()


async def test_oversized_attachment_is_refused_before_download(make_bot) -> None:
    bot = await make_bot(max_attachment_bytes=4096)
    interaction = make_interaction()
    content = make_attachment(b"x" * 10, size=50_000_000)
    style = make_attachment(png_bytes(stripes_style()))
    await cog_of(bot).handle_stylize(interaction, content, style=style)
    assert cdn().requests[urlsplit(content.url).path] == 0, "nothing was downloaded"
    interaction.response.defer.assert_not_awaited()
    message = interaction.response.send_message.call_args.args[0]
    assert "larger than" in message and "photo" in message
    assert interaction.response.send_message.call_args.kwargs["ephemeral"] is True


@pytest.mark.parametrize(
    "data, words",
    [(b"this is text, not a PNG", "not an image"), (b"", "empty"), (png_bytes(content_image(8, 8)), "small")],
)
async def test_bad_uploads_get_a_friendly_message(make_bot, data, words) -> None:
    bot = await make_bot()
    interaction = make_interaction()
    await cog_of(bot).handle_stylize(
        interaction, make_attachment(data, "evil.png"), style=make_attachment(png_bytes(stripes_style()))
    )
    message = texts(interaction.followup.send)[-1]
    assert message.startswith("I can't use that photo") and words in message.lower()
    assert "Traceback" not in message and not bot.queue.jobs()


@pytest.mark.parametrize(
    "error",
    [
        "CUDA out of memory. Tried to allocate 2.00 GiB",
        "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: "
        "you tried to allocate 9663676416 bytes.",
    ],
    ids=["cuda", "cpu"],
)
async def test_engine_error_is_reported_and_the_queue_goes_on(make_bot, monkeypatch, error) -> None:
    bot = await make_bot()
    real = backends_module.engine_stylize

    def out_of_memory(*args, **kwargs):
        raise RuntimeError(error)

    monkeypatch.setattr(backends_module, "engine_stylize", out_of_memory)
    interaction = await run_stylize(bot)
    final_edit = interaction.sent_messages[0].edit.call_args_list[-1].kwargs
    assert "try a smaller size" in final_edit["content"] and final_edit["view"] is None
    assert "CUDA" not in final_edit["content"] and "Allocator" not in final_edit["content"]
    assert sent_files(interaction.followup.send) == []
    assert bot.store.with_status(JobStatus.FAILED)
    monkeypatch.setattr(backends_module, "engine_stylize", real)
    again = await run_stylize(bot, make_interaction(user_id=43))
    assert len(sent_files(again.followup.send)) == 1


async def test_stronger_button_reruns_with_the_next_step(make_bot) -> None:
    bot = await make_bot()
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
    await cog_of(bot).handle_rerun_button(weaker, job_id, Rerun.WEAKER)
    # known before deferring: refused in the (private) response itself, nothing public
    weaker.response.send_message.assert_awaited_once()
    assert "weakest" in texts(weaker.response.send_message)[-1]
    assert weaker.response.send_message.call_args.kwargs["ephemeral"] is True
    weaker.response.defer.assert_not_awaited()
    reroll = make_interaction()
    await cog_of(bot).handle_rerun_button(reroll, job_id, Rerun.REROLL)
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
    channel = make_channel()
    first = await run_stylize(bot, make_interaction(channel=channel))
    result_id = bot.store.with_status(JobStatus.DONE)[0].result_message_id
    bot.get_channel = MagicMock(return_value=channel)
    payload = MagicMock(spec=discord.RawReactionActionEvent)
    payload.user_id, payload.message_id, payload.channel_id = 99, result_id, channel.id
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
    await cog_of(bot).handle_rerun_button(press, job_id, Rerun.STRONGER)
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
    await cog_of(bot).handle_cancel_button(moderator, job_id)
    await asyncio.wait_for(task, 30)
    assert bot.store.get(job_id).status is JobStatus.CANCELLED
    assert interaction.sent_messages[0].edit.call_args_list[-1].kwargs["content"] == "Cancelled."
    assert sent_files(interaction.followup.send) == []


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

    monkeypatch.setattr(runner_module, "encode_image", too_big)
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


async def test_one_job_per_user_is_refused_ephemerally(make_bot) -> None:
    bot = await make_bot(iterations=100_000)
    task = asyncio.create_task(run_stylize(bot, make_interaction(user_id=42)))
    await wait_for(lambda: bot.queue.running == 1)
    again = make_interaction(user_id=42)
    await run_stylize(bot, again)
    again.response.defer.assert_not_awaited()
    assert "already have 1 job" in again.response.send_message.call_args.args[0]
    bot.queue.cancel(bot.queue.jobs()[0].job_id)
    await asyncio.wait_for(task, 30)


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


async def test_download_is_capped_while_streaming_whatever_the_declared_size(make_bot) -> None:
    """An attachment claiming 1000 bytes that streams 40 MiB is stopped near the cap, not read whole."""
    bot = await make_bot(max_attachment_bytes=64 * 1024)
    interaction = make_interaction()
    body = b"x" * (40 << 20)
    content = make_attachment(body, size=1000, route=Route(body=body, send_length=False))
    await cog_of(bot).handle_stylize(interaction, content, style=make_attachment(png_bytes(stripes_style())))
    message = texts(interaction.followup.send)[-1]
    assert message == "I can't use that photo: it is larger than 64 KiB"
    path = urlsplit(content.url).path
    await asyncio.sleep(0.5)  # let the server notice the closed connection
    assert cdn().sent[path] < 20 << 20, "the bot stopped reading near the cap"
    assert not bot.queue.jobs()


@pytest.mark.parametrize("fault", ["cut-short", "stalled", "not-found"])
async def test_a_broken_or_stalled_download_is_a_friendly_message(make_bot, monkeypatch, fault) -> None:
    import aiohttp

    from bot import attachments

    monkeypatch.setattr(attachments, "ATTACHMENT_TIMEOUT", aiohttp.ClientTimeout(total=1.5))
    bot = await make_bot()
    data = png_bytes(content_image())
    route = {
        "cut-short": Route(body=data[:100], declared_length=len(data)),  # aiohttp: ClientPayloadError
        "stalled": Route(body=data, trickle=10.0),  # one byte, then silence: a timeout
        "not-found": Route(status=404, body=b"gone", content_type="text/plain"),
    }[fault]
    interaction = make_interaction()
    content = make_attachment(data, route=route)
    await cog_of(bot).handle_stylize(interaction, content, style=make_attachment(png_bytes(stripes_style())))
    assert (
        texts(interaction.followup.send)[-1]
        == "I can't use that photo: I could not download it; please try again"
    )
    assert not bot.queue.jobs()


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

    for user_id in (42, 77):  # 42 is cooling down; 77 may ask, but extreme is the strongest already
        before = channel.send.await_count
        for _ in range(10):
            await dispatch_reaction(bot, reaction(user_id))
        notices = texts(channel.send)[before:]
        assert len(notices) == 1, notices
        assert f"<@{user_id}>" in notices[0]
    assert "wait" in texts(channel.send)[-2] and "strongest" in texts(channel.send)[-1]
    assert not bot.queue.jobs()


@pytest.mark.parametrize("spoiler", ["content", "style", None])
async def test_a_spoiler_input_gives_a_spoiler_result_previews_and_reruns(make_bot, spoiler) -> None:
    bot = await make_bot()
    interaction = make_interaction()
    content = make_attachment(
        png_bytes(content_image(64, 48)), "SPOILER_photo.png" if spoiler == "content" else "photo.png"
    )
    style = make_attachment(png_bytes(stripes_style()), "SPOILER_s.png" if spoiler == "style" else "s.png")
    await cog_of(bot).handle_stylize(interaction, content, style=style)
    [result] = sent_files(interaction.followup.send)
    previews = [
        file
        for call in interaction.sent_messages[0].edit.call_args_list
        for file in call.kwargs.get("attachments") or []
    ]
    assert previews
    embed = interaction.followup.send.call_args_list[-1].kwargs["embeds"][0]
    if spoiler is None:
        assert not result.spoiler and not any(p.spoiler for p in previews)
        assert embed.image.url == f"attachment://{result.filename}"
        return
    # Shown blurred until clicked; an image inside an embed cannot be, so the embed has none.
    assert result.spoiler and result.filename.startswith("SPOILER_") and all(p.spoiler for p in previews)
    assert embed.image.url is None
    job_id = interaction.followup.send.call_args_list[-1].kwargs["view"].children[0].custom_id.split(":")[2]
    press = make_interaction(user_id=77)
    press.client = bot
    await RerunButton(Rerun.STRONGER, job_id).callback(press)
    [again] = sent_files(press.followup.send)
    assert again.spoiler, "a re-run of a spoiler stays a spoiler"


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
        conversation = cog_of(bot)._conversation(None, channel, 42)
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
    await cog_of(bot).handle_delete_button(moderator, job_id)
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
    await cog_of(bot).handle_delete_button(requester, job_id)
    [(args, kwargs)] = [(c.args, c.kwargs) for c in requester.followup.send.call_args_list]
    assert "could not delete" in args[0] and kwargs["ephemeral"] is True
    assert bot.store.get(job_id).status is JobStatus.DONE
    assert len(list(bot.store.inputs_dir.iterdir())) == 2


async def test_the_message_menu_follows_the_channel_rule_and_refuses_dms(make_bot) -> None:
    bot = await make_bot()
    allowed = make_channel()
    bot.guild_settings.save(1, 99, GuildSettings(channels=(allowed.id,)))
    message = MagicMock(spec=discord.Message)
    message.attachments = [make_attachment(png_bytes(content_image()))]
    message.attachments[0].width = 48

    elsewhere = make_interaction()
    await cog_of(bot).handle_context_menu(elsewhere, message)
    text = elsewhere.response.send_message.call_args.args[0]
    assert "don't paint in this channel" in text and f"<#{allowed.id}>" in text
    in_dm = make_interaction()
    in_dm.guild_id = None
    await cog_of(bot).handle_context_menu(in_dm, message)
    assert in_dm.response.send_message.call_args.args[0] == DM_TEXT
    there = make_interaction(channel=allowed)
    await cog_of(bot).handle_context_menu(there, message)
    assert there.response.send_message.call_args.args[0] == "Which painting?"


async def test_a_store_failure_after_deleting_is_told_privately(make_bot, monkeypatch) -> None:
    bot = await make_bot()
    interaction = await run_stylize(bot)
    custom_id = interaction.followup.send.call_args_list[-1].kwargs["view"].children[0].custom_id
    requester = make_interaction(user_id=42)
    requester.message = make_message(discord.Message)

    def disk_error(record) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bot.store, "discard_inputs", disk_error)
    await cog_of(bot).handle_delete_button(requester, custom_id.split(":")[2])
    requester.message.delete.assert_awaited_once()
    [call] = requester.followup.send.call_args_list
    assert "picture is deleted" in call.args[0] and call.kwargs["ephemeral"] is True
    assert "No space" not in call.args[0]
