"""Where a job talks to its user: the interaction while its token lives, then the channel.

Interaction tokens expire 15 minutes after the command. A long queue plus a long run can outlive
that, so :class:`Conversation` switches to plain channel messages before the deadline, and says
plainly (in the log, and to the user where it still can) when the bot may not post there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypedDict, TypeVar

import discord

from ..core.settings import INTERACTION_TOKEN_SECONDS
from ..core.texts import PRIVATE_ANSWER_NOTE

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Discord's JSON error codes for an unusable interaction token.
INVALID_WEBHOOK_TOKEN = 50027
UNKNOWN_WEBHOOK = 10015


class Conversation:
    """Sends and edits the messages of one job, through an interaction or a channel.

    After a "thinking…" defer, the first message *is* the interaction's original response, so it
    is written with Edit Original Interaction Response (``PATCH …/messages/@original``); only
    later messages are followups. A private answer after a *public* defer cannot take over the
    public "thinking…" message, so that message ends with a short public line and the answer goes
    out as an ephemeral followup. After a *private* defer (``/presets``) every answer is private.
    A message pings the job's user where it names them, and no one else.
    """

    def __init__(
        self,
        *,
        interaction: discord.Interaction | None,
        channel: discord.abc.Messageable | None,
        user_id: int,
        token_seconds: float = INTERACTION_TOKEN_SECONDS,
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

    def allowed_mentions(self, text: str | None) -> discord.AllowedMentions:
        """Ping the job's user where ``text`` mentions them, and no one else, ever."""
        users = [discord.Object(self.user_id)] if text and self.mention in text else []
        return discord.AllowedMentions(everyone=False, roles=False, users=users, replied_user=False)

    async def send(
        self,
        content: str | None = None,
        *,
        ephemeral: bool = False,
        embeds: Sequence[discord.Embed] = (),
        files: Sequence[discord.File] = (),
        view: discord.ui.View | None = None,
        reply_to: int | None = None,
    ) -> discord.Message | None:
        """Post a message; returns it (or None when nowhere accepted it).

        Through the interaction it is a :class:`discord.WebhookMessage` (a followup) or a
        :class:`discord.InteractionMessage` (the original response); in the channel a plain
        :class:`discord.Message`. Raises HTTPException on upload errors.

        ``reply_to``: a message of the channel this one answers (an upscale answers its result).
        Only a channel message can reply (an interaction's followups cannot), so it is posted in
        the channel; where the bot may not post there, it goes through the interaction instead.
        """
        parts = _MessageParts()
        if embeds:
            parts["embeds"] = embeds
        if files:
            parts["files"] = files
        if view is not None:
            parts["view"] = view
        channel_id = getattr(self.channel, "id", None)
        if reply_to is not None and isinstance(channel_id, int) and not self.channel_unavailable:
            assert self.channel is not None
            reference = discord.MessageReference(
                message_id=reply_to, channel_id=channel_id, fail_if_not_exists=False
            )
            try:
                return await self.channel.send(
                    content, allowed_mentions=self.allowed_mentions(content), reference=reference, **parts
                )
            except discord.Forbidden:
                log.info(
                    "cannot reply in channel %s; answering through the interaction", reference.channel_id
                )
                for file in files:  # read once by the refused request
                    file.reset(seek=True)
        if self.token_valid:
            assert self.interaction is not None
            try:
                loading = original_loading(self.interaction)
                if loading == PRIVATE or (loading == PUBLIC and not ephemeral):
                    return await self._answer_original(content, embeds=embeds, files=files, view=view)
                if loading == PUBLIC:  # a private answer cannot become the public "thinking…" message
                    await self._answer_original(PRIVATE_ANSWER_NOTE)
                return await self.interaction.followup.send(
                    content or discord.utils.MISSING,
                    wait=True,
                    ephemeral=ephemeral,
                    allowed_mentions=self.allowed_mentions(content),
                    **parts,
                )
            except discord.HTTPException as error:
                # A webhook call has only one thing to be missing: the webhook (the token) itself.
                if not (token_gone(error) or isinstance(error, discord.NotFound)):
                    raise
                self._deadline = 0  # expired early (clock skew, long outage): use the channel
        if self.channel is None or self.channel_unavailable:
            log.warning("job for user %s has no channel to post in", self.user_id)
            return None
        text = content if content is None or self.interaction is None else f"{self.mention} {content}"
        try:
            return await self.channel.send(text, allowed_mentions=self.allowed_mentions(text), **parts)
        except discord.Forbidden:
            self.channel_unavailable = True
            log.warning(
                "no permission to post in channel %s for user %s",
                getattr(self.channel, "id", "?"),
                self.user_id,
            )
            return None

    async def _answer_original(
        self,
        content: str | None,
        *,
        embeds: Sequence[discord.Embed] = (),
        files: Sequence[discord.File] = (),
        view: discord.ui.View | None = None,
    ) -> discord.InteractionMessage:
        """Write the deferred original response (Edit Original Interaction Response); what is not
        given (no content, no files...) is left as it is."""
        assert self.interaction is not None
        changes = _MessageChanges(allowed_mentions=self.allowed_mentions(content))
        if content is not None:
            changes["content"] = content
        if embeds:
            changes["embeds"] = embeds
        if files:
            changes["attachments"] = files
        if view is not None:
            changes["view"] = view
        message = await self.interaction.edit_original_response(**changes)
        _set_original_state(self.interaction, ANSWERED)
        return message

    async def edit(
        self,
        message: discord.Message | None,
        *,
        content: str,
        view: discord.ui.View | None,
        attachments: Sequence[discord.File] | None = None,
    ) -> discord.Message | None:
        """Edit ``message``: its text, its buttons (None: none) and, unless ``attachments`` is None,
        its files. After the token expired, an interaction message is replaced by a new channel
        message (text and buttons only).

        Returns the message to edit next time (the same one, or its channel replacement).
        """
        if message is None:
            return None
        through_token = isinstance(message, (discord.WebhookMessage, discord.InteractionMessage))
        if through_token and not self.token_valid:
            replacement = await self.send(content, view=view)
            if replacement is not None:
                await _quietly(message.delete())
            return replacement
        try:
            changes = _MessageChanges(
                content=content, view=view, allowed_mentions=self.allowed_mentions(content)
            )
            if attachments is not None:
                changes["attachments"] = attachments
            await message.edit(**changes)
        except discord.HTTPException as error:
            if through_token and token_gone(error):
                self._deadline = 0
                return await self.edit(message, content=content, view=view, attachments=attachments)
            if isinstance(error, discord.NotFound):  # deleted by someone: nothing left to edit
                return None
            raise
        return message

    async def tell(self, content: str) -> None:
        """A short notice to the user: ephemeral where the interaction still allows it."""
        await _quietly(self.send(content, ephemeral=True))


class _MessageParts(TypedDict, total=False):
    """What a message carries besides its text, as discord.py's send methods take it: only the
    parts given are passed on (an empty list would ask for none, a different request)."""

    embeds: Sequence[discord.Embed]
    files: Sequence[discord.File]
    view: discord.ui.View


class _MessageChanges(TypedDict, total=False):
    """An edit of a message, as discord.py's edit methods take it: only the fields given change."""

    content: str
    embeds: Sequence[discord.Embed]
    attachments: Sequence[discord.File]
    view: discord.ui.View | None
    allowed_mentions: discord.AllowedMentions


#: ``interaction.extras`` key: the state of a deferred original response (see :func:`defer`).
_ORIGINAL_KEY = "nst_original"
PUBLIC = "public"
PRIVATE = "private"
ANSWERED = "answered"


def conversation_with(
    interaction: discord.Interaction | None, channel: object, user_id: int, *, token_seconds: float
) -> Conversation:
    """A conversation with ``user_id``; ``channel`` (any Discord channel, or None) is where it
    goes on after the interaction's token, if messages can be posted there."""
    return Conversation(
        interaction=interaction, channel=messageable(channel), user_id=user_id, token_seconds=token_seconds
    )


def interaction_conversation(interaction: discord.Interaction, *, token_seconds: float) -> Conversation:
    """The conversation with the user of ``interaction``, in its channel after the token."""
    return conversation_with(
        interaction, interaction.channel, interaction.user.id, token_seconds=token_seconds
    )


async def defer(interaction: discord.Interaction, *, ephemeral: bool) -> None:
    """Acknowledge with "thinking…" (public or private) and remember which, for :class:`Conversation`."""
    await interaction.response.defer(thinking=True, ephemeral=ephemeral)
    _set_original_state(interaction, PRIVATE if ephemeral else PUBLIC)


#: Discord drops an interaction not acknowledged within 3 s of its sending. A handler that waits
#: for the database (a thread, which a locked database holds up to its 5 s busy timeout) answers
#: in the response when the answer comes within this many seconds, else acknowledges first and
#: answers after (:func:`in_time`); the rest of the 3 s is for the event's and the defer's trips.
ANSWER_WITHIN_SECONDS = 1.0


async def in_time(
    interaction: discord.Interaction,
    work: Awaitable[T],
    *,
    acknowledge: Callable[[], Awaitable[None]],
) -> T:
    """``work``'s result (a database call in a thread); when it takes longer than
    ``ANSWER_WITHIN_SECONDS``, ``interaction`` is acknowledged with ``acknowledge`` (a defer of
    the kind its answer needs) while ``work`` goes on, so Discord's 3 s deadline is met whatever
    the database does. A refusal known in time is still the response itself, privately."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=ANSWER_WITHIN_SECONDS)
    if not done and not interaction.response.is_done():
        log.info("the database is slow; acknowledging interaction %s first", interaction.id)
        try:
            await acknowledge()
        except discord.HTTPException as error:
            log.warning("could not acknowledge interaction %s: %s", interaction.id, error.status)
    return await task


async def defer_update(interaction: discord.Interaction) -> None:
    """Acknowledge a button press without a message (the answer, if any, is a private followup)."""
    await interaction.response.defer()


def original_loading(interaction: discord.Interaction) -> str | None:
    """PUBLIC or PRIVATE while the deferred original still shows "thinking…"; else None."""
    extras = getattr(interaction, "extras", None)
    state = extras.get(_ORIGINAL_KEY) if isinstance(extras, dict) else None
    if state is None:
        # Deferred elsewhere (not through :func:`defer`): the visibility is unknown, so assume
        # the stricter case, a public "thinking…" message.
        response_type = getattr(interaction.response, "type", None)
        if response_type is discord.InteractionResponseType.deferred_channel_message:
            return PUBLIC
        return None
    return state if state in (PUBLIC, PRIVATE) else None


def _set_original_state(interaction: discord.Interaction, state: str) -> None:
    extras = getattr(interaction, "extras", None)
    if isinstance(extras, dict):
        extras[_ORIGINAL_KEY] = state


def messageable(channel: object) -> discord.abc.Messageable | None:
    """``channel`` where messages can be posted in it (a text or voice channel, a thread, a DM),
    else None: a category or a forum takes no messages of its own."""
    return channel if isinstance(channel, discord.abc.Messageable) else None


def token_gone(error: discord.HTTPException) -> bool:
    """Whether Discord refused because the interaction token is no longer usable.

    An expired token is answered with 401 / 50027 (Invalid Webhook Token); a webhook Discord
    has forgotten with 404 / 10015 (Unknown Webhook). Either way only the channel is left.
    """
    return error.status == 401 or error.code in (INVALID_WEBHOOK_TOKEN, UNKNOWN_WEBHOOK)


async def _quietly(awaitable: Awaitable[T]) -> T | None:
    """``awaitable``'s result, or None (logged) when Discord refused it."""
    try:
        return await awaitable
    except discord.HTTPException as error:
        log.warning("Discord refused a message: %s", error.status)
        return None
