"""The happy paths of the real bot over a real discord.py client and the fake Discord."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

from bot.chat.app import NSTBot
from bot.core.requests import JobRequest
from bot.core.requests import style_params as engine_params
from bot.core.settings import Settings
from bot.core.texts import PRIVATE_ANSWER_NOTE
from tests.e2e.conftest import painting, photo, result_file, results, started
from tests.e2e.harness import decode, mean_difference
from tests.fakediscord import FakeDiscord
from tests.helpers.images import content_image


def unweighted_style_loss(bot: NSTBot, message_id: int) -> float:
    """The stored style loss divided by its weight (style_weight x strength multiplier)."""
    record = bot.store.by_result_message(message_id)
    assert record is not None and record.stats is not None
    params = engine_params(bot.settings, JobRequest.from_dict(record.params))
    return record.stats["style_loss"] / (params.style_weight * params.style_strength)


async def test_stylize_with_two_attachments(
    fake_discord: FakeDiscord, stylebot: NSTBot, settings: Settings
) -> None:
    content = photo(fake_discord)
    interaction = await fake_discord.slash_command(
        "stylize", {"content": content, "style": painting(fake_discord)}, user=fake_discord.alice
    )
    [result] = await fake_discord.wait_for(lambda: results(fake_discord), timeout=60)

    assert interaction.response_type == 5, "the command must defer (thinking)"
    assert interaction.responded_at - interaction.dispatched_at < 3
    image = decode(result_file(result))
    assert max(image.size) == settings.sizes[settings.default_size]
    assert mean_difference(image, content_image(48, 40)) > 2, "the result must not be the photo"
    assert fake_discord.alice.mention in result.text()
    assert {b["label"] for b in result.buttons()} == {"Stronger", "Weaker", "Re-roll", "Upscale", "Delete"}
    await fake_discord.wait_for(lambda: fake_discord.bot_user.id in result.reactions.get("💪", []))

    progress = fake_discord.original(interaction)
    assert progress is not None and progress is not result
    painting_edits = [
        r
        for r in progress.revisions
        if r.content.startswith("Painting") and "%)" in r.content and "(100%)" not in r.content
    ]  # the final 100% edit is allowed through
    for earlier, later in itertools.pairwise(painting_edits):
        assert later.at - earlier.at >= settings.progress_interval * 0.9, "progress edits must be throttled"
    assert "Finished" in progress.content and progress.buttons() == []
    assert content.downloads == 1
    assert len(results(fake_discord)) == 1


async def test_preset_path(fake_discord: FakeDiscord, stylebot: NSTBot) -> None:
    await fake_discord.slash_command("stylize", {"content": photo(fake_discord), "preset": "stripes"})
    [result] = await fake_discord.wait_for(lambda: results(fake_discord), timeout=60)
    assert "preset `stripes`" in result.text()
    decode(result_file(result))


async def test_style_and_preset_together_is_refused(fake_discord: FakeDiscord, stylebot: NSTBot) -> None:
    interaction = await fake_discord.slash_command(
        "stylize", {"content": photo(fake_discord), "style": painting(fake_discord), "preset": "stripes"}
    )
    message = await fake_discord.wait_for(lambda: fake_discord.original(interaction))
    assert message.ephemeral and "exactly one" in message.content


#: A content weight that balances the content and style terms on these tiny synthetic images, as
#: neural-style's default weights balance them on photos at 512 px. At the default weight the style
#: term outweighs the content term about 10^4 to 1 here; scaling it then scales nearly the whole
#: loss, to which L-BFGS is blind, and a stronger style would change nothing measurable.
BALANCED_AT_48_PX = {"content_weight": 5000.0}


async def test_reaction_runs_a_stronger_version(
    fake_discord: FakeDiscord, make_settings: Callable[..., Settings]
) -> None:
    async with started(make_settings(engine_params=BALANCED_AT_48_PX), fake_discord) as stylebot:
        await _react_for_a_stronger_version(fake_discord, stylebot)


async def _react_for_a_stronger_version(fake_discord: FakeDiscord, stylebot: NSTBot) -> None:
    await fake_discord.slash_command(
        "stylize", {"content": photo(fake_discord), "style": painting(fake_discord)}
    )
    [first] = await fake_discord.wait_for(lambda: results(fake_discord), timeout=60)
    await fake_discord.wait_for(lambda: not stylebot.queue.jobs())
    await fake_discord.react(first, "💪", user=fake_discord.alice)
    second = (
        await fake_discord.wait_for(
            lambda: len(results(fake_discord)) == 2 and results(fake_discord), timeout=60
        )
    )[1]
    assert "strong" in second.text()
    assert unweighted_style_loss(stylebot, second.id) < unweighted_style_loss(stylebot, first.id)


async def test_buttons_stronger_weaker_reroll(fake_discord: FakeDiscord, stylebot: NSTBot) -> None:
    await fake_discord.slash_command(
        "stylize", {"content": photo(fake_discord), "style": painting(fake_discord)}
    )
    [first] = await fake_discord.wait_for(lambda: results(fake_discord), timeout=60)
    expected = {"Stronger": "strong", "Weaker": "subtle", "Re-roll": "normal"}
    for count, (label, strength) in enumerate(expected.items(), start=2):
        await fake_discord.wait_for(lambda: not stylebot.queue.jobs())
        click = await fake_discord.click(first, label, user=fake_discord.alice)
        latest = (
            await fake_discord.wait_for(
                lambda count=count: len(results(fake_discord)) == count and results(fake_discord),
                timeout=60,
            )
        )[-1]
        record = stylebot.store.by_result_message(latest.id)
        assert record is not None and record.params["strength"] == strength, label
        assert click.response_type == 5
    seeds = [stylebot.store.by_result_message(m.id).params["seed"] for m in results(fake_discord)]
    assert seeds[3] != seeds[0], "Re-roll must use a new seed"


async def test_cancel_button_only_for_requester_or_moderator(
    fake_discord: FakeDiscord, make_settings
) -> None:
    settings = make_settings(iterations=400, progress_interval=0.05)
    async with started(settings, fake_discord) as bot:
        interaction = await fake_discord.slash_command(
            "stylize",
            {"content": photo(fake_discord), "style": painting(fake_discord)},
            user=fake_discord.alice,
        )
        progress = await fake_discord.wait_for(
            lambda: (m := fake_discord.original(interaction)) and m.buttons() and m, timeout=30
        )
        await fake_discord.wait_for(lambda: bot.queue.running == 1, timeout=30)
        refused = await fake_discord.click(progress, "Cancel", user=fake_discord.bob)
        await fake_discord.wait_for(lambda: fake_discord.original(refused))
        assert "Only the person" in fake_discord.original(refused).content
        assert bot.queue.running == 1, "bob must not be able to cancel alice's job"

        allowed = await fake_discord.click(progress, "Cancel", user=fake_discord.moderator)
        await fake_discord.wait_for(lambda: fake_discord.original(allowed))
        await fake_discord.wait_for(lambda: "Cancelled" in progress.content, timeout=30)
        assert results(fake_discord) == []
        # the slot is free again: alice can ask once more
        await fake_discord.wait_for(lambda: bot.queue.running == 0)
        again = await fake_discord.slash_command(
            "stylize",
            {"content": photo(fake_discord), "style": painting(fake_discord)},
            user=fake_discord.alice,
        )
        await fake_discord.wait_for(lambda: again.response_type == 5)


async def test_restart_between_result_and_rerun(fake_discord: FakeDiscord, settings: Settings) -> None:
    async with started(settings, fake_discord):
        await fake_discord.slash_command(
            "stylize", {"content": photo(fake_discord), "style": painting(fake_discord)}
        )
        [first] = await fake_discord.wait_for(lambda: results(fake_discord), timeout=60)
        await fake_discord.wait_for(lambda: "💪" in first.reactions)
    async with started(settings, fake_discord) as second_bot:
        await fake_discord.click(first, "Stronger", user=fake_discord.alice)
        rerun = (
            await fake_discord.wait_for(
                lambda: len(results(fake_discord)) == 2 and results(fake_discord), timeout=60
            )
        )[1]
        assert second_bot.store.by_result_message(rerun.id).params["strength"] == "strong"


async def test_websocket_dropped_mid_job_delivers_once(fake_discord: FakeDiscord, make_settings) -> None:
    async with started(make_settings(iterations=60), fake_discord) as bot:
        await fake_discord.slash_command(
            "stylize", {"content": photo(fake_discord), "style": painting(fake_discord)}
        )
        await fake_discord.wait_for(lambda: bot.queue.running == 1, timeout=30)
        await fake_discord.drop_gateway(abort=True)
        await fake_discord.wait_for(lambda: fake_discord.resumes and fake_discord.connected, timeout=30)
        await fake_discord.wait_for(lambda: results(fake_discord), timeout=60)
        await asyncio.sleep(0.5)
    assert len(results(fake_discord)) == 1
    assert len(fake_discord.identifies) == 1


async def test_progress_edits_are_throttled_and_show_a_preview(
    fake_discord: FakeDiscord, make_settings
) -> None:
    settings = make_settings(iterations=80, progress_interval=0.3, preview_count=1)
    async with started(settings, fake_discord):
        interaction = await fake_discord.slash_command(
            "stylize", {"content": photo(fake_discord), "style": painting(fake_discord)}
        )
        await fake_discord.wait_for(lambda: results(fake_discord), timeout=90)
    progress = fake_discord.original(interaction)
    bars = [r for r in progress.revisions if "%)" in r.content and "(100%)" not in r.content]
    assert len(bars) >= 2, (
        f"a run this long must show progress more than once: {[r.content for r in progress.revisions]}"
    )
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(bars)]
    assert min(gaps) >= settings.progress_interval * 0.9, gaps
    assert any(a.filename.startswith("preview-") for r in progress.revisions for a in r.attachments)
    assert "ETA" in bars[-1].content


async def test_presets_command_shows_the_catalogue_privately(
    fake_discord: FakeDiscord, stylebot: NSTBot
) -> None:
    await fake_discord.slash_command("presets", {}, user=fake_discord.bob)
    [listing] = await fake_discord.wait_for(lambda: [m for m in fake_discord.messages.values() if m.embeds])
    assert listing.ephemeral and listing.visible_to == fake_discord.bob.id
    [embed] = listing.embeds
    assert embed["title"] == "Stripes" and "Test Painter" in embed["description"]
    [thumbnail] = listing.attachments  # a local preset is on disk: it is shown
    assert embed["thumbnail"]["url"] == f"attachment://{thumbnail.filename}"
    decode(thumbnail)


def interaction_requests(fake: FakeDiscord, interaction) -> list[tuple[str, Any]]:
    """(route, detail) of each request made with the interaction's token, in order."""
    found = []
    for record in fake.requests:
        if record.interaction_id != interaction.id or record.status >= 300:
            continue
        body = record.json if isinstance(record.json, dict) else {}
        if record.route == "interaction_callback":
            detail: Any = (body.get("type"), (body.get("data") or {}).get("flags", 0))
        elif record.route == "followup_create":
            detail = body.get("flags", 0)
        else:
            detail = None
        found.append((record.route, detail))
    return found


async def test_a_job_answers_the_thinking_original_then_follows_up_with_the_result(
    fake_discord: FakeDiscord, stylebot: NSTBot
) -> None:
    interaction = await fake_discord.slash_command(
        "stylize", {"content": photo(fake_discord), "style": painting(fake_discord)}
    )
    [result] = await fake_discord.wait_for(lambda: results(fake_discord), timeout=60)
    await fake_discord.wait_for(lambda: "Finished" in fake_discord.original(interaction).content)
    sequence = interaction_requests(fake_discord, interaction)
    # public "thinking…"; the progress message is the original (edited in place); the result is
    # the one followup, public; the original ends with the time taken
    assert sequence[0] == ("interaction_callback", (5, 0))
    assert sequence[1] == ("original_edit", None)
    assert [step for step in sequence if step[0] == "followup_create"] == [("followup_create", 0)]
    assert sequence[-1] == ("original_edit", None)
    assert {route for route, _ in sequence} == {"interaction_callback", "original_edit", "followup_create"}
    assert result.interaction_id == interaction.id and not result.ephemeral
    # the result pings its requester, and only them
    assert result.pings.users == (fake_discord.alice.id,) and not result.pings.roles
    assert fake_discord.original(interaction).pings.users == ()


async def test_a_refusal_after_the_defer_ends_the_original_publicly_and_tells_the_user_privately(
    fake_discord: FakeDiscord, stylebot: NSTBot
) -> None:
    not_an_image = fake_discord.make_attachment(b"not an image", "photo.png", content_type="image/png")
    interaction = await fake_discord.slash_command(
        "stylize", {"content": not_an_image, "style": painting(fake_discord)}, user=fake_discord.bob
    )
    [told] = await fake_discord.wait_for(lambda: fake_discord.find_messages("can't use"))
    assert interaction_requests(fake_discord, interaction) == [
        ("interaction_callback", (5, 0)),
        ("original_edit", None),  # the public "thinking…" becomes a short public line
        ("followup_create", 64),  # the reason, ephemeral
    ]
    original = fake_discord.original(interaction)
    assert not original.deleted and not original.loading and original.content == PRIVATE_ANSWER_NOTE
    assert told.ephemeral and told.visible_to == fake_discord.bob.id and told is not original


async def test_a_refusal_known_up_front_is_the_private_response_itself(
    fake_discord: FakeDiscord, stylebot: NSTBot
) -> None:
    interaction = await fake_discord.slash_command(
        "stylize", {"content": photo(fake_discord), "preset": "no-such-painting"}
    )
    message = await fake_discord.wait_for(lambda: fake_discord.original(interaction))
    assert interaction_requests(fake_discord, interaction) == [("interaction_callback", (4, 64))]
    assert message.ephemeral and "no preset called" in message.content
