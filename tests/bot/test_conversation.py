"""Interaction first, channel after the token's lifetime, and a plain note when the channel refuses."""

from __future__ import annotations

from unittest.mock import AsyncMock, MagicMock

import discord

from bot.conversation import Conversation
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
    new = await conversation.edit(old, content="50%")
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
    assert await conversation.edit(message, content="50%") is None
    interaction.channel.send.assert_not_awaited()


def _after_a_public_defer() -> tuple[MagicMock, Conversation]:
    interaction = make_interaction()
    interaction.response.type = discord.InteractionResponseType.deferred_channel_message
    interaction.delete_original_response = AsyncMock()
    return interaction, Conversation(interaction=interaction, channel=interaction.channel, user_id=42)


async def test_private_notice_after_a_public_defer_removes_the_thinking_message_first() -> None:
    interaction, conversation = _after_a_public_defer()
    await conversation.tell("I can't use that photo")
    interaction.delete_original_response.assert_awaited_once()
    assert interaction.followup.send.call_args.kwargs["ephemeral"] is True
    await conversation.tell("and again")  # the thinking message is gone: nothing more to delete
    interaction.delete_original_response.assert_awaited_once()


async def test_public_message_after_a_defer_keeps_the_thinking_message() -> None:
    interaction, conversation = _after_a_public_defer()
    await conversation.send("Queued")
    await conversation.tell("a later private note")
    interaction.delete_original_response.assert_not_awaited()
