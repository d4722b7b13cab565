"""Answering a user: refusals and errors, the same way on every path.

Where an answer goes depends on how the user asked: an interaction (a command, a button) is
answered privately, in its response while that is open and through its
:class:`~bot.chat.conversation.Conversation` after a defer; a reaction has no private reply, so it
is answered in the channel, at most once per result (whatever number of members react) and once
per user in ``REACTION_NOTICE_SECONDS``. Each is a
:class:`Reply`; :func:`answer_error` is the one function that turns an exception into the user's
sentence (:func:`~bot.core.errors.friendly_error`) and says it, on every path.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Protocol

import discord

from ..core import texts
from ..core.errors import JobRefused, friendly_error
from .conversation import Conversation, interaction_conversation

log = logging.getLogger(__name__)

#: A refused reaction (busy, cooling down, already extreme, expired) is answered in the channel,
#: for everyone to see, so at most once per user in this many seconds; the others are ignored.
REACTION_NOTICE_SECONDS = 300.0
#: ...and at most once per result: the results that had their notice, the newest this many.
NOTICED_RESULTS_KEPT = 10_000


class Reply(Protocol):
    """Where the answer to one request goes."""

    async def say(self, text: str) -> None:
        """Tell the user ``text``; never raises for Discord's refusal."""


class InteractionReply:
    """Answers an interaction privately: in its response while that is open, else (after a defer)
    through its conversation."""

    def __init__(self, interaction: discord.Interaction, *, token_seconds: float) -> None:
        self.interaction = interaction
        self.token_seconds = token_seconds

    async def say(self, text: str) -> None:
        interaction = self.interaction
        if interaction.response.is_done():  # deferred or answered: the conversation knows which
            await interaction_conversation(interaction, token_seconds=self.token_seconds).tell(text)
            return
        try:
            await interaction.response.send_message(text, ephemeral=True)
        except discord.HTTPException as error:
            log.warning("could not tell user %s: %s", interaction.user.id, error.status)


class ReactionNotices:
    """Which results already had a public notice, and when each user was last told why their
    reaction did nothing (monotonic seconds): forty members reacting to one picture, one notice."""

    def __init__(self) -> None:
        self.last: dict[int, float] = {}
        self.noticed: OrderedDict[int, None] = OrderedDict()

    def may_tell(self, user_id: int, result_id: int) -> bool:
        """Whether ``user_id`` may be told now under result ``result_id``; counts it as told when so."""
        if result_id in self.noticed:
            return False
        now = time.monotonic()
        last = self.last.get(user_id)
        if last is not None and now - last < REACTION_NOTICE_SECONDS:
            return False
        self.last = {user: at for user, at in self.last.items() if now - at < REACTION_NOTICE_SECONDS}
        self.last[user_id] = now
        self.noticed[result_id] = None
        while len(self.noticed) > NOTICED_RESULTS_KEPT:
            self.noticed.popitem(last=False)
        return True


class ReactionReply:
    """Answers a reaction on result ``result_id`` publicly in its channel (a reaction has no
    private reply), naming the user, unless that result already had its notice or the user was
    told in the last ``REACTION_NOTICE_SECONDS``."""

    def __init__(self, conversation: Conversation, notices: ReactionNotices, result_id: int) -> None:
        self.conversation = conversation
        self.notices = notices
        self.result_id = result_id

    async def say(self, text: str) -> None:
        user_id = self.conversation.user_id
        if not self.notices.may_tell(user_id, self.result_id):
            log.debug("reaction of user %s refused quietly: %s", user_id, text)
            return
        await self.conversation.tell(texts.addressed(self.conversation.mention, text))


async def answer_error(reply: Reply, error: BaseException, *, what: str) -> None:
    """Log ``error`` (the detail stays in the log) and tell the user its one friendly sentence.

    ``what``: the failed request, for the log ("command stylize", "a reaction re-run of job x").
    A refusal (:class:`~bot.core.errors.JobRefused`) is an answer, not a failure: logged quietly.
    """
    if isinstance(error, JobRefused):
        log.info("%s refused: %s", what, error)
    else:
        log.error("%s failed", what, exc_info=error)
    await reply.say(friendly_error(error))
