"""The checks the end-to-end suite runs after every test (tests/fakediscord/policy.py), each shown
to flag what it must and to accept what the bot is meant to send, over real HTTP to the fake."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakediscord import FakeDiscord, FakeInteraction
from tests.fakediscord.policy import mention_policy_breaches, refused_bodies

NOBODY: dict[str, Any] = {"parse": [], "users": [], "roles": []}


@pytest.fixture
async def http(fake_discord: FakeDiscord) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"Authorization": f"Bot {fake_discord.token}"}
    async with aiohttp.ClientSession(base_url=fake_discord.base_url, headers=headers) as session:
        yield session


async def post(http: aiohttp.ClientSession, path: str, body: dict[str, Any]) -> int:
    async with http.post(path, json=body) as response:
        return response.status


async def to_channel(fake: FakeDiscord, http: aiohttp.ClientSession, body: dict[str, Any]) -> None:
    assert await post(http, f"/api/v10/channels/{fake.channel.id}/messages", body) == 200


async def answer(
    fake: FakeDiscord, http: aiohttp.ClientSession, interaction: FakeInteraction, body: dict[str, Any]
) -> None:
    """The interaction's first response (type 4), then the same body again as a followup."""
    callback = f"/api/v10/interactions/{interaction.id}/{interaction.token}/callback"
    assert await post(http, callback, {"type": 4, "data": body}) == 204
    assert await post(http, f"/api/v10/webhooks/{fake.application_id}/{interaction.token}", body) == 204


async def test_the_requester_pinged_where_the_text_names_them_passes(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    alice = fake_discord.alice
    interaction = await fake_discord.slash_command("stylize", user=alice)
    pings_alice = {**NOBODY, "users": [str(alice.id)]}
    await answer(
        fake_discord, http, interaction, {"content": f"Done, <@{alice.id}>!", "allowed_mentions": pings_alice}
    )
    await answer(
        fake_discord,
        http,
        await fake_discord.slash_command("stylize"),
        {"content": "Queued.", "allowed_mentions": NOBODY},
    )
    await to_channel(
        fake_discord, http, {"content": f"<@{alice.id}> your painting", "allowed_mentions": pings_alice}
    )
    await to_channel(fake_discord, http, {"content": "@everyone hello", "allowed_mentions": NOBODY})
    assert mention_policy_breaches(fake_discord) == []
    pinged = [m.pings.users for m in fake_discord.channel_messages()]
    assert pinged == [(alice.id,), (alice.id,), (), (), (alice.id,), ()], "only Alice, only where named"


@pytest.mark.parametrize(
    ("allowed", "breach"),
    [
        ({"parse": ["everyone"]}, "parse=['everyone']"),
        ({"parse": ["roles"]}, "parse=['roles']"),
        ({"parse": [], "roles": ["ROLE"]}, "roles=["),
        ({"parse": [], "users": ["BOB"]}, "may ping"),
        (None, "no allowed_mentions"),
    ],
    ids=["everyone", "parse-roles", "a-role-id", "another-user", "missing"],
)
@pytest.mark.parametrize("through", ["interaction", "channel"])
async def test_each_wider_ping_is_flagged(
    fake_discord: FakeDiscord,
    http: aiohttp.ClientSession,
    allowed: dict[str, Any] | None,
    breach: str,
    through: str,
) -> None:
    ids = {"ROLE": str(fake_discord.moderator_role.id), "BOB": str(fake_discord.bob.id)}
    body: dict[str, Any] = {"content": f"Done, <@{fake_discord.alice.id}>!"}
    if allowed is not None:
        body["allowed_mentions"] = {k: [ids.get(v, v) for v in vs] for k, vs in allowed.items()}
    if through == "interaction":
        await answer(fake_discord, http, await fake_discord.slash_command("stylize"), body)
    else:
        await to_channel(fake_discord, http, body)
    breaches = mention_policy_breaches(fake_discord)
    assert any(breach in b for b in breaches), breaches


@pytest.mark.parametrize("through", ["interaction", "channel"])
async def test_naming_the_requester_without_pinging_them_is_flagged(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession, through: str
) -> None:
    body = {"content": f"Done, <@{fake_discord.alice.id}>!", "allowed_mentions": NOBODY}
    if through == "interaction":
        await answer(fake_discord, http, await fake_discord.slash_command("stylize"), body)
    else:
        await to_channel(fake_discord, http, body)
    breaches = mention_policy_breaches(fake_discord)
    assert breaches and all(f"mentions [{fake_discord.alice.id}] without pinging them" in b for b in breaches)


async def test_a_message_that_pinged_everyone_is_flagged_even_when_its_body_looks_clean(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    """The fake's own record of whom a message pinged is checked too, not only the bodies."""
    await to_channel(fake_discord, http, {"content": "@here hi", "allowed_mentions": {"parse": ["everyone"]}})
    fake_discord.requests.clear()
    [message] = fake_discord.channel_messages()
    assert mention_policy_breaches(fake_discord) == [f"message {message.id} pinged everyone or roles"]


async def test_refused_bodies_lists_what_the_fake_refused_but_not_injected_faults(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    path = f"/api/v10/channels/{fake_discord.channel.id}/messages"
    fake_discord.fail(400, "message_create")
    assert await post(http, path, {"content": "fine", "allowed_mentions": NOBODY}) == 400
    assert refused_bodies(fake_discord) == []
    assert await post(http, path, {"content": "x" * 2001, "allowed_mentions": NOBODY}) == 400
    [refusal] = refused_bodies(fake_discord)
    assert refusal.startswith("POST message_create -> 400") and "BASE_TYPE_MAX_LENGTH" in refusal
