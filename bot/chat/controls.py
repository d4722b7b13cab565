"""The controls on a job's messages: Stronger / Weaker / Re-roll, Upscale, Cancel and Delete, and the
reaction that re-runs a result one level stronger.

The buttons (:mod:`bot.chat.buttons`) reach :class:`JobControls` through the bot's typed
``buttons`` attribute; the reaction arrives as a listener. The rules (who may, what a re-run paints)
are the core's (:class:`~bot.core.runner.JobRunner`, :mod:`bot.core.guild_settings`,
:func:`~bot.core.records.may_control`); this module checks them, answers (:mod:`bot.chat.replies`)
and hands the job to the runner.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

import discord

from ..core import texts
from ..core.errors import JobRefused, RerunInProgress
from ..core.records import JobRecord, may_control
from ..core.strength import Rerun
from .conversation import conversation_with, defer, defer_update, in_time, interaction_conversation
from .replies import InteractionReply, ReactionNotices, ReactionReply, answer_error

if TYPE_CHECKING:
    from ..core.life import Talk
    from ..core.requests import JobRequest
    from ..core.runner import RerunReservation
    from .client import PaintingClient

log = logging.getLogger(__name__)


class _PaintAgain(Protocol):
    """The runner's way to paint a result again (:meth:`~bot.core.runner.JobRunner.rerun`,
    :meth:`~bot.core.runner.JobRunner.upscale`)."""

    async def __call__(
        self, record: JobRecord, request: JobRequest, talk: Talk, *, reservation: RerunReservation
    ) -> None: ...


class JobControls:
    """What the buttons and the reaction do (:class:`~bot.chat.client.ButtonActions`)."""

    def __init__(self, client: PaintingClient) -> None:
        self.client = client
        self.notices = ReactionNotices()

    @property
    def token_seconds(self) -> float:
        return self.client.settings.interaction_token_seconds

    def _reply(self, interaction: discord.Interaction) -> InteractionReply:
        return InteractionReply(interaction, token_seconds=self.token_seconds)

    def _rerun_refusal(
        self,
        record: JobRecord,
        guild_id: int | None,
        channel_id: int | None,
        parent_id: int | None,
        user_id: int,
    ) -> str | None:
        """Why ``user_id`` may not re-run ``record`` here (the server's rules; Discord's command
        permissions do not cover buttons or reactions), else None."""
        guilds = self.client.guild_settings
        refusal = guilds.refusal_to_paint(guild_id, channel_id, parent_id)
        if refusal is None and not guilds.get(guild_id).allows_rerun(record.user_id, user_id):
            return texts.REQUESTER_ONLY_TEXT
        return refusal

    # ------------------------------------------------------------------ re-runs
    async def rerun_pressed(self, interaction: discord.Interaction, job_id: str, action: Rerun) -> None:
        runner = self.client.runner
        await self._paint_again_pressed(
            interaction,
            job_id,
            what=(f"the {action.value} button", "a re-run"),
            plan=lambda record: runner.plan_rerun(record, action),
            paint=runner.rerun,
        )

    async def upscale_pressed(self, interaction: discord.Interaction, job_id: str) -> None:
        """Upscale on a result: the same rules as a re-run (the server's, one at a time per result,
        the budget for others' results, the queue's limits); a result already at the server's
        largest upscale is refused privately with the limit."""
        runner = self.client.runner
        message = interaction.message  # the result the button is on: the upscale replies to it
        await self._paint_again_pressed(
            interaction,
            job_id,
            what=("the upscale button", "an upscale"),
            plan=lambda record: runner.plan_upscale(record, reply_to=None if message is None else message.id),
            paint=runner.upscale,
        )

    async def _paint_again_pressed(
        self,
        interaction: discord.Interaction,
        job_id: str,
        *,
        what: tuple[str, str],
        plan: Callable[[JobRecord], JobRequest],
        paint: _PaintAgain,
    ) -> None:
        """A button that paints a result again (``plan`` makes the request, ``paint`` runs it): the
        server's rules and the runner's refusals are answered privately in the response itself
        when known in time; otherwise the press is acknowledged first (a slow database)."""
        button, job = what
        reply = self._reply(interaction)
        record = await self._record_in_time(  # a slow database: acknowledged as the job would be
            interaction, reply, job_id, button, acknowledge=lambda: defer(interaction, ephemeral=False)
        )
        if record is None:
            return
        refusal = self._rerun_refusal(
            record,
            interaction.guild_id,
            interaction.channel_id,
            getattr(interaction.channel, "parent_id", None),
            interaction.user.id,
        )
        if refusal is not None:
            await reply.say(refusal)
            return
        runner = self.client.runner
        try:  # known before deferring: refused privately, in the response itself
            request = plan(record)
            reservation = runner.reserve_rerun(record, interaction.user.id, channel_id=interaction.channel_id)
        except JobRefused as refused:  # at the limit, already being painted again, expired...
            await reply.say(str(refused))
            return
        with reservation:
            if not interaction.response.is_done():
                await defer(interaction, ephemeral=False)
            conversation = interaction_conversation(interaction, token_seconds=self.token_seconds)
            try:
                await paint(record, request, conversation, reservation=reservation)
            except Exception as error:
                await answer_error(reply, error, what=f"{job} of job {job_id}")

    async def on_reaction(self, payload: discord.RawReactionActionEvent) -> None:
        """A reaction with the configured emoji on a result re-runs it one level stronger.

        While that result is being re-run, more reactions on it are ignored without a word (the
        re-run's progress in the channel is the answer); other refusals follow the notice policy
        of :class:`~bot.chat.replies.ReactionReply` (at most one public notice per result)."""
        client = self.client
        if client.user is not None and payload.user_id == client.user.id:
            return
        if str(payload.emoji) != client.settings.reaction_emoji:
            return
        ours = client.user is not None and payload.message_author_id == client.user.id
        failure: Exception | None = None
        try:
            record = await asyncio.to_thread(client.store.by_result_message, payload.message_id)
        except Exception as error:  # a locked database: say so under the bot's own results
            record, failure = None, error
        if payload.guild_id is None or (record is None and not (failure is not None and ours)):
            return
        channel = client.get_channel(payload.channel_id)
        if channel is None:
            try:
                channel = await client.fetch_channel(payload.channel_id)
            except discord.HTTPException:
                log.warning("cannot reach channel %s for a reaction re-run", payload.channel_id)
                return
        conversation = conversation_with(None, channel, payload.user_id, token_seconds=self.token_seconds)
        reply = ReactionReply(conversation, self.notices, payload.message_id)
        if record is None:
            assert failure is not None
            await answer_error(reply, failure, what="looking up a reaction's job")
            return
        refusal = self._rerun_refusal(
            record, payload.guild_id, payload.channel_id, getattr(channel, "parent_id", None), payload.user_id
        )
        if refusal is not None:
            await reply.say(refusal)
            return
        runner = client.runner
        try:
            reservation = runner.reserve_rerun(record, payload.user_id, channel_id=payload.channel_id)
        except RerunInProgress:
            log.debug("reaction of user %s on job %s: already being re-run", payload.user_id, record.job_id)
            return
        except JobRefused as refused:
            await reply.say(str(refused))
            return
        with reservation:
            try:
                request = runner.plan_rerun(record, Rerun.STRONGER)
                await runner.rerun(record, request, conversation, reservation=reservation)
            except Exception as error:
                await answer_error(reply, error, what=f"a reaction re-run of job {record.job_id}")

    # ------------------------------------------------------------------ Cancel
    async def cancel_pressed(self, interaction: discord.Interaction, job_id: str) -> None:
        reply = self._reply(interaction)
        record = await self._record_in_time(  # a slow database: acknowledged privately
            interaction,
            reply,
            job_id,
            "the Cancel button",
            acknowledge=lambda: defer(interaction, ephemeral=True),
            missing=texts.CANCEL_REFUSED_TEXT,
        )
        if record is None:
            return
        if not self._may_control(interaction, record):
            await reply.say(texts.CANCEL_REFUSED_TEXT)
            return
        if await self.client.runner.cancel(job_id):
            await reply.say(texts.CANCELLING)
        else:
            await reply.say(texts.ALREADY_FINISHED)

    async def _record_in_time(
        self,
        interaction: discord.Interaction,
        reply: InteractionReply,
        job_id: str,
        button: str,
        *,
        acknowledge: Callable[[], Awaitable[None]],
        missing: str = texts.UNKNOWN_JOB,
    ) -> JobRecord | None:
        """The record of the job a button is on, read in a thread; when the database takes longer
        than Discord allows, the press is acknowledged with ``acknowledge`` first (see
        :func:`~bot.chat.conversation.in_time`). None when the press is already answered here: the
        database failed (a friendly sentence, never silence) or there is no such job (``missing``)."""
        try:
            record = await in_time(
                interaction, asyncio.to_thread(self.client.store.get, job_id), acknowledge=acknowledge
            )
        except Exception as error:  # a locked database: answered, never left unanswered
            await answer_error(reply, error, what=f"{button} of job {job_id}")
            return None
        if record is None:
            await reply.say(missing)
        return record

    @staticmethod
    def _may_control(interaction: discord.Interaction, record: JobRecord) -> bool:
        permissions = getattr(interaction, "permissions", None)
        moderator = bool(permissions and permissions.manage_messages)
        return may_control(record, interaction.user.id, moderator=moderator)

    # ------------------------------------------------------------------ Delete
    async def delete_pressed(self, interaction: discord.Interaction, job_id: str) -> None:
        """Delete a result: its message, and the job's stored inputs; the record says ``deleted``.

        Only its requester or a member with Manage Messages in the channel; anyone else is refused
        privately. The press is acknowledged without a message (the picture disappearing is the
        answer); a failure to delete is told privately.
        """
        reply = self._reply(interaction)
        record = await self._record_in_time(  # a slow database: acknowledged silently
            interaction, reply, job_id, "the Delete button", acknowledge=lambda: defer_update(interaction)
        )
        if record is None:
            return
        if not self._may_control(interaction, record):
            await reply.say(texts.DELETE_REFUSED_TEXT)
            return
        if not interaction.response.is_done():
            await defer_update(interaction)  # a silent acknowledgement (deferred update)
        told_after_defer = interaction_conversation(interaction, token_seconds=self.token_seconds)
        message = interaction.message
        try:
            if message is not None:
                await message.delete()
        except discord.NotFound:
            pass  # already gone: the inputs still go
        except discord.HTTPException as error:
            log.warning("could not delete the result of job %s: %s", job_id, error.status)
            await told_after_defer.tell(texts.DELETE_FAILED)
            return
        try:
            await self.client.runner.delete(record)
        except Exception:  # the picture is gone; its stored copy still expires with the others
            log.exception("job %s: result deleted, but its inputs or record could not be updated", job_id)
            await told_after_defer.tell(texts.DELETED_BUT_KEPT)
            return
        log.info("job %s: result deleted by user %s", job_id, interaction.user.id)
