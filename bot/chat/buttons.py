"""The buttons on a job's messages: Cancel on a progress message, re-runs, Upscale and Delete on a
result.

All are ``DynamicItem``\\s whose ``custom_id`` carries the job id, so they keep working after a
restart. A press is handed to the bot's ``buttons`` (:class:`~bot.chat.client.ButtonActions`,
implemented by :class:`~bot.chat.controls.JobControls`). A new button is a class here, a method on
``ButtonActions`` and ``JobControls``, and a line in ``NSTBot.load_commands``.
"""

from __future__ import annotations

import re
from typing import ClassVar

import discord

from ..core.strength import Rerun
from .client import painting_client


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
        await painting_client(interaction).buttons.rerun_pressed(interaction, self.job_id, self.action)


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
        await painting_client(interaction).buttons.cancel_pressed(interaction, self.job_id)


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
        await painting_client(interaction).buttons.delete_pressed(interaction, self.job_id)


class UpscaleButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"nst:upscale:(?P<job_id>[0-9a-f]{8,32})",
):
    """Upscale on a result: paints it at twice its size (up to the server's largest upscale),
    continuing from the picture; who may press it follows the re-run rules."""

    def __init__(self, job_id: str) -> None:
        super().__init__(
            discord.ui.Button(
                label="Upscale", style=discord.ButtonStyle.primary, custom_id=f"nst:upscale:{job_id}"
            )
        )
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, _item: discord.ui.Item[discord.ui.View], match: re.Match[str]
    ) -> UpscaleButton:
        return cls(match["job_id"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await painting_client(interaction).buttons.upscale_pressed(interaction, self.job_id)


def result_view(job_id: str, *, upscale: bool = False) -> discord.ui.View:
    """A result's buttons; ``upscale``: with Upscale (the picture is under the largest upscale)."""
    view = discord.ui.View(timeout=None)
    for action in (Rerun.STRONGER, Rerun.WEAKER, Rerun.REROLL):
        view.add_item(RerunButton(action, job_id))
    if upscale:
        view.add_item(UpscaleButton(job_id))
    view.add_item(DeleteButton(job_id))
    return view


def cancel_view(job_id: str) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(CancelButton(job_id))
    return view
