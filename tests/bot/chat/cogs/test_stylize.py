"""/stylize and the message menu: choices, uploads, refusals, a job from request to result."""

from __future__ import annotations

import asyncio
from unittest.mock import MagicMock
from urllib.parse import urlsplit

import discord
import pytest

import bot.core.local_backend as backends_module
from bot.chat.buttons import CancelButton, RerunButton
from bot.core.guild_settings import GuildSettings
from bot.core.records import JobStatus
from bot.core.strength import Rerun
from bot.core.texts import DM_TEXT
from tests.bot.conftest import (
    cdn,
    cog_of,
    decode_file,
    make_attachment,
    make_channel,
    make_interaction,
    run_stylize,
    sent_files,
    texts,
    uploads,
    wait_for,
)
from tests.helpers.images import content_image, png_bytes, stripes_style
from tests.helpers.preset_http import Route


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
    assert {cid.split(":")[1] for cid in custom_ids} == {"stronger", "weaker", "reroll", "upscale", "delete"}
    record = bot.store.get(custom_ids.pop().split(":")[2])
    assert record.status is JobStatus.DONE and record.stats["iterations"] == 4
    # The first followup is the progress message: edited with a bar, then with the final line.
    first = interaction.followup.send.call_args_list[0]
    assert isinstance(first.kwargs["view"].children[0], CancelButton)
    assert "cancel" in first.kwargs["view"].children[0].custom_id


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

    from bot.chat import attachments

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
    press = make_interaction(user_id=42)  # its requester (the server's default allows no one else)
    press.client = bot
    await RerunButton(Rerun.STRONGER, job_id).callback(press)
    [again] = sent_files(press.followup.send)
    assert again.spoiler, "a re-run of a spoiler stays a spoiler"


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
