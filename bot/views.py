"""The buttons on the bot's messages: Cancel on a progress message, re-runs and Delete on a result.

All are ``DynamicItem``\\s whose ``custom_id`` carries the job id, so they keep working after a
restart. A press is handed to the bot's cog (``NSTBot.stylize_cog``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar

import discord

from .strength import Rerun

if TYPE_CHECKING:
    from .cogs.stylize import StylizeCog


def _cog_of(interaction: discord.Interaction) -> StylizeCog:
    # interaction.client is typed as discord.Client; at run time it is the NSTBot (not imported
    # here: bot.app imports this module through bot.runner).
    cog: StylizeCog | None = getattr(interaction.client, "stylize_cog", None)
    assert cog is not None, "the bot has no stylize cog loaded"
    return cog


class RerunButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"nst:(?P<action>stronger|weaker|reroll):(?P<job_id>[0-9a-f]{8,32})",
):
    """Stronger / Weaker / Re-roll on a result; the job id in ``custom_id`` survives restarts."""

    LABELS: ClassVar[dict[Rerun, str]] = {
        Rerun.STRONGER: "Stronger",
        Rerun.WEAKER: "Weaker",
        Rerun.REROLL: "Re-roll",
    }

    def __init__(self, action: Rerun, job_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                label=self.LABELS[action],
                style=discord.ButtonStyle.secondary,
                custom_id=f"nst:{action.value}:{job_id}",
            )
        )
        self.action = action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, _item: discord.ui.Item[discord.ui.View], match: re.Match[str]
    ) -> RerunButton:
        return cls(Rerun(match["action"]), match["job_id"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await _cog_of(interaction).handle_rerun_button(interaction, self.job_id, self.action)


class CancelButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"nst:cancel:(?P<job_id>[0-9a-f]{8,32})",
):
    """Cancel on a progress message; only the requester or a member with Manage Messages."""

    def __init__(self, job_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                label="Cancel", style=discord.ButtonStyle.danger, custom_id=f"nst:cancel:{job_id}"
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, _item: discord.ui.Item[discord.ui.View], match: re.Match[str]
    ) -> CancelButton:
        return cls(match["job_id"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await _cog_of(interaction).handle_cancel_button(interaction, self.job_id)


class DeleteButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"nst:delete:(?P<job_id>[0-9a-f]{8,32})",
):
    """Delete on a result: removes the message and the job's stored inputs; only the requester or
    a member with Manage Messages in that channel."""

    def __init__(self, job_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                label="Delete", style=discord.ButtonStyle.danger, custom_id=f"nst:delete:{job_id}"
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, _item: discord.ui.Item[discord.ui.View], match: re.Match[str]
    ) -> DeleteButton:
        return cls(match["job_id"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await _cog_of(interaction).handle_delete_button(interaction, self.job_id)


def result_view(job_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for action in (Rerun.STRONGER, Rerun.WEAKER, Rerun.REROLL):
        view.add_item(RerunButton(action, job_id))
    view.add_item(DeleteButton(job_id))
    return view


def cancel_view(job_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job_id))
    return view
