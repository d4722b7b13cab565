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

log = logging.getLogger(__name__)

#: Interaction tokens last 15 minutes; stop using them a minute early.
DEFAULT_TOKEN_SECONDS = 14 * 60


class Conversation:
    """Sends and edits the messages of one job, through an interaction or a channel."""

    def __init__(
        self,
        *,
        interaction: discord.Interaction | None,
        channel: Any | None,
        user_id: int,
        token_seconds: float = DEFAULT_TOKEN_SECONDS,
    ) -> None:
        self.interaction = interaction
        self.channel = channel
        self.user_id = user_id
        self._deadline = time.monotonic() + token_seconds
        self.channel_unavailable = False

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
        """Post a message; returns it (or None when nowhere accepted it). Raises HTTPException on upload errors."""
        if self.token_valid:
            assert self.interaction is not None
            try:
                return await self.interaction.followup.send(content or discord.utils.MISSING, wait=True,
                                                            ephemeral=ephemeral, **kwargs)
            except discord.NotFound:  # token expired early (clock skew, long outage): use the channel
                self._deadline = 0
        if self.channel is None or self.channel_unavailable:
            log.warning("job for user %s has no channel to post in", self.user_id)
            return None
        kwargs.pop("ephemeral", None)
        text = content if content is None or self.interaction is None else f"{self.mention} {content}"
        try:
            return await self.channel.send(text, allowed_mentions=discord.AllowedMentions(users=True), **kwargs)
        except discord.Forbidden:
            self.channel_unavailable = True
            log.warning("no permission to post in channel %s for user %s", getattr(self.channel, "id", "?"),
                        self.user_id)
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
        except discord.NotFound:
            if is_followup:
                self._deadline = 0
                return await self.edit(message, **kwargs)
            return None
        return message

    async def tell(self, content: str) -> None:
        """A short notice to the user: ephemeral where the interaction still allows it."""
        await _quietly(self.send(content, ephemeral=True))


async def _quietly(awaitable: Any) -> Any:
    try:
        return await awaitable
    except discord.HTTPException as error:
        log.warning("Discord refused a message: %s", error.status)
        return None
