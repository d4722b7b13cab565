"""The fake refuses what Discord refuses, in Discord's words, and takes every valid shape.

Two layers: the checks themselves (:mod:`tests.fakediscord.limits`), one limit at a time just over
and exactly at the edge; then the HTTP answers (status, JSON code, ``errors`` object, headers)
through real requests to a running fake.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakediscord import FakeDiscord, FakeInteraction
from tests.fakediscord import limits as L


def codes(problems: list[L.Problem]) -> set[tuple[tuple[str | int, ...], str]]:
    return {(p.path, p.code) for p in problems}


def button(**changes: Any) -> dict[str, Any]:
    """A secondary button; a change to None leaves that key out."""
    fields = {"type": 2, "style": 2, "label": "Go", "custom_id": "go", **changes}
    return {key: value for key, value in fields.items() if value is not None}


def row(*children: dict[str, Any]) -> dict[str, Any]:
    return {"type": 1, "components": list(children)}


def select(options: int | list[dict[str, Any]] = 3, **changes: Any) -> dict[str, Any]:
    if isinstance(options, int):
        options = [{"label": f"o{i}", "value": f"v{i}"} for i in range(options)]
    return {"type": 3, "custom_id": "pick", "options": options, **changes}


def command(**changes: Any) -> dict[str, Any]:
    return {"name": "stylize", "description": "Paint", "type": 1, **changes}


def option(name: str = "photo", required: bool = True, **changes: Any) -> dict[str, Any]:
    return {"name": name, "description": "d", "type": 3, "required": required, **changes}


# ------------------------------------------------------------------------------ messages
def test_content_up_to_2000_characters() -> None:
    assert L.check_message({"content": "x" * 2000}) == []
    assert codes(L.check_message({"content": "x" * 2001})) == {(("content",), "BASE_TYPE_MAX_LENGTH")}


def test_empty_message_is_detected_and_anything_visible_is_not_empty() -> None:
    assert L.is_empty_message({}, file_count=0)
    assert L.is_empty_message({"content": "  ", "embeds": [], "components": []}, file_count=0)
    for body in ({"content": "a"}, {"embeds": [{"title": "t"}]}, {"components": [row(button())]}):
        assert not L.is_empty_message(body, file_count=0), body
    assert not L.is_empty_message({}, file_count=1)


@pytest.mark.parametrize(
    ("embed", "path"),
    [
        ({"title": "t" * 257}, ("embeds", 0, "title")),
        ({"description": "d" * 4097}, ("embeds", 0, "description")),
        ({"fields": [{"name": "n", "value": "v"}] * 26}, ("embeds", 0, "fields")),
        ({"fields": [{"name": "n" * 257, "value": "v"}]}, ("embeds", 0, "fields", 0, "name")),
        ({"fields": [{"name": "n", "value": "v" * 1025}]}, ("embeds", 0, "fields", 0, "value")),
        ({"fields": [{"name": "n", "value": ""}]}, ("embeds", 0, "fields", 0, "value")),
        ({"footer": {"text": "f" * 2049}}, ("embeds", 0, "footer", "text")),
        ({"author": {"name": "a" * 257}}, ("embeds", 0, "author", "name")),
    ],
    ids=["title", "description", "26-fields", "field-name", "field-value", "empty-field", "footer", "author"],
)
def test_each_embed_limit(embed: dict[str, Any], path: tuple[Any, ...]) -> None:
    assert path in {p.path for p in L.check_message({"embeds": [embed]})}


def test_embeds_at_their_limits_are_taken() -> None:
    embed = {
        "title": "t" * 256,
        "description": "d" * 1000,
        "fields": [{"name": "n" * 10, "value": "v" * 100}] * 25,
        "footer": {"text": "f" * 100},
        "author": {"name": "a" * 256},
    }
    assert L.embed_characters(embed) == 256 + 1000 + 25 * 110 + 100 + 256
    assert L.check_message({"embeds": [embed]}) == []


def test_6000_characters_across_all_embeds_and_10_embeds() -> None:
    half = {"description": "d" * 3000}
    assert L.check_message({"embeds": [half, half]}) == []
    over = L.check_message({"embeds": [half, half, {"title": "x"}]})
    assert codes(over) == {(("embeds",), "MAX_EMBED_SIZE_EXCEEDED")}
    assert L.check_message({"embeds": [{"title": "t"}] * 10}) == []
    assert codes(L.check_message({"embeds": [{"title": "t"}] * 11})) == {
        (("embeds",), "BASE_TYPE_MAX_LENGTH")
    }


def test_file_count_is_at_most_10() -> None:
    assert L.check_message({"content": "a"}, file_count=10) == []
    assert codes(L.check_message({"content": "a"}, file_count=11)) == {(("files",), "BASE_TYPE_MAX_LENGTH")}


# ------------------------------------------------------------------------------ components
def test_valid_component_shapes_are_taken() -> None:
    rows = [
        row(*(button(style=style, custom_id=f"b{style}") for style in (1, 2, 3, 4))),
        row(button(style=5, url="https://example.com", custom_id=None)),
        row(select(options=25, placeholder="p" * 150, min_values=1, max_values=25)),
        row(
            button(custom_id="x" * 100, label="l" * 80),
            button(custom_id="e", label=None, emoji={"name": "💪"}),
        ),
        row(button(style=6, sku_id="1", custom_id=None, label=None)),
    ]
    assert L.check_components(rows) == []


@pytest.mark.parametrize(
    ("rows", "path", "code"),
    [
        ([row(button(style=9))], ("components", 0, "components", 0, "style"), "BASE_TYPE_CHOICES"),
        ([row(button(style=0))], ("components", 0, "components", 0, "style"), "BASE_TYPE_CHOICES"),
        (
            [row(button(custom_id="x" * 101))],
            ("components", 0, "components", 0, "custom_id"),
            "BASE_TYPE_BAD_LENGTH",
        ),
        (
            [row(button(custom_id=None))],
            ("components", 0, "components", 0, "custom_id"),
            "BASE_TYPE_REQUIRED",
        ),
        ([row(button(label="l" * 81))], ("components", 0, "components", 0, "label"), "BASE_TYPE_MAX_LENGTH"),
        (
            [row(button(label=None))],
            ("components", 0, "components", 0, "label"),
            "BUTTON_COMPONENT_LABEL_OR_EMOJI_REQUIRED",
        ),
        (
            [row({"type": 2, "style": 5, "label": "l"})],
            ("components", 0, "components", 0, "url"),
            "BASE_TYPE_REQUIRED",
        ),
        (
            [row({"type": 2, "style": 5, "label": "l", "url": "https://x", "custom_id": "c"})],
            ("components", 0, "components", 0, "custom_id"),
            "BUTTON_COMPONENT_CUSTOM_ID_NOT_ALLOWED",
        ),
        (
            [row(button(url="https://x"))],
            ("components", 0, "components", 0, "url"),
            "BUTTON_COMPONENT_URL_NOT_ALLOWED",
        ),
        (
            [row({"type": 2, "style": 6, "sku_id": "1", "label": "l"})],
            ("components", 0, "components", 0, "label"),
            "BUTTON_COMPONENT_INVALID_FIELD",
        ),
        (
            [row(button(sku_id="1"))],
            ("components", 0, "components", 0, "sku_id"),
            "BUTTON_COMPONENT_INVALID_FIELD",
        ),
        ([row(button())] * 6, ("components",), "BASE_TYPE_MAX_LENGTH"),
        (
            [row(*(button(custom_id=f"b{i}") for i in range(6)))],
            ("components", 0, "components"),
            "BASE_TYPE_MAX_LENGTH",
        ),
        ([row()], ("components", 0, "components"), "BASE_TYPE_MIN_LENGTH"),
        (
            [row(select(), button())],
            ("components", 0, "components"),
            "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
        ),
        ([row(select(options=26))], ("components", 0, "components", 0, "options"), "BASE_TYPE_MAX_LENGTH"),
        ([row(select(options=0))], ("components", 0, "components", 0, "options"), "BASE_TYPE_MIN_LENGTH"),
        (
            [row(select(options=[{"label": "l" * 101, "value": "v"}]))],
            ("components", 0, "components", 0, "options", 0, "label"),
            "BASE_TYPE_BAD_LENGTH",
        ),
        (
            [row(select(options=[{"label": "l", "value": "v" * 101}]))],
            ("components", 0, "components", 0, "options", 0, "value"),
            "BASE_TYPE_BAD_LENGTH",
        ),
        (
            [row(select(options=[{"label": "l", "value": "v", "description": "d" * 101}]))],
            ("components", 0, "components", 0, "options", 0, "description"),
            "BASE_TYPE_MAX_LENGTH",
        ),
        (
            [row(select(custom_id="s" * 101))],
            ("components", 0, "components", 0, "custom_id"),
            "BASE_TYPE_BAD_LENGTH",
        ),
        (
            [row(select(placeholder="p" * 151))],
            ("components", 0, "components", 0, "placeholder"),
            "BASE_TYPE_MAX_LENGTH",
        ),
        ([row(select(min_values=-1))], ("components", 0, "components", 0, "min_values"), "NUMBER_TYPE_MAX"),
        ([row(select(min_values=26))], ("components", 0, "components", 0, "min_values"), "NUMBER_TYPE_MAX"),
        ([row(select(max_values=0))], ("components", 0, "components", 0, "max_values"), "NUMBER_TYPE_MAX"),
        ([row(select(max_values=26))], ("components", 0, "components", 0, "max_values"), "NUMBER_TYPE_MAX"),
        (
            [row(button()), row(button())],
            ("components", 1, "components", 0, "custom_id"),
            "COMPONENT_CUSTOM_ID_DUPLICATED",
        ),
        ([button()], ("components", 0, "type"), "BASE_TYPE_CHOICES"),
    ],
    ids=[
        "style-9",
        "style-0",
        "custom-id-101",
        "custom-id-missing",
        "label-81",
        "no-label-no-emoji",
        "link-without-url",
        "link-with-custom-id",
        "url-on-secondary",
        "premium-with-label",
        "sku-id-on-secondary",
        "6-rows",
        "6-buttons",
        "empty-row",
        "select-with-button",
        "26-options",
        "0-options",
        "option-label-101",
        "option-value-101",
        "option-description-101",
        "select-custom-id-101",
        "placeholder-151",
        "min-values-negative",
        "min-values-26",
        "max-values-0",
        "max-values-26",
        "duplicate-custom-id",
        "button-outside-a-row",
    ],
)
def test_each_component_limit(rows: list[dict[str, Any]], path: tuple[Any, ...], code: str) -> None:
    assert (path, code) in codes(L.check_components(rows))


def test_components_come_back_with_ids() -> None:
    given = [row(button(custom_id="a"), button(custom_id="b", id=2)), row(select())]
    returned = L.assign_component_ids(given)
    ids = [returned[0]["id"], *(c["id"] for c in returned[0]["components"]), returned[1]["id"]]
    ids.append(returned[1]["components"][0]["id"])
    assert len(set(ids)) == len(ids) and all(isinstance(i, int) for i in ids)
    assert returned[0]["components"][1]["id"] == 2, "an id the request gave is kept"
    assert "id" not in given[0], "the request itself is not changed"


# ------------------------------------------------------------------------------ commands
def test_valid_commands_are_taken() -> None:
    commands = [
        command(
            options=[
                option("content", type=11),
                option("größe", required=False, choices=[{"name": "n" * 100, "value": "v" * 100}] * 25),
                option("कला", required=False),
                option("ภาพ", required=False),
                option("x-y_z'", required=False),
            ]
        ),
        command(name="presets", description="d" * 100),
        {"name": "Stylize with preset\u2026", "type": 3},
        {"name": "Mixed Case Menu", "type": 2, "description": ""},
    ]
    assert L.check_commands(commands) == []


@pytest.mark.parametrize(
    ("definition", "path", "code"),
    [
        (command(name="Bad Name"), ("name",), "APPLICATION_COMMAND_INVALID_NAME"),
        (command(name="stylizE"), ("name",), "APPLICATION_COMMAND_INVALID_NAME"),
        (command(name="a" * 33), ("name",), "BASE_TYPE_BAD_LENGTH"),
        (command(name=""), ("name",), "BASE_TYPE_BAD_LENGTH"),
        (command(name="hi!"), ("name",), "APPLICATION_COMMAND_INVALID_NAME"),
        (command(description=""), ("description",), "BASE_TYPE_BAD_LENGTH"),
        (command(description="d" * 101), ("description",), "BASE_TYPE_BAD_LENGTH"),
        ({"name": "Menu", "type": 3, "description": "no"}, ("description",), "BASE_TYPE_MAX_LENGTH"),
        ({"name": "m" * 33, "type": 3}, ("name",), "BASE_TYPE_BAD_LENGTH"),
        (
            command(options=[option(f"o{i}") for i in range(26)]),
            ("options",),
            "BASE_TYPE_MAX_LENGTH",
        ),
        (
            command(options=[option(choices=[{"name": "c", "value": "c"}] * 30)]),
            ("options", 0, "choices"),
            "BASE_TYPE_MAX_LENGTH",
        ),
        (
            command(options=[option(choices=[{"name": "c" * 101, "value": "c"}])]),
            ("options", 0, "choices", 0, "name"),
            "BASE_TYPE_BAD_LENGTH",
        ),
        (
            command(options=[option(choices=[{"name": "c", "value": "v" * 101}])]),
            ("options", 0, "choices", 0, "value"),
            "BASE_TYPE_MAX_LENGTH",
        ),
        (
            command(options=[option("later", required=False), option("first")]),
            ("options", 1, "required"),
            "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
        ),
        (command(options=[option("Photo")]), ("options", 0, "name"), "APPLICATION_COMMAND_INVALID_NAME"),
        (command(options=[option(description="")]), ("options", 0, "description"), "BASE_TYPE_BAD_LENGTH"),
    ],
    ids=[
        "space-and-capitals",
        "capital",
        "name-33",
        "name-empty",
        "punctuation",
        "description-empty",
        "description-101",
        "menu-with-description",
        "menu-name-33",
        "26-options",
        "30-choices",
        "choice-name-101",
        "choice-value-101",
        "optional-before-required",
        "option-name-capital",
        "option-description-empty",
    ],
)
def test_each_command_limit(definition: dict[str, Any], path: tuple[Any, ...], code: str) -> None:
    assert (path, code) in codes(L.check_command(definition))


def test_a_slash_command_has_at_most_8000_characters_counting_its_longest_localizations() -> None:
    full = [{"name": "n" * 100, "value": "v" * 100}] * 5
    options = [option(f"o{i}", description="d" * 100, choices=full) for i in range(7)]  # 7 * 1102
    last = {"name": "c" * 38, "value": "v" * 39}
    options.append(option("o7", required=False, description="d" * 100, choices=[last]))  # 179
    definition = command(description="d" * 100, options=options)  # 7 + 100 + 7714 + 179
    assert L.command_characters(definition) == 8000
    assert L.check_command(definition) == []
    last["name_localizations"] = {"de": "c" * 39, "fr": "c"}  # only the longest one counts
    assert L.command_characters(definition) == 8001
    assert codes(L.check_command(definition)) == {((), "APPLICATION_COMMAND_TOO_LARGE")}


def test_command_counts_are_capped_per_type() -> None:
    slash = [command(name=f"c{i}") for i in range(100)]
    menus = [{"name": f"Menu {i}", "type": kind} for kind in (2, 3) for i in range(15)]
    assert L.exceeded_command_limit([*slash, *menus]) is None, "100 + 15 + 15 is allowed"
    assert L.exceeded_command_limit([*slash, command(name="one-more")]) == 100
    assert L.exceeded_command_limit([*menus, {"name": "Menu 15", "type": 2}]) == 15
    assert L.exceeded_command_limit([{"name": "launch", "type": 4}] * 2) == 1


def test_bulk_overwrite_names_are_unique_per_type() -> None:
    found = L.check_commands([command(), command(), {"name": "stylize", "type": 3}])
    assert codes(found) == {((1, "name"), "APPLICATION_COMMANDS_DUPLICATE_NAME")}


def test_form_error_nests_like_the_body() -> None:
    body = L.form_error(
        [
            L.Problem(("embeds", 0, "title"), "BASE_TYPE_MAX_LENGTH", "Must be 256 or fewer in length."),
            L.Problem(("content",), "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length."),
        ]
    )
    assert body == {
        "message": "Invalid Form Body",
        "code": 50035,
        "errors": {
            "embeds": {
                "0": {
                    "title": {
                        "_errors": [
                            {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 256 or fewer in length."}
                        ]
                    }
                }
            },
            "content": {
                "_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]
            },
        },
    }


# ------------------------------------------------------------------------------ over HTTP
@pytest.fixture
async def http(fake_discord: FakeDiscord) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"Authorization": f"Bot {fake_discord.token}"}
    async with aiohttp.ClientSession(base_url=fake_discord.base_url, headers=headers) as session:
        yield session


def channel_messages(fake: FakeDiscord) -> str:
    return f"/api/v10/channels/{fake.channel.id}/messages"


async def post_json(http: aiohttp.ClientSession, path: str, body: Any) -> tuple[int, Any, Any]:
    async with http.post(path, json=body) as response:
        return response.status, await response.json(), response.headers


RATE_LIMIT_HEADERS = (
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-RateLimit-Reset-After",
    "X-RateLimit-Bucket",
)


async def test_http_over_long_content_is_400_50035_with_errors_and_rate_limit_headers(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    status, body, headers = await post_json(http, channel_messages(fake_discord), {"content": "x" * 2500})
    assert status == 400 and body["code"] == 50035
    assert body["errors"]["content"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"
    assert all(name in headers for name in RATE_LIMIT_HEADERS), dict(headers)
    assert fake_discord.channel_messages() == []


async def test_http_empty_message_is_50006(fake_discord: FakeDiscord, http: aiohttp.ClientSession) -> None:
    status, body, _ = await post_json(http, channel_messages(fake_discord), {"content": ""})
    assert (status, body["code"]) == (400, 50006)


async def test_http_bad_button_and_bad_command_are_refused(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    bad_button = {"content": "a", "components": [row(button(style=9, custom_id="c" * 150))]}
    status, body, _ = await post_json(http, channel_messages(fake_discord), bad_button)
    assert status == 400 and body["code"] == 50035
    assert set(body["errors"]["components"]["0"]["components"]["0"]) == {"style"}
    bad_command = {
        "name": "Bad Name",
        "description": "",
        "options": [option(choices=[{"name": str(i), "value": str(i)} for i in range(30)])],
    }
    path = f"/api/v10/applications/{fake_discord.application_id}/commands"
    status, body, _ = await post_json(http, path, bad_command)
    assert status == 400 and set(body["errors"]) == {"name", "description", "options"}
    assert fake_discord.global_commands == []
    async with http.put(path, json=[bad_command]) as response:
        assert response.status == 400
    status, _, _ = await post_json(http, path, command())
    assert status == 201 and [c["name"] for c in fake_discord.global_commands] == ["stylize"]


async def test_http_valid_message_comes_back_in_rest_shape(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    body = {
        "content": f"hi <@{fake_discord.alice.id}> @everyone <@&{fake_discord.moderator_role.id}>",
        "embeds": [{"title": "t", "fields": [{"name": "n", "value": "v"}]}],
        "components": [row(button())],
        "allowed_mentions": {"parse": [], "users": [str(fake_discord.alice.id)]},
    }
    status, message, headers = await post_json(http, channel_messages(fake_discord), body)
    assert status == 200
    assert "guild_id" not in message, "REST message objects carry no guild_id"
    assert isinstance(message["components"][0]["id"], int)
    assert isinstance(message["components"][0]["components"][0]["id"], int)
    assert [u["id"] for u in message["mentions"]] == [str(fake_discord.alice.id)]
    assert message["mention_everyone"] is False and message["mention_roles"] == []
    assert headers["X-RateLimit-Limit"] == str(fake_discord.reported_rate_limit[0])
    [stored] = fake_discord.channel_messages()
    assert stored.pings.users == (fake_discord.alice.id,) and not stored.pings.everyone


async def test_http_without_allowed_mentions_everything_in_the_text_pings(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    text = f"<@{fake_discord.bob.id}> @here <@&{fake_discord.moderator_role.id}>"
    status, message, _ = await post_json(http, channel_messages(fake_discord), {"content": text})
    assert status == 200 and message["mention_everyone"] is True
    assert message["mention_roles"] == [str(fake_discord.moderator_role.id)]
    bad = {"content": "x", "allowed_mentions": {"parse": ["users"], "users": [str(fake_discord.bob.id)]}}
    status, body, _ = await post_json(http, channel_messages(fake_discord), bad)
    assert status == 400 and "allowed_mentions" in body["errors"]


def callback_path(interaction: FakeInteraction) -> str:
    return f"/api/v10/interactions/{interaction.id}/{interaction.token}/callback"


async def test_http_over_long_callback_message_is_refused_with_errors_under_data(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    interaction = await fake_discord.slash_command("stylize")
    too_long = {"type": 4, "data": {"content": "x" * 2001, "embeds": [{"title": "t" * 257}]}}
    status, body, _ = await post_json(http, callback_path(interaction), too_long)
    assert status == 400 and body["code"] == 50035
    assert set(body["errors"]) == {"data"}, "the errors nest like the body: under data"
    assert body["errors"]["data"]["content"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"
    assert body["errors"]["data"]["embeds"]["0"]["title"]["_errors"]
    assert interaction.response_type is None, "a refused callback does not acknowledge"
    async with http.post(callback_path(interaction), json={"type": 4, "data": {"content": "ok"}}) as response:
        assert response.status == 204


async def test_http_command_counts_over_a_type_limit_are_refused_with_30032(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    path = f"/api/v10/applications/{fake_discord.application_id}/commands"
    menus = [{"name": f"Menu {i}", "type": 3} for i in range(15)]
    async with http.put(path, json=[*menus, command()]) as response:
        assert response.status == 200
    async with http.put(path, json=[*menus, {"name": "Menu 15", "type": 3}]) as response:
        body = await response.json()
        assert (response.status, body["code"]) == (400, 30032)
        assert body["message"] == "Maximum number of application commands reached (15)"
    status, body, _ = await post_json(http, path, {"name": "Menu 15", "type": 3})
    assert (status, body["code"]) == (400, 30032)
    status, _, _ = await post_json(http, path, {"name": "Menu 0", "type": 3})
    assert status == 200, "an upsert of a command it has is no new command"
    status, _, _ = await post_json(http, path, {"name": "Menu 0", "type": 2})
    assert status == 201, "a USER command of the same name is another command"
    assert len(fake_discord.global_commands) == 17


async def test_http_a_deferred_response_may_set_only_the_ephemeral_flag(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    refused = await fake_discord.slash_command("stylize")
    suppress_embeds = 1 << 2
    status, body, _ = await post_json(
        http, callback_path(refused), {"type": 5, "data": {"flags": 64 | suppress_embeds}}
    )
    assert status == 400 and body["errors"]["data"]["flags"]["_errors"]
    assert refused.response_type is None
    taken = await fake_discord.slash_command("stylize")
    async with http.post(callback_path(taken), json={"type": 5, "data": {"flags": 64}}) as response:
        assert response.status == 204
    assert fake_discord.original(taken) is not None and fake_discord.original(taken).ephemeral


async def test_http_command_responses_have_the_command_message_types(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    """docs (resources/message#message-object-message-types): 20 CHAT_INPUT_COMMAND, 23
    CONTEXT_MENU_COMMAND; a channel message is 0 DEFAULT."""
    status, channel_message, _ = await post_json(http, channel_messages(fake_discord), {"content": "hi"})
    assert status == 200 and channel_message["type"] == 0
    slash = await fake_discord.slash_command("stylize")
    [target] = fake_discord.channel_messages()
    menu = await fake_discord.message_command("Stylize this", target)
    for interaction, expected in ((slash, 20), (menu, 23)):
        async with http.post(
            callback_path(interaction) + "?with_response=true", json={"type": 4, "data": {"content": "ok"}}
        ) as response:
            answer = await response.json()
        assert answer["resource"]["message"]["type"] == expected
        followup = f"/api/v10/webhooks/{fake_discord.application_id}/{interaction.token}?wait=true"
        status, message, _ = await post_json(http, followup, {"content": "more"})
        assert status == 200 and message["type"] == expected


async def test_http_autocomplete_with_26_choices_is_refused_and_25_are_taken(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    choices = [{"name": f"p{i}", "value": f"p{i}"} for i in range(26)]
    refused = await fake_discord.slash_command("stylize", {"preset": "p"}, autocomplete_focus="preset")
    status, body, _ = await post_json(http, callback_path(refused), {"type": 8, "data": {"choices": choices}})
    assert status == 400 and body["code"] == 50035
    assert body["errors"]["data"]["choices"]["_errors"][0]["code"] == "BASE_TYPE_MAX_LENGTH"
    assert refused.response_type is None and refused.choices is None
    taken = await fake_discord.slash_command("stylize", {"preset": "p"}, autocomplete_focus="preset")
    async with http.post(
        callback_path(taken), json={"type": 8, "data": {"choices": choices[:25]}}
    ) as response:
        assert response.status == 204
    assert taken.choices == choices[:25]


def multipart(body: dict[str, Any], files: list[tuple[str, bytes]]) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("payload_json", json.dumps(body), content_type="application/json")
    for index, (name, data) in enumerate(files):
        form.add_field(f"files[{index}]", data, filename=name, content_type="application/octet-stream")
    return form


async def test_http_files_limit_is_per_file_and_ten_files(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    fake_discord.upload_limit = 1000
    path = channel_messages(fake_discord)
    two_under = [("a.bin", b"a" * 900), ("b.bin", b"b" * 900)]  # 1800 bytes in all: each under 1000
    async with http.post(path, data=multipart({"content": "ok"}, two_under)) as response:
        assert response.status == 200
    async with http.post(path, data=multipart({}, [("big.bin", b"x" * 1001)])) as response:
        assert response.status == 413 and (await response.json())["code"] == 40005
        assert "X-RateLimit-Bucket" in response.headers
    eleven = [(f"{i}.bin", b"x") for i in range(11)]
    async with http.post(path, data=multipart({}, eleven)) as response:
        assert response.status == 400 and "files" in (await response.json())["errors"]


async def test_http_attachments_on_edit_must_name_existing_or_uploaded_files(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    path = channel_messages(fake_discord)
    async with http.post(path, data=multipart({"content": "v1"}, [("a.png", b"a")])) as response:
        created = await response.json()
    edit = f"{path}/{created['id']}"
    kept = created["attachments"][0]["id"]
    refs = {"attachments": [{"id": kept}, {"id": 0}]}
    async with http.patch(edit, data=multipart(refs, [("b.png", b"b")])) as response:
        assert response.status == 200
        assert [a["filename"] for a in (await response.json())["attachments"]] == ["a.png", "b.png"]
    async with http.patch(edit, json={"attachments": [{"id": "123"}]}) as response:
        body = await response.json()
        assert response.status == 400 and body["errors"]["attachments"]["0"]["id"]["_errors"]
    async with http.patch(edit, json={"content": "", "attachments": []}) as response:
        assert response.status == 400 and (await response.json())["code"] == 50006


async def test_http_edit_keeps_exactly_the_attachments_it_lists(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    """docs (reference#editing-message-attachments): on a PATCH the ``attachments`` list names every
    file that stays, new uploads included; unlisted uploads are not attached, unlisted old files go."""
    path = channel_messages(fake_discord)
    async with http.post(path, data=multipart({"content": "v1"}, [("a.png", b"a")])) as response:
        created = await response.json()
    edit = f"{path}/{created['id']}"
    old = created["attachments"][0]["id"]

    async def patch(body: dict[str, Any], files: list[tuple[str, bytes]]) -> list[str]:
        async with http.patch(edit, data=multipart(body, files)) as response:
            assert response.status == 200, await response.text()
            return [a["filename"] for a in (await response.json())["attachments"]]

    # files[1] is listed, files[0] is not: only b.png joins the kept a.png
    assert await patch({"attachments": [{"id": old}, {"id": 1}]}, [("x.png", b"x"), ("b.png", b"b")]) == [
        "a.png",
        "b.png",
    ]
    # the old file is not listed: it is removed, and the listed upload replaces it
    assert await patch({"attachments": [{"id": 0}]}, [("c.png", b"c")]) == ["c.png"]
    # no list at all: the upload is appended to what the message has
    assert await patch({"content": "v2"}, [("d.png", b"d")]) == ["c.png", "d.png"]
    # a list that names none of the uploads attaches none of them
    assert await patch({"content": "v3", "attachments": []}, [("e.png", b"e")]) == []
    [message] = fake_discord.channel_messages()
    assert [a.filename for a in message.attachments] == []
    stored = {a.filename for a in fake_discord.cdn.values()}
    assert not stored & {"x.png", "e.png"}, "an upload that was not attached is not served either"


async def test_http_429_has_the_documented_body_and_headers(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    fake_discord.enforce_rate_limits(requests=2, seconds=5.0)
    path = channel_messages(fake_discord)
    statuses = []
    for i in range(3):
        status, body, headers = await post_json(http, path, {"content": str(i)})
        statuses.append(status)
    assert statuses == [200, 200, 429]
    assert body["global"] is False and 0 < body["retry_after"] <= 5.0 and "message" in body
    assert headers["X-RateLimit-Limit"] == "2" and headers["X-RateLimit-Remaining"] == "0"
    assert float(headers["Retry-After"]) >= 1 and headers["X-RateLimit-Scope"] == "user"
    assert all(name in headers for name in RATE_LIMIT_HEADERS)


async def test_http_remaining_counts_down_from_the_bucket_limit(
    fake_discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    fake_discord.reported_rate_limit = (7, 10.0)
    remaining = []
    for i in range(3):
        _, _, headers = await post_json(http, channel_messages(fake_discord), {"content": str(i)})
        remaining.append(headers["X-RateLimit-Remaining"])
        assert headers["X-RateLimit-Limit"] == "7"
    assert remaining == ["6", "5", "4"]
    _, _, headers = await post_json(http, channel_messages(fake_discord), {"content": ""})  # a 400
    assert headers["X-RateLimit-Remaining"] == "3"
