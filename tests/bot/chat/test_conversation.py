"""Interaction first, channel after the token's lifetime, and a plain note when the channel refuses."""

from __future__ import annotations

import io
from unittest.mock import AsyncMock, MagicMock

import discord

from bot.chat.conversation import Conversation, defer
from bot.core.texts import PRIVATE_ANSWER_NOTE
from tests.bot.conftest import make_channel, make_interaction, make_message


async def test_uses_the_interaction_while_the_token_lives() -> None:
    interaction = make_interaction()
    conversation = Conversation(interaction=interaction, channel=interaction.channel, user_id=42)
    await conversation.send("hello")
    interaction.followup.send.assert_awaited_once()
    interaction.channel.send.assert_not_awaited()


async def test_expired_token_falls_back_to_the_channel_with_a_mention() -> None:
    interaction = make_interaction()
    conversation = Conversation(
        interaction=interaction, channel=interaction.channel, user_id=42, token_seconds=0
    )
    await conversation.send("done")
    interaction.followup.send.assert_not_awaited()
    assert interaction.channel.send.call_args.args[0] == "<@42> done"


async def test_edit_of_a_followup_after_expiry_posts_a_replacement() -> None:
    interaction = make_interaction()
    conversation = Conversation(
        interaction=interaction, channel=interaction.channel, user_id=42, token_seconds=0
    )
    old = make_message()
    new = await conversation.edit(old, content="50%", view=None)
    old.edit.assert_not_awaited()
    old.delete.assert_awaited_once()
    assert isinstance(new, discord.Message) and "50%" in interaction.channel.send.call_args.args[0]


async def test_not_found_on_followup_switches_to_the_channel() -> None:
    interaction = make_interaction()
    response = MagicMock(status=404, reason="Not Found")
    interaction.followup.send = AsyncMock(side_effect=discord.NotFound(response, "Unknown Webhook"))
    conversation = Conversation(interaction=interaction, channel=interaction.channel, user_id=42)
    await conversation.send("result")
    interaction.channel.send.assert_awaited_once()
    assert not conversation.token_valid


async def test_forbidden_channel_is_noted_and_not_retried() -> None:
    channel = make_channel()
    response = MagicMock(status=403, reason="Forbidden")
    channel.send = AsyncMock(side_effect=discord.Forbidden(response, "Missing Access"))
    conversation = Conversation(interaction=None, channel=channel, user_id=42)
    assert await conversation.send("x") is None
    assert await conversation.send("y") is None
    assert channel.send.await_count == 1 and conversation.channel_unavailable
    assert conversation.filesize_limit == channel.guild.filesize_limit


def _http_error(
    error_type: type[discord.HTTPException], status: int, code: int, text: str
) -> discord.HTTPException:
    return error_type(MagicMock(status=status, reason=text), {"code": code, "message": text})


async def test_invalid_webhook_token_401_switches_to_the_channel() -> None:
    interaction = make_interaction()
    interaction.followup.send = AsyncMock(
        side_effect=_http_error(discord.HTTPException, 401, 50027, "Invalid Webhook Token")
    )
    conversation = Conversation(interaction=interaction, channel=interaction.channel, user_id=42)
    await conversation.send("result")
    assert interaction.channel.send.call_args.args[0] == "<@42> result"
    assert not conversation.token_valid


async def test_other_upload_errors_are_raised_for_the_caller() -> None:
    interaction = make_interaction()
    interaction.followup.send = AsyncMock(
        side_effect=_http_error(discord.HTTPException, 413, 40005, "Request entity too large")
    )
    conversation = Conversation(interaction=interaction, channel=interaction.channel, user_id=42)
    try:
        await conversation.send("result")
    except discord.HTTPException as error:
        assert error.status == 413
    else:
        raise AssertionError("a 413 must reach the caller, which re-encodes")
    interaction.channel.send.assert_not_awaited()
    assert conversation.token_valid


async def test_deleted_progress_message_is_not_replaced() -> None:
    interaction = make_interaction()
    conversation = Conversation(interaction=interaction, channel=interaction.channel, user_id=42)
    message = make_message()
    message.edit = AsyncMock(side_effect=_http_error(discord.NotFound, 404, 10008, "Unknown Message"))
    assert await conversation.edit(message, content="50%", view=None) is None
    interaction.channel.send.assert_not_awaited()


async def _after_a_defer(*, ephemeral: bool) -> tuple[MagicMock, Conversation]:
    interaction = make_interaction()
    await defer(interaction, ephemeral=ephemeral)
    interaction.edit_original_response = AsyncMock(side_effect=lambda **kwargs: make_message())
    interaction.delete_original_response = AsyncMock()
    return interaction, Conversation(interaction=interaction, channel=interaction.channel, user_id=42)


async def test_first_message_after_a_defer_edits_the_original_and_later_ones_follow_up() -> None:
    interaction, conversation = await _after_a_defer(ephemeral=False)
    interaction.response.defer.assert_awaited_once_with(thinking=True, ephemeral=False)
    await conversation.send("Queued", files=[discord.File(io.BytesIO(b"x"), "a.png")])
    first = interaction.edit_original_response.call_args.kwargs
    assert first["content"] == "Queued" and [f.filename for f in first["attachments"]] == ["a.png"]
    interaction.followup.send.assert_not_awaited()
    await conversation.send("Done")
    interaction.edit_original_response.assert_awaited_once()
    assert interaction.followup.send.call_args.args[0] == "Done"


async def test_private_notice_after_a_public_defer_ends_it_publicly_then_follows_up_privately() -> None:
    interaction, conversation = await _after_a_defer(ephemeral=False)
    await conversation.tell("I can't use that photo")
    assert interaction.edit_original_response.call_args.kwargs["content"] == PRIVATE_ANSWER_NOTE
    assert interaction.followup.send.call_args.args[0] == "I can't use that photo"
    assert interaction.followup.send.call_args.kwargs["ephemeral"] is True
    await conversation.tell("and again")  # the original is answered: only a followup this time
    interaction.edit_original_response.assert_awaited_once()
    interaction.delete_original_response.assert_not_awaited()  # never: undocumented flow


async def test_private_answer_after_a_private_defer_is_the_original_itself() -> None:
    interaction, conversation = await _after_a_defer(ephemeral=True)
    await conversation.tell("only for you")
    assert interaction.edit_original_response.call_args.kwargs["content"] == "only for you"
    interaction.followup.send.assert_not_awaited()


async def test_a_message_pings_the_user_where_it_names_them_and_no_one_else() -> None:
    interaction, conversation = await _after_a_defer(ephemeral=False)
    await conversation.send("Queued")
    await conversation.send("Done, <@42>! (not <@7>, not @everyone)")
    expired = Conversation(interaction=interaction, channel=interaction.channel, user_id=42, token_seconds=0)
    await expired.send("late")  # in the channel: "<@42> late"
    assert interaction.edit_original_response.call_args.kwargs["allowed_mentions"].to_dict() == {
        "parse": [],
        "users": [],
    }
    for mentions in (
        interaction.followup.send.call_args.kwargs["allowed_mentions"],
        interaction.channel.send.call_args.kwargs["allowed_mentions"],
    ):
        assert mentions.to_dict() == {"parse": [], "users": [42]}


async def test_a_reply_goes_in_the_channel_and_through_the_interaction_where_it_may_not() -> None:
    """An upscale replies to its result: only a channel message can; where the bot may not post
    in the channel, it answers through the interaction with the whole file."""
    interaction = make_interaction()
    conversation = Conversation(interaction=interaction, channel=interaction.channel, user_id=42)
    await conversation.send("done", reply_to=777)
    reference = interaction.channel.send.call_args.kwargs["reference"]
    assert (reference.message_id, reference.channel_id) == (777, interaction.channel.id)
    interaction.followup.send.assert_not_awaited()

    response = MagicMock(status=403, reason="Forbidden")
    sent: list[bytes] = []

    async def refuse(*_args: object, files: list[discord.File], **_kwargs: object) -> None:
        sent.append(files[0].fp.read())  # the refused request read the file
        raise discord.Forbidden(response, "Missing Permissions")

    interaction.channel.send = AsyncMock(side_effect=refuse)
    await conversation.send("done", files=[discord.File(io.BytesIO(b"picture"), "a.png")], reply_to=777)
    [file] = interaction.followup.send.call_args.kwargs["files"]
    assert sent == [b"picture"] and file.fp.read() == b"picture"
