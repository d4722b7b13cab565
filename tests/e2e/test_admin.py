"""Server admins' controls through the real bot: /nst-admin, the rules it sets, Delete, and DMs."""

from __future__ import annotations

from collections.abc import Callable

import discord
import pytest

from bot.chat.app import NSTBot
from bot.core.records import JobStatus
from bot.core.settings import Settings
from bot.core.texts import DELETE_REFUSED_TEXT, DM_TEXT, NEEDS_MANAGE_SERVER, REQUESTER_ONLY_TEXT
from tests.e2e.conftest import TEST_SIZES, painting, photo, results, started
from tests.e2e.harness import decode, files_under
from tests.fakediscord import FakeDiscord, FakeInteraction, FakeMessage, FakeUser
from tests.fakediscord.models import FakeChannel


async def sync_to_guild(bot: NSTBot, fake: FakeDiscord) -> None:
    """Register the commands in the fake's guild, as ``nst-bot sync --guild`` does."""
    guild = discord.Object(id=fake.guild_id)
    bot.tree.copy_global_to(guild=guild)
    await bot.tree.sync(guild=guild)


async def private_answer(fake: FakeDiscord, interaction: FakeInteraction) -> FakeMessage:
    """The interaction's answer, which must be private to its user and given at once (type 4)."""
    message = await fake.wait_for(lambda: fake.original(interaction), timeout=30)
    assert interaction.response_type == 4 and message.ephemeral, fake.describe()
    assert message.visible_to == interaction.user.id
    return message


async def admin(
    fake: FakeDiscord, command: str, options: dict | None = None, *, user: FakeUser | None = None
):
    interaction = await fake.slash_command(f"nst-admin {command}", options or {}, user=user or fake.admin)
    return await private_answer(fake, interaction)


async def paint(
    fake: FakeDiscord, user: FakeUser, channel: FakeChannel | None = None, **options
) -> FakeMessage:
    before = len(results(fake))
    await fake.slash_command(
        "stylize",
        {"content": photo(fake), "style": painting(fake), **options},
        user=user,
        channel=channel,
    )
    return (await fake.wait_for(lambda: len(results(fake)) > before and results(fake), timeout=60))[-1]


def spoilers(fake: FakeDiscord) -> list[FakeMessage]:
    """Results posted as spoilers (``results`` lists the others)."""
    return [
        m
        for m in fake.messages.values()
        if not m.deleted and any(a.filename.startswith("SPOILER_stylized-") for a in m.attachments)
    ]


def public_with(fake: FakeDiscord, text: str) -> list[FakeMessage]:
    return [m for m in fake.channel_messages(include_ephemeral=False) if text in m.content]


async def idle(fake: FakeDiscord, bot: NSTBot) -> None:
    await fake.wait_for(lambda: not bot.queue.jobs(), timeout=60)


async def test_settings_are_for_managers_only_shown_privately_and_survive_a_restart(
    fake_discord: FakeDiscord, settings: Settings
) -> None:
    fake = fake_discord
    art = fake.add_channel("art")
    closed = fake.add_channel("announcements", bot_can_send=False)
    async with started(settings, fake) as bot:
        await sync_to_guild(bot, fake)
        [registered] = [c for c in fake.guild_commands[fake.guild_id] if c["name"] == "nst-admin"]
        assert registered["default_member_permissions"] == str(1 << 5), "Manage Server"
        assert registered["contexts"] == [0] and registered["dm_permission"] is False
        with pytest.raises(AssertionError, match="does not offer"):  # Discord hides it from alice
            await fake.slash_command("nst-admin show", {}, user=fake.alice)

        shown = await admin(fake, "show")
        assert "every channel" in shown.content and f"large ({TEST_SIZES['large']} px)" in shown.content
        assert "Results as spoilers: off" in shown.content
        saved = await admin(fake, "channels add", {"channel": art})
        assert saved.content.startswith("Saved.") and f"<#{art.id}>" in saved.content
        assert "Note" not in saved.content
        saved = await admin(fake, "channels add", {"channel": closed})
        assert (
            f"to post pictures in <#{closed.id}> I need Send Messages, Attach Files, Embed Links"
            in saved.content
        )
        await admin(fake, "channels remove", {"channel": closed})
        await admin(fake, "max-size", {"size": "small"})
        await admin(fake, "reruns", {"who": "requester"})
        await admin(fake, "spoilers", {"enabled": True})

        # A server admin may grant the command to anyone (Integrations settings); the bot still
        # asks for Manage Server.
        fake.command_overrides["nst-admin"] = {fake.bob.id}
        refused = await admin(fake, "spoilers", {"enabled": False}, user=fake.bob)
        assert refused.content == NEEDS_MANAGE_SERVER
    async with started(settings, fake):
        shown = await admin(fake, "show")
    assert f"Channels I paint in: <#{art.id}>" in shown.content
    assert f"Largest size: small ({TEST_SIZES['small']} px)" in shown.content
    assert "re-run someone else's picture: only the person who asked" in shown.content
    assert "Results as spoilers: on" in shown.content
    assert all(m.ephemeral for m in fake.messages.values()), "settings leave no public trace"


async def test_channels_size_and_spoilers_apply_to_commands_buttons_and_reactions(
    fake_discord: FakeDiscord, settings: Settings
) -> None:
    fake = fake_discord
    art = fake.add_channel("art")
    async with started(settings, fake) as bot:
        first = await paint(fake, fake.alice)  # in #general, before any rule
        await idle(fake, bot)
        await admin(fake, "channels add", {"channel": art})
        await admin(fake, "max-size", {"size": "small"})
        await admin(fake, "spoilers", {"enabled": True})

        # elsewhere: refused privately, at once, naming the allowed channel, nothing downloaded
        content = photo(fake)
        elsewhere = await fake.slash_command(
            "stylize", {"content": content, "style": painting(fake)}, user=fake.bob
        )
        refused = await private_answer(fake, elsewhere)
        assert "don't paint in this channel" in refused.content and f"<#{art.id}>" in refused.content
        assert content.downloads == 0
        click = await fake.click(first, "Stronger", user=fake.alice)
        assert "don't paint in this channel" in (await private_answer(fake, click)).content
        await fake.react(first, "💪", user=fake.alice)
        [notice] = await fake.wait_for(lambda: public_with(fake, "don't paint in this channel"), timeout=30)
        assert fake.alice.mention in notice.content  # a reaction has no private answer

        # in #art: a size over the server's largest is refused before download...
        large = photo(fake)
        too_big = await fake.slash_command(
            "stylize", {"content": large, "style": painting(fake), "size": "large"}, channel=art
        )
        assert "up to small" in (await private_answer(fake, too_big)).content and large.downloads == 0
        # ...and the default size is brought down to it; the result is a spoiler
        await fake.slash_command("stylize", {"content": photo(fake), "style": painting(fake)}, channel=art)
        [spoiler] = await fake.wait_for(lambda: spoilers(fake), timeout=60)
        assert fake.channels[spoiler.channel_id] is art
        [file] = spoiler.attachments
        assert file.filename.startswith("SPOILER_stylized-")
        assert max(decode(file).size) == TEST_SIZES["small"]
    assert results(fake) == [first], "no re-run may have started in #general"


async def test_only_the_requester_may_rerun_when_the_server_says_so(
    fake_discord: FakeDiscord, make_settings: Callable[..., Settings]
) -> None:
    fake = fake_discord
    async with started(make_settings(), fake) as bot:
        first = await paint(fake, fake.alice)
        await idle(fake, bot)
        await admin(fake, "reruns", {"who": "requester"})
        click = await fake.click(first, "Stronger", user=fake.bob)
        assert (await private_answer(fake, click)).content == REQUESTER_ONLY_TEXT
        await fake.react(first, "💪", user=fake.bob)
        [notice] = await fake.wait_for(lambda: public_with(fake, REQUESTER_ONLY_TEXT), timeout=30)
        assert fake.bob.mention in notice.content
        # the requester's own re-run goes, with the server's largest size and spoilers as set now
        await admin(fake, "max-size", {"size": "small"})
        await admin(fake, "spoilers", {"enabled": True})
        await fake.click(first, "Stronger", user=fake.alice)
        [second] = await fake.wait_for(lambda: spoilers(fake), timeout=60)
        record = bot.store.by_result_message(second.id)
        assert record.user_id == fake.alice.id and record.params["strength"] == "strong"
        assert max(decode(second.attachments[0]).size) == TEST_SIZES["small"]
    assert results(fake) == [first]


async def test_delete_button_after_a_restart_removes_the_result_and_its_inputs(
    fake_discord: FakeDiscord, settings: Settings
) -> None:
    fake = fake_discord
    async with started(settings, fake) as bot:
        result = await paint(fake, fake.alice)
        assert "Delete" in {b["label"] for b in result.buttons()}
        job_id = bot.store.by_result_message(result.id).job_id
    assert files_under(settings.inputs_dir), "the inputs are kept for re-runs"
    async with started(settings, fake) as bot:
        refused = await fake.click(result, "Delete", user=fake.bob)
        assert (await private_answer(fake, refused)).content == DELETE_REFUSED_TEXT
        assert not result.deleted
        pressed = await fake.click(result, "Delete", user=fake.alice)
        await fake.wait_for(lambda: bot.store.get(job_id).status is JobStatus.DELETED, timeout=30)
        record = bot.store.get(job_id)
        assert pressed.response_type == 6, "acknowledged without a message of its own"
    assert result.deleted and results(fake) == []
    assert record.expired and record.content_path is None
    assert not files_under(settings.inputs_dir), "the stored inputs go with the result"


async def test_direct_messages_get_a_clear_answer_and_the_commands_are_registered_for_servers(
    fake_discord: FakeDiscord, stylebot: NSTBot
) -> None:
    fake = fake_discord
    dm = fake.dm_channel(fake.alice)
    # An older registration that still allowed DMs (the fake then offers every command there).
    content = photo(fake)
    for name, options in (
        ("stylize", {"content": content, "style": painting(fake)}),
        ("presets", {}),
        ("nst-admin show", {}),
    ):
        interaction = await fake.slash_command(name, options, user=fake.alice, channel=dm)
        assert (await private_answer(fake, interaction)).content == DM_TEXT, name
    assert content.downloads == 0
    await stylebot.tree.sync()
    assert {c["name"]: c["contexts"] for c in fake.global_commands} == {
        "stylize": [0],
        "presets": [0],
        "Stylize with preset\u2026": [0],
        "nst-admin": [0],
    }
    with pytest.raises(AssertionError, match="does not offer /stylize in DMs"):
        await fake.slash_command("stylize", {"content": photo(fake), "style": painting(fake)}, channel=dm)
