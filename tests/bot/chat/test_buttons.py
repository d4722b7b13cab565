"""The job buttons: a custom id carries the action and the job; a press reaches the bot's
controls through its typed ``buttons`` attribute, and nothing else."""

from __future__ import annotations

import re
from unittest.mock import AsyncMock, MagicMock

import discord
import pytest

from bot.chat.buttons import CancelButton, DeleteButton, RerunButton, cancel_view, result_view
from bot.core.strength import Rerun
from tests.bot.conftest import make_interaction


def _pressed(item: discord.ui.DynamicItem, custom_id: str) -> re.Match[str]:
    match = item.__discord_ui_compiled_template__.fullmatch(custom_id)
    assert match is not None, custom_id
    return match


async def test_each_button_reaches_its_handler_through_the_bots_typed_attribute(make_bot) -> None:
    bot = await make_bot()
    bot.buttons = MagicMock()
    for name in ("rerun_pressed", "cancel_pressed", "delete_pressed"):
        setattr(bot.buttons, name, AsyncMock())
    job_id = "0123456789abcdef"
    views = [*result_view(job_id).children, *cancel_view(job_id).children]
    custom_ids = [item.custom_id for item in views]
    assert custom_ids == [f"nst:{a}:{job_id}" for a in ("stronger", "weaker", "reroll", "delete", "cancel")]
    interaction = make_interaction()
    interaction.client = bot
    for cls, custom_id in [
        (RerunButton, custom_ids[1]),
        (DeleteButton, custom_ids[3]),
        (CancelButton, custom_ids[4]),
    ]:
        button = await cls.from_custom_id(interaction, MagicMock(), _pressed(cls, custom_id))
        await button.callback(interaction)
    bot.buttons.rerun_pressed.assert_awaited_once_with(interaction, job_id, Rerun.WEAKER)
    bot.buttons.delete_pressed.assert_awaited_once_with(interaction, job_id)
    bot.buttons.cancel_pressed.assert_awaited_once_with(interaction, job_id)


async def test_a_press_on_another_client_is_an_error_not_a_lookup() -> None:
    interaction = make_interaction()
    interaction.client = MagicMock(spec=discord.Client)
    button = CancelButton("0123456789abcdef")
    with pytest.raises(TypeError, match="not the painting bot"):
        await button.callback(interaction)
