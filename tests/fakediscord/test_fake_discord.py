"""The fake Discord proven against a real discord.py client (no bot code involved).

Each test runs a plain ``discord.Client`` / ``commands.Bot`` over a real websocket and HTTP and
checks both sides: what the client observed (events, exceptions) and what the fake recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator

import discord
import pytest
from discord.ext import commands

from tests.fakediscord import FakeDiscord, FakeMessage, WaitTimeout
from tests.fakediscord.fixtures import misuse
from tests.fakediscord.models import new_snowflake


@contextlib.asynccontextmanager
async def running(client: discord.Client, fake: FakeDiscord) -> AsyncIterator[discord.Client]:
    """Run ``client`` against the fake until the block ends, then close it cleanly."""
    task = asyncio.create_task(client.start(fake.token))
    try:
        await asyncio.wait_for(client.wait_until_ready(), timeout=15)
        yield client
    finally:
        await client.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)


def make_bot() -> commands.Bot:
    # guild_ready_timeout only shortens discord.py's wait for further GUILD_CREATEs after READY.
    return commands.Bot(command_prefix="!", intents=discord.Intents.default(), guild_ready_timeout=0.05)


async def test_connects_and_gets_ready_with_the_fake_guild(fake_discord: FakeDiscord) -> None:
    client = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.05)
    async with running(client, fake_discord):
        assert client.user is not None and client.user.id == fake_discord.bot_user.id
        assert client.application_id == fake_discord.application_id
        guild = client.get_guild(fake_discord.guild_id)
        assert guild is not None
        channel = guild.get_channel(fake_discord.channel.id)
        assert isinstance(channel, discord.TextChannel) and channel.name == "general"
        assert guild.me is not None and guild.me.guild_permissions.attach_files
        await fake_discord.wait_for(lambda: fake_discord.connections[0].heartbeats >= 1)

    identify = fake_discord.identifies[0]
    assert identify["token"] == fake_discord.token
    assert identify["intents"] == discord.Intents.default().value
    # discord.py always asks for transport compression; the fake honoured it with a zlib stream.
    assert fake_discord.connections[0].compress == "zlib-stream"
    assert fake_discord.requests_to("users_me")[0].authorization == f"Bot {fake_discord.token}"


async def test_wrong_token_is_refused(fake_discord: FakeDiscord) -> None:
    client = discord.Client(intents=discord.Intents.default())
    with pytest.raises(discord.LoginFailure):
        await client.start("not-the-token")
    await client.close()


async def test_slash_command_deferred_then_followup_with_file(fake_discord: FakeDiscord) -> None:
    bot = make_bot()

    @bot.tree.command(name="flip", description="reverse the bytes of a file")
    async def flip(interaction: discord.Interaction, upload: discord.Attachment, note: str = "") -> None:
        await interaction.response.defer(thinking=True)
        data = await upload.read()
        await interaction.edit_original_response(
            content=f"flipped {upload.filename} {note}",
            attachments=[discord.File(io.BytesIO(data[::-1]), "flipped.bin")],
        )

    async with running(bot, fake_discord):
        synced = await bot.tree.sync()
        assert [c.name for c in synced] == ["flip"]
        options = fake_discord.global_commands[0]["options"]
        assert [(o["name"], o["type"]) for o in options] == [("upload", 11), ("note", 3)]

        upload = fake_discord.make_attachment(b"hello fake", "a.bin")
        interaction = await fake_discord.slash_command("flip", {"upload": upload, "note": "ok"})
        message = await fake_discord.wait_for(
            lambda: (m := fake_discord.original(interaction)) and not m.loading and m.attachments and m
        )

    assert interaction.response_type == 5
    assert message.revisions[0].flags & (1 << 7), "the first state must be 'thinking'"
    assert message.content == "flipped a.bin ok"
    assert message.attachments[0].filename == "flipped.bin"
    assert message.attachments[0].data == b"ekaf olleh"
    assert upload.downloads == 1
    # the edit of @original replaced the thinking message: one message in the channel
    assert len(fake_discord.channel_messages()) == 1
    assert fake_discord.deprecated_flows == []


async def test_followup_straight_after_a_thinking_defer_is_served_but_recorded_as_deprecated(
    fake_discord: FakeDiscord,
) -> None:
    bot = make_bot()

    @bot.tree.command(name="old", description="the deprecated way")
    async def old(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.followup.send("answer", ephemeral=True)

    async with running(bot, fake_discord):
        interaction = await fake_discord.slash_command("old")
        message = await fake_discord.wait_for(
            lambda: (m := fake_discord.original(interaction)) and not m.loading and m
        )
    # Discord: it "will function as Edit Original Interaction Response"; the ephemeral flag is ignored
    assert message.content == "answer" and not message.ephemeral
    assert [r.route for r in fake_discord.deprecated_flows] == ["followup_create"]
    assert "1 deprecated and 0 undocumented" in (misuse(fake_discord) or "")
    fake_discord.deprecated_flows.clear()  # seen and checked: the fixture must not fail the test


async def test_followup_after_deleting_a_thinking_original_is_served_but_recorded_as_undocumented(
    fake_discord: FakeDiscord,
) -> None:
    bot = make_bot()

    @bot.tree.command(name="refuse", description="the undocumented way to refuse privately")
    async def refuse(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.delete_original_response()
        await interaction.followup.send("only you can see this", ephemeral=True)

    async with running(bot, fake_discord):
        interaction = await fake_discord.slash_command("refuse")
        [followup] = await fake_discord.wait_for(
            lambda: [m for m in fake_discord.messages_for(interaction) if m.content] or None
        )
    # Discord does not document this (discord-api-docs#2739 reports 10008): the fake serves it ...
    assert followup.content == "only you can see this" and followup.ephemeral
    assert interaction.original_deleted_while_loading
    assert [r.route for r in fake_discord.undocumented_flows] == ["followup_create"]
    assert fake_discord.undocumented_flows[0].message_id == followup.id
    # ... and the fixture fails any test that relies on it
    assert "0 deprecated and 1 undocumented" in (misuse(fake_discord) or "")
    fake_discord.undocumented_flows.clear()  # seen and checked: the fixture must not fail the test
    assert misuse(fake_discord) is None


@pytest.mark.parametrize("abort", [False, True], ids=["close-4000", "tcp-cut"])
async def test_dropped_websocket_resumes_and_replays_missed_events(
    fake_discord: FakeDiscord, abort: bool
) -> None:
    bot = make_bot()
    resumed = asyncio.Event()
    answered: list[int] = []

    @bot.event
    async def on_resumed() -> None:
        resumed.set()

    @bot.tree.command(name="ping", description="pong")
    async def ping(interaction: discord.Interaction) -> None:
        answered.append(interaction.id)
        await interaction.response.send_message("pong")

    async with running(bot, fake_discord):
        session_id = fake_discord.current_session.session_id
        await fake_discord.drop_gateway(abort=abort)
        # dispatched while the client is (most likely) still reconnecting: buffered, then replayed
        interaction = await fake_discord.slash_command("ping")
        await asyncio.wait_for(resumed.wait(), timeout=10)
        await fake_discord.wait_for(lambda: interaction.response_type is not None)

    assert len(fake_discord.identifies) == 1, "a drop must be resumed, not re-identified"
    assert fake_discord.resumes[0]["session_id"] == session_id
    assert answered == [interaction.id], "the missed command must be delivered exactly once"
    assert fake_discord.original(interaction).content == "pong"


async def test_refused_resume_makes_the_client_identify_again(fake_discord: FakeDiscord) -> None:
    client = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.05)
    async with running(client, fake_discord):
        fake_discord.invalidate_sessions()
        await fake_discord.drop_gateway()
        await fake_discord.wait_for(
            lambda: len(fake_discord.identifies) == 2 and fake_discord.connected, timeout=15
        )
    assert fake_discord.invalid_sessions_sent == 1


async def test_429_is_retried_after_retry_after_and_500_is_retried(fake_discord: FakeDiscord) -> None:
    bot = make_bot()

    @bot.tree.command(name="work", description="defer, edit, follow up")
    async def work(interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        await interaction.edit_original_response(content="working")
        await interaction.followup.send("done")

    fake_discord.fail(429, "original_edit", retry_after=0.3)
    fake_discord.fail(500, "followup_create")
    async with running(bot, fake_discord):
        interaction = await fake_discord.slash_command("work")
        await fake_discord.wait_for(lambda: len(fake_discord.messages_for(interaction)) == 2, timeout=15)

    edits = fake_discord.requests_to("original_edit")
    assert [r.status for r in edits] == [429, 200]
    assert edits[1].at - edits[0].at >= 0.25, "discord.py must wait retry_after before retrying"
    assert [r.status for r in fake_discord.requests_to("followup_create")] == [500, 200]
    texts = [m.content for m in fake_discord.messages_for(interaction)]
    assert texts == ["working", "done"]


async def test_upload_over_the_limit_gets_413(fake_discord: FakeDiscord) -> None:
    bot = make_bot()
    errors: list[discord.HTTPException] = []

    @bot.tree.command(name="big", description="upload too much")
    async def big(interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        try:
            await interaction.edit_original_response(
                attachments=[discord.File(io.BytesIO(b"x" * 5000), "big.bin")]
            )
        except discord.HTTPException as error:
            errors.append(error)
            # the limit is per file: two files, each under it, together over it, are taken
            await interaction.edit_original_response(
                attachments=[discord.File(io.BytesIO(b"x" * 600), f"small{i}.bin") for i in range(2)]
            )

    fake_discord.upload_limit = 1000
    async with running(bot, fake_discord):
        interaction = await fake_discord.slash_command("big")
        assert interaction.payload["attachment_size_limit"] == 1000
        message = await fake_discord.wait_for(
            lambda: (m := fake_discord.original(interaction)) and m.attachments and m
        )

    assert [(e.status, e.code) for e in errors] == [(413, 40005)]
    assert [a.filename for a in message.attachments] == ["small0.bin", "small1.bin"]


async def test_expired_token_fails_webhook_calls_and_the_channel_still_works(
    fake_discord: FakeDiscord,
) -> None:
    bot = make_bot()
    go_on = asyncio.Event()
    errors: list[discord.HTTPException] = []

    @bot.tree.command(name="slow", description="outlive the token")
    async def slow(interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        await go_on.wait()
        try:
            await interaction.edit_original_response(content="finished")
        except discord.HTTPException as error:
            errors.append(error)
            await interaction.channel.send(f"{interaction.user.mention} finished (in the channel)")

    async with running(bot, fake_discord):
        interaction = await fake_discord.slash_command("slow", user=fake_discord.bob)
        await fake_discord.wait_for(lambda: interaction.response_type == 5)
        fake_discord.expire_interaction(interaction)
        go_on.set()
        found = await fake_discord.wait_for(lambda: fake_discord.find_messages("in the channel"))

    assert [(e.status, e.code) for e in errors] == [(401, 50027)]
    assert fake_discord.bob.mention in found[0].content
    assert fake_discord.original(interaction).loading, "the thinking message never got its answer"


async def test_late_acknowledgement_is_unknown_interaction(fake_discord: FakeDiscord) -> None:
    bot = make_bot()
    errors: list[discord.HTTPException] = []

    @bot.tree.command(name="late", description="too slow to answer")
    async def late(interaction: discord.Interaction) -> None:
        await asyncio.sleep(0.3)
        try:
            await interaction.response.defer()
        except discord.NotFound as error:
            errors.append(error)

    fake_discord.ack_deadline = 0.1
    async with running(bot, fake_discord):
        await fake_discord.slash_command("late")
        await fake_discord.wait_for(lambda: errors)
    assert errors[0].code == 10062


class PressView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=None)
        self.pressed_by: list[int] = []

    @discord.ui.button(label="Press", custom_id="test:press", style=discord.ButtonStyle.primary)
    async def press(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.pressed_by.append(interaction.user.id)
        manage = interaction.permissions.manage_messages
        await interaction.response.edit_message(content=f"pressed by {interaction.user.name} manage={manage}")


async def test_buttons_reactions_and_permissions(fake_discord: FakeDiscord) -> None:
    bot = make_bot()
    view = PressView()
    reactions: list[tuple[int, str, bool]] = []

    @bot.event
    async def on_raw_reaction_add(payload: discord.RawReactionActionEvent) -> None:
        can_manage = bool(payload.member and payload.member.guild_permissions.manage_messages)
        reactions.append((payload.user_id, str(payload.emoji), can_manage))

    async with running(bot, fake_discord):
        bot.add_view(view)
        channel = bot.get_channel(fake_discord.channel.id)
        sent = await channel.send("press me", view=view)
        await sent.add_reaction("💪")
        message = fake_discord.messages[sent.id]
        assert message.button("press")["custom_id"] == "test:press"

        await fake_discord.click(message, "Press", user=fake_discord.moderator)
        await fake_discord.wait_for(lambda: "pressed by mod" in message.content)
        await fake_discord.react(message, "💪", user=fake_discord.bob)
        await fake_discord.wait_for(lambda: len(reactions) == 2)

    assert message.content == "pressed by mod manage=True"
    assert view.pressed_by == [fake_discord.moderator.id]
    # Discord echoes the bot's own reaction; a bot has to tell it apart from a user's
    assert reactions == [(fake_discord.bot_user.id, "💪", False), (fake_discord.bob.id, "💪", False)]
    assert message.reactions["💪"] == [fake_discord.bot_user.id, fake_discord.bob.id]


async def test_reactions_need_the_intent(fake_discord: FakeDiscord) -> None:
    intents = discord.Intents.default()
    intents.guild_reactions = False
    client = discord.Client(intents=intents, guild_ready_timeout=0.05)
    seen: list[int] = []

    @client.event
    async def on_raw_reaction_add(payload: discord.RawReactionActionEvent) -> None:
        seen.append(payload.user_id)

    async with running(client, fake_discord):
        sent = await client.get_channel(fake_discord.channel.id).send("hi")
        await fake_discord.react(fake_discord.messages[sent.id], "💪", user=fake_discord.alice)
        await asyncio.sleep(0.2)
    assert seen == []


async def test_wait_for_times_out_with_a_readable_summary(fake_discord: FakeDiscord) -> None:
    with pytest.raises(WaitTimeout, match="recent requests"):
        await fake_discord.wait_for(lambda: False, timeout=0.1, message="nothing will happen")


async def test_ephemeral_reply_is_visible_only_to_its_user(fake_discord: FakeDiscord) -> None:
    bot = make_bot()

    @bot.tree.command(name="secret", description="ephemeral")
    async def secret(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("only you", ephemeral=True)

    async with running(bot, fake_discord):
        interaction = await fake_discord.slash_command("secret", user=fake_discord.alice)
        await fake_discord.wait_for(lambda: fake_discord.original(interaction))
    message = fake_discord.original(interaction)
    assert message.ephemeral
    assert message in fake_discord.visible_to(fake_discord.alice)
    assert message not in fake_discord.visible_to(fake_discord.bob)


async def test_enforced_rate_limits_slow_the_client_without_losing_messages(
    fake_discord: FakeDiscord,
) -> None:
    client = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.05)
    fake_discord.enforce_rate_limits(requests=3, seconds=0.5)
    async with running(client, fake_discord):
        channel = client.get_channel(fake_discord.channel.id)
        started = asyncio.get_running_loop().time()
        await asyncio.gather(*(channel.send(f"message {i}") for i in range(8)))
        elapsed = asyncio.get_running_loop().time() - started

    contents = sorted(m.content for m in fake_discord.channel_messages())
    assert contents == sorted(f"message {i}" for i in range(8))
    assert elapsed >= 0.9, "8 messages at 3 per 0.5 s need at least two waits"
    created = fake_discord.requests_to("message_create")
    assert sum(r.status == 200 for r in created) == 8


async def test_subcommands_channel_options_and_who_is_offered_a_command(fake_discord: FakeDiscord) -> None:
    bot = make_bot()
    group = discord.app_commands.Group(
        name="cfg",
        description="settings",
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )
    seen: list[tuple[int, int, bool]] = []

    @group.command(name="where", description="pick a channel")
    async def where(interaction: discord.Interaction, channel: discord.TextChannel) -> None:
        seen.append((interaction.user.id, channel.id, interaction.permissions.manage_guild))
        await interaction.response.send_message(f"#{channel.name}", ephemeral=True)

    bot.tree.add_command(group)
    art = fake_discord.add_channel("art")
    async with running(bot, fake_discord):
        await bot.tree.sync()
        [registered] = fake_discord.global_commands
        assert registered["default_member_permissions"] == "32", "Discord keeps permissions as a string"
        answer = await fake_discord.slash_command("cfg where", {"channel": art}, user=fake_discord.admin)
        await fake_discord.wait_for(lambda: fake_discord.original(answer))
        # Discord offers it to no one else in the server, unless its admins grant it (an override)...
        with pytest.raises(AssertionError, match="does not offer /cfg to bob"):
            await fake_discord.slash_command("cfg where", {"channel": art}, user=fake_discord.bob)
        fake_discord.command_overrides["cfg"] = {fake_discord.bob.id}
        granted = await fake_discord.slash_command("cfg where", {"channel": art}, user=fake_discord.bob)
        await fake_discord.wait_for(lambda: fake_discord.original(granted))
        # ...and nowhere in DMs
        with pytest.raises(AssertionError, match="does not offer /cfg in DMs"):
            await fake_discord.slash_command(
                "cfg where", {"channel": art}, channel=fake_discord.dm_channel(fake_discord.admin)
            )
        with pytest.raises(AssertionError, match="no subcommand"):
            await fake_discord.slash_command("cfg nowhere", {}, user=fake_discord.admin)
    assert fake_discord.original(answer).content == "#art"
    assert seen == [(fake_discord.admin.id, art.id, True), (fake_discord.bob.id, art.id, False)]


async def test_a_dm_interaction_has_a_user_and_no_guild(fake_discord: FakeDiscord) -> None:
    bot = make_bot()
    seen: list[tuple[object, object, object]] = []

    @bot.tree.command(name="hello", description="anywhere")
    async def hello(interaction: discord.Interaction) -> None:
        seen.append((interaction.guild_id, interaction.user.id, type(interaction.user)))
        await interaction.response.send_message("hi", ephemeral=True)

    async with running(bot, fake_discord):
        dm = fake_discord.dm_channel(fake_discord.alice)
        interaction = await fake_discord.slash_command("hello", {}, channel=dm)
        message = await fake_discord.wait_for(lambda: fake_discord.original(interaction))
    assert seen == [(None, fake_discord.alice.id, discord.User)]
    assert "member" not in interaction.payload and interaction.payload["context"] == 1
    assert message.ephemeral and message.channel_id == dm.id


async def test_deleting_a_message_needs_manage_messages_unless_it_is_the_bots(
    fake_discord: FakeDiscord,
) -> None:
    client = discord.Client(intents=discord.Intents.default(), guild_ready_timeout=0.05)
    deleted: list[int] = []

    @client.event
    async def on_raw_message_delete(payload: discord.RawMessageDeleteEvent) -> None:
        deleted.append(payload.message_id)

    async with running(client, fake_discord):
        channel = client.get_channel(fake_discord.channel.id)
        own = await channel.send("mine")
        await own.delete()
        await fake_discord.wait_for(lambda: deleted == [own.id])
        others = FakeMessage(id=new_snowflake(), channel_id=channel.id, author_id=fake_discord.alice.id)
        fake_discord.messages[others.id] = others  # alice's message
        with pytest.raises(discord.Forbidden):
            await channel.get_partial_message(others.id).delete()
    assert fake_discord.messages[own.id].deleted and not others.deleted
