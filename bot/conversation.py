"""Where a job talks to its user: the interaction while its token lives, then the channel.

Interaction tokens expire 15 minutes after the command. A long queue plus a long run can outlive
that, so :class:`Conversation` switches to plain channel messages before the deadline, and says
plainly (in the log, and to the user where it still can) when the bot may not post there.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import discord

from .settings import INTERACTION_TOKEN_SECONDS

log = logging.getLogger(__name__)

#: Discord's JSON error codes for an unusable interaction token.
INVALID_WEBHOOK_TOKEN = 50027
UNKNOWN_WEBHOOK = 10015


class Conversation:
    """Sends and edits the messages of one job, through an interaction or a channel."""

    def __init__(
        self,
        *,
        interaction: discord.Interaction | None,
        channel: Any | None,
        user_id: int,
        token_seconds: float = INTERACTION_TOKEN_SECONDS,
    ) -> None:
        self.interaction = interaction
        self.channel = channel
        self.user_id = user_id
        self._deadline = time.monotonic() + token_seconds
        self.channel_unavailable = False
        self._thinking = interaction is not None and _deferred_thinking(interaction)

    @property
    def token_valid(self) -> bool:
        return self.interaction is not None and time.monotonic() < self._deadline

    @property
    def filesize_limit(self) -> int:
        """Largest upload Discord accepts here (the interaction knows it; guilds know theirs)."""
        if self.interaction is not None:
            return int(self.interaction.filesize_limit)
        guild = getattr(self.channel, "guild", None)
        if guild is not None:
            return int(guild.filesize_limit)
        return 10 * 1024 * 1024

    @property
    def mention(self) -> str:
        return f"<@{self.user_id}>"

    async def send(self, content: str | None = None, *, ephemeral: bool = False, **kwargs: Any) -> Any:
        """Post a message; returns it (or None when nowhere accepted it).

        Raises HTTPException on upload errors."""
        if self.token_valid:
            assert self.interaction is not None
            if ephemeral and self._thinking:
                # The first followup after a public "thinking" defer *becomes* that message and
                # keeps its visibility, so a private notice must first remove it.
                await _quietly(self.interaction.delete_original_response())
            self._thinking = False
            try:
                return await self.interaction.followup.send(
                    content or discord.utils.MISSING, wait=True, ephemeral=ephemeral, **kwargs
                )
            except discord.HTTPException as error:
                # Creating a followup has only one thing to be missing: the webhook itself.
                if not (token_gone(error) or isinstance(error, discord.NotFound)):
                    raise
                self._deadline = 0  # expired early (clock skew, long outage): use the channel
        if self.channel is None or self.channel_unavailable:
            log.warning("job for user %s has no channel to post in", self.user_id)
            return None
        kwargs.pop("ephemeral", None)
        text = content if content is None or self.interaction is None else f"{self.mention} {content}"
        try:
            return await self.channel.send(
                text, allowed_mentions=discord.AllowedMentions(users=True), **kwargs
            )
        except discord.Forbidden:
            self.channel_unavailable = True
            log.warning(
                "no permission to post in channel %s for user %s",
                getattr(self.channel, "id", "?"),
                self.user_id,
            )
            return None

    async def edit(self, message: Any, **kwargs: Any) -> Any:
        """Edit ``message``; after the token expired, a followup is replaced by a new channel message.

        Returns the message to edit next time (the same one, or its channel replacement).
        """
        if message is None:
            return None
        is_followup = isinstance(message, discord.WebhookMessage)
        if is_followup and not self.token_valid:
            content = kwargs.pop("content", None)
            kwargs.pop("attachments", None)
            replacement = await self.send(content, **kwargs)
            if replacement is not None:
                await _quietly(message.delete())
            return replacement
        try:
            await message.edit(**kwargs)
        except discord.HTTPException as error:
            if is_followup and token_gone(error):
                self._deadline = 0
                return await self.edit(message, **kwargs)
            if isinstance(error, discord.NotFound):  # deleted by someone: nothing left to edit
                return None
            raise
        return message

    async def tell(self, content: str) -> None:
        """A short notice to the user: ephemeral where the interaction still allows it."""
        await _quietly(self.send(content, ephemeral=True))


def token_gone(error: discord.HTTPException) -> bool:
    """Whether Discord refused because the interaction token is no longer usable.

    An expired token is answered with 401 / 50027 (Invalid Webhook Token); a webhook Discord
    has forgotten with 404 / 10015 (Unknown Webhook). Either way only the channel is left.
    """
    return error.status == 401 or error.code in (INVALID_WEBHOOK_TOKEN, UNKNOWN_WEBHOOK)


def _deferred_thinking(interaction: discord.Interaction) -> bool:
    response_type = getattr(interaction.response, "type", None)
    return response_type is discord.InteractionResponseType.deferred_channel_message


async def _quietly(awaitable: Any) -> Any:
    try:
        return await awaitable
    except discord.HTTPException as error:
        log.warning("Discord refused a message: %s", error.status)
        return None
