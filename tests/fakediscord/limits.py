"""What Discord refuses in a request body, checked the way Discord answers it.

Each check is written from Discord's developer documentation (github.com/discord/discord-api-docs)
and the OpenAPI spec (github.com/discord/discord-api-spec, ``specs/openapi.json``); the source of
each limit is named next to it and listed in docs/bot.md ("Discord behaviours the tests assume").
A failed check is answered as Discord answers it (docs: reference#error-messages): HTTP 400 with
JSON code 50035 "Invalid Form Body" and an ``errors`` object that mirrors the body's shape, each
leaf holding ``{"_errors": [{"code": ..., "message": ...}]}``; an empty message is 400 / 50006.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

#: Discord JSON error codes (docs: topics/opcodes-and-status-codes#json).
CODE_EMPTY_MESSAGE = 50006
CODE_INVALID_FORM_BODY = 50035

# -- messages (docs: resources/message#create-message, "content: up to 2000 characters";
#    "embeds: up to 10 rich embeds (up to 6000 characters)").
CONTENT_MAX = 2000
EMBEDS_MAX = 10
# -- embeds (docs: resources/message#embed-object-embed-limits).
EMBED_TITLE_MAX = 256
EMBED_DESCRIPTION_MAX = 4096
EMBED_FIELDS_MAX = 25
EMBED_FIELD_NAME_MAX = 256
EMBED_FIELD_VALUE_MAX = 1024
EMBED_FOOTER_MAX = 2048
EMBED_AUTHOR_NAME_MAX = 256
EMBED_TOTAL_MAX = 6000
# -- files (docs: reference#uploading-files: up to 10 files per message; the upload limit is per
#    file, "the maximum file size for each attachment"; over it Discord answers 413 / 40005).
FILES_MAX = 10
# -- components (docs: components/reference: action rows, buttons, string selects).
ACTION_ROWS_MAX = 5
BUTTONS_PER_ROW_MAX = 5
CUSTOM_ID_MAX = 100
BUTTON_LABEL_MAX = 80
BUTTON_STYLES = (1, 2, 3, 4, 5, 6)  # primary, secondary, success, danger, link, premium
SELECT_OPTIONS_MAX = 25
SELECT_OPTION_TEXT_MAX = 100  # label, value, description
SELECT_PLACEHOLDER_MAX = 150
SELECT_VALUES_MAX = 25
COMPONENT_ACTION_ROW = 1
COMPONENT_BUTTON = 2
COMPONENT_SELECTS = (3, 5, 6, 7, 8)  # string, user, role, mentionable, channel selects
# -- application commands (docs: interactions/application-commands#application-command-object,
#    "Application Command Naming"; spec: ApplicationCommandCreateRequest and its option schemas).
COMMAND_NAME_MAX = 32
COMMAND_DESCRIPTION_MAX = 100
COMMAND_OPTIONS_MAX = 25
COMMAND_CHOICES_MAX = 25
CHOICE_NAME_MAX = 100
CHOICE_STRING_VALUE_MAX = 100
# docs (interactions/application-commands#registering-a-command): "100 global CHAT_INPUT commands,
# 15 global USER commands, 15 global MESSAGE commands, 1 global PRIMARY_ENTRY_POINT command", and
# the same per guild (no PRIMARY_ENTRY_POINT there).
CHAT_INPUT = 1
USER_COMMAND = 2
MESSAGE_COMMAND = 3
PRIMARY_ENTRY_POINT = 4
COMMANDS_PER_TYPE_MAX = {CHAT_INPUT: 100, USER_COMMAND: 15, MESSAGE_COMMAND: 15, PRIMARY_ENTRY_POINT: 1}
# docs (interactions/application-commands#slash-commands): "a maximum of 8000 characters for
# combined name, description, and value properties for each command, its options (including
# subcommands and groups), and choices"; of localized fields only the longest counts.
COMMAND_CHARACTERS_MAX = 8000
OPTION_SUBCOMMAND = 1
OPTION_SUBCOMMAND_GROUP = 2


@dataclass(frozen=True)
class Problem:
    """One refused value: where it is in the body, Discord's error code word, and its message."""

    path: tuple[str | int, ...]
    code: str
    message: str


def form_error(problems: Iterable[Problem]) -> dict[str, Any]:
    """The JSON body Discord sends with 400 / 50035: ``errors`` nests like the request body."""
    errors: dict[str, Any] = {}
    for problem in problems:
        node = errors
        for key in problem.path:
            node = node.setdefault(str(key), {})
        node.setdefault("_errors", []).append({"code": problem.code, "message": problem.message})
    return {"message": "Invalid Form Body", "code": CODE_INVALID_FORM_BODY, "errors": errors}


def nested(prefix: tuple[str | int, ...], problems: Iterable[Problem]) -> list[Problem]:
    """``problems`` found in a part of a body, placed where that part sits: an interaction
    callback's message is its ``data``, so Discord reports its errors under ``errors.data``."""
    return [Problem((*prefix, *problem.path), problem.code, problem.message) for problem in problems]


def empty_message_error() -> dict[str, Any]:
    return {"message": "Cannot send an empty message", "code": CODE_EMPTY_MESSAGE}


def _too_long(path: tuple[str | int, ...], value: Any, limit: int) -> Problem | None:
    if isinstance(value, str) and len(value) > limit:
        return Problem(path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")
    return None


def _length(path: tuple[str | int, ...], value: Any, low: int, high: int) -> Problem | None:
    if not isinstance(value, str):
        return Problem(
            path, "BASE_TYPE_REQUIRED" if value is None else "STRING_TYPE_CONVERT", "Must be a string."
        )
    if not low <= len(value) <= high:
        return Problem(path, "BASE_TYPE_BAD_LENGTH", f"Must be between {low} and {high} in length.")
    return None


def _count(path: tuple[str | int, ...], items: Any, high: int, low: int = 0) -> Problem | None:
    if not isinstance(items, list):
        return Problem(path, "LIST_TYPE_CONVERT", "Must be an array.")
    if len(items) > high:
        return Problem(path, "BASE_TYPE_MAX_LENGTH", f"Must be {high} or fewer in length.")
    if len(items) < low:
        return Problem(path, "BASE_TYPE_MIN_LENGTH", f"Must be {low} or more in length.")
    return None


def _keep(found: list[Problem], *candidates: Problem | None) -> None:
    found.extend(c for c in candidates if c is not None)


# ------------------------------------------------------------------------------- messages
def check_message(body: dict[str, Any], *, file_count: int = 0) -> list[Problem]:
    """Create/edit message bodies (channel messages, webhooks, interaction responses)."""
    found: list[Problem] = []
    _keep(found, _too_long(("content",), body.get("content"), CONTENT_MAX))
    embeds = body.get("embeds")
    if embeds is not None:
        problem = _count(("embeds",), embeds, EMBEDS_MAX)
        if problem is not None:
            found.append(problem)
        else:
            found.extend(check_embeds(embeds))
    components = body.get("components")
    if components is not None:
        found.extend(check_components(components))
    if file_count > FILES_MAX:
        found.append(Problem(("files",), "BASE_TYPE_MAX_LENGTH", f"Must be {FILES_MAX} or fewer in length."))
    return found


def is_empty_message(body: dict[str, Any], *, file_count: int) -> bool:
    """A new message with nothing to show (Discord: 50006 "Cannot send an empty message")."""
    return not (
        (body.get("content") or "").strip()
        or body.get("embeds")
        or body.get("components")
        or body.get("sticker_ids")
        or body.get("poll")
        or body.get("attachments")
        or file_count
    )


def embed_characters(embed: dict[str, Any]) -> int:
    """The characters that count towards the 6000 total (docs: embed limits)."""
    total = len(str(embed.get("title") or "")) + len(str(embed.get("description") or ""))
    for field in embed.get("fields") or []:
        if isinstance(field, dict):
            total += len(str(field.get("name") or "")) + len(str(field.get("value") or ""))
    total += len(str((embed.get("footer") or {}).get("text") or ""))
    total += len(str((embed.get("author") or {}).get("name") or ""))
    return total


def check_embeds(embeds: list[Any]) -> list[Problem]:
    found: list[Problem] = []
    total = 0
    for index, embed in enumerate(embeds):
        at: tuple[str | int, ...] = ("embeds", index)
        if not isinstance(embed, dict):
            found.append(Problem(at, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType"))
            continue
        _keep(
            found,
            _too_long((*at, "title"), embed.get("title"), EMBED_TITLE_MAX),
            _too_long((*at, "description"), embed.get("description"), EMBED_DESCRIPTION_MAX),
        )
        fields = embed.get("fields")
        if fields is not None:
            problem = _count((*at, "fields"), fields, EMBED_FIELDS_MAX)
            if problem is not None:
                found.append(problem)
            else:
                for number, field in enumerate(fields):
                    where = (*at, "fields", number)
                    _keep(
                        found,
                        _length((*where, "name"), field.get("name"), 1, EMBED_FIELD_NAME_MAX),
                        _length((*where, "value"), field.get("value"), 1, EMBED_FIELD_VALUE_MAX),
                    )
        footer = embed.get("footer")
        if footer is not None:
            _keep(found, _length((*at, "footer", "text"), footer.get("text"), 1, EMBED_FOOTER_MAX))
        author = embed.get("author")
        if author is not None:
            _keep(found, _length((*at, "author", "name"), author.get("name"), 1, EMBED_AUTHOR_NAME_MAX))
        total += embed_characters(embed)
    if total > EMBED_TOTAL_MAX:
        found.append(
            Problem(
                ("embeds",),
                "MAX_EMBED_SIZE_EXCEEDED",
                f"Embed size exceeds maximum size of {EMBED_TOTAL_MAX}",
            )
        )
    return found


# ------------------------------------------------------------------------------- components
def check_components(rows: Any) -> list[Problem]:
    """Message components of a non-V2 message: up to 5 action rows of buttons or one select."""
    problem = _count(("components",), rows, ACTION_ROWS_MAX)
    if problem is not None:
        return [problem]
    found: list[Problem] = []
    custom_ids: set[str] = set()
    for index, row in enumerate(rows):
        at: tuple[str | int, ...] = ("components", index)
        if not isinstance(row, dict) or row.get("type") != COMPONENT_ACTION_ROW:
            found.append(Problem((*at, "type"), "BASE_TYPE_CHOICES", "Value must be one of {1}."))
            continue
        children = row.get("components")
        problem = _count((*at, "components"), children, BUTTONS_PER_ROW_MAX, low=1)
        if problem is not None:
            found.append(problem)
            continue
        selects = [c for c in children if isinstance(c, dict) and c.get("type") in COMPONENT_SELECTS]
        if selects and len(children) > 1:
            found.append(
                Problem(
                    (*at, "components"),
                    "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                    "The specified component exceeds the maximum width",
                )
            )
        for number, child in enumerate(children):
            where = (*at, "components", number)
            if not isinstance(child, dict):
                found.append(
                    Problem(where, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
                )
            elif child.get("type") == COMPONENT_BUTTON:
                found.extend(_check_button(where, child))
            elif child.get("type") in COMPONENT_SELECTS:
                found.extend(_check_select(where, child))
            else:
                found.append(
                    Problem((*where, "type"), "BASE_TYPE_CHOICES", "Value must be one of {2, 3, 5, 6, 7, 8}.")
                )
            custom_id = child.get("custom_id") if isinstance(child, dict) else None
            if isinstance(custom_id, str):
                if custom_id in custom_ids:
                    found.append(
                        Problem(
                            (*where, "custom_id"),
                            "COMPONENT_CUSTOM_ID_DUPLICATED",
                            "Component custom id cannot be duplicated",
                        )
                    )
                custom_ids.add(custom_id)
    return found


def _check_button(at: tuple[str | int, ...], button: dict[str, Any]) -> list[Problem]:
    found: list[Problem] = []
    style = button.get("style")
    if style not in BUTTON_STYLES:
        return [Problem((*at, "style"), "BASE_TYPE_CHOICES", "Value must be one of {1, 2, 3, 4, 5, 6}.")]
    if style == 5:  # link: a url, never a custom_id
        if not button.get("url"):
            found.append(Problem((*at, "url"), "BASE_TYPE_REQUIRED", "This field is required"))
        if "custom_id" in button:
            found.append(
                Problem(
                    (*at, "custom_id"),
                    "BUTTON_COMPONENT_CUSTOM_ID_NOT_ALLOWED",
                    "A custom id is not allowed for link buttons",
                )
            )
    elif style == 6:  # premium: a sku_id and nothing a user would read or send back
        if not button.get("sku_id"):
            found.append(Problem((*at, "sku_id"), "BASE_TYPE_REQUIRED", "This field is required"))
        for key in ("custom_id", "url", "label", "emoji"):
            if key in button:
                found.append(
                    Problem(
                        (*at, key),
                        "BUTTON_COMPONENT_INVALID_FIELD",
                        f"{key} is not allowed for premium buttons",
                    )
                )
        return found
    else:  # "Non-link and non-premium buttons must have a custom_id, and cannot have a url or a sku_id"
        _keep(found, _length((*at, "custom_id"), button.get("custom_id"), 1, CUSTOM_ID_MAX))
        if "url" in button:
            found.append(
                Problem(
                    (*at, "url"),
                    "BUTTON_COMPONENT_URL_NOT_ALLOWED",
                    "A url is not allowed for this button style",
                )
            )
        if "sku_id" in button:
            found.append(
                Problem(
                    (*at, "sku_id"),
                    "BUTTON_COMPONENT_INVALID_FIELD",
                    "sku_id is only allowed for premium buttons",
                )
            )
    if not button.get("label") and not button.get("emoji"):
        found.append(
            Problem(
                (*at, "label"), "BUTTON_COMPONENT_LABEL_OR_EMOJI_REQUIRED", "A label or an emoji is required"
            )
        )
    _keep(found, _too_long((*at, "label"), button.get("label"), BUTTON_LABEL_MAX))
    return found


def _check_select(at: tuple[str | int, ...], select: dict[str, Any]) -> list[Problem]:
    found: list[Problem] = []
    _keep(
        found,
        _length((*at, "custom_id"), select.get("custom_id"), 1, CUSTOM_ID_MAX),
        _too_long((*at, "placeholder"), select.get("placeholder"), SELECT_PLACEHOLDER_MAX),
    )
    for key, low in (("min_values", 0), ("max_values", 1)):
        value = select.get(key)
        if value is not None and not (isinstance(value, int) and low <= value <= SELECT_VALUES_MAX):
            found.append(
                Problem((*at, key), "NUMBER_TYPE_MAX", f"Must be between {low} and {SELECT_VALUES_MAX}.")
            )
    if select.get("type") != 3:
        return found
    options = select.get("options")
    problem = _count((*at, "options"), options, SELECT_OPTIONS_MAX, low=1)
    if problem is not None:
        return [*found, problem]
    for number, option in enumerate(options):
        where = (*at, "options", number)
        _keep(
            found,
            _length((*where, "label"), option.get("label"), 1, SELECT_OPTION_TEXT_MAX),
            _length((*where, "value"), option.get("value"), 1, SELECT_OPTION_TEXT_MAX),
            _too_long((*where, "description"), option.get("description"), SELECT_OPTION_TEXT_MAX),
        )
    return found


def assign_component_ids(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The components as Discord returns them: each with a numeric ``id``, unique in the message,
    counted up in order where the request gave none (docs: components/reference, "id")."""
    used: set[int] = set()

    def walk_used(items: list[Any]) -> None:
        for item in items:
            if isinstance(item, dict):
                if isinstance(item.get("id"), int):
                    used.add(item["id"])
                walk_used(item.get("components") or [])

    walk_used(rows)
    counter = 0

    def fill(items: list[Any]) -> list[Any]:
        nonlocal counter
        filled = []
        for item in items:
            if not isinstance(item, dict):
                filled.append(item)
                continue
            copy = dict(item)
            if not isinstance(copy.get("id"), int):
                counter += 1
                while counter in used:
                    counter += 1
                copy["id"] = counter
            if "components" in copy:
                copy["components"] = fill(copy["components"] or [])
            filled.append(copy)
        return filled

    return fill(rows)


# ------------------------------------------------------------------------------- commands
def _name_character_ok(character: str) -> bool:
    if character in "-_'":
        return True
    if unicodedata.category(character)[0] in "LN":
        return True
    code = ord(character)
    # \p{sc=Deva} and \p{sc=Thai}: their combining marks are not letters, yet allowed.
    return 0x0900 <= code <= 0x097F or 0xA8E0 <= code <= 0xA8FF or 0x0E00 <= code <= 0x0E7F


def _check_name(at: tuple[str | int, ...], name: Any, *, chat_input: bool) -> list[Problem]:
    problem = _length(at, name, 1, COMMAND_NAME_MAX)
    if problem is not None:
        return [problem]
    if not chat_input:  # USER and MESSAGE commands may be mixed case and include spaces
        return []
    if not all(_name_character_ok(c) for c in name):
        return [Problem(at, "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")]
    if name != name.lower():
        return [Problem(at, "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")]
    return []


def check_command(command: Any, at: tuple[str | int, ...] = ()) -> list[Problem]:
    """One application command definition (create, bulk overwrite)."""
    if not isinstance(command, dict):
        return [Problem(at, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")]
    chat_input = command_type(command) == CHAT_INPUT
    found = _check_name((*at, "name"), command.get("name"), chat_input=chat_input)
    description = command.get("description")
    if chat_input:
        _keep(found, _length((*at, "description"), description, 1, COMMAND_DESCRIPTION_MAX))
    elif description not in (None, ""):  # USER / MESSAGE commands: an empty description
        found.append(Problem((*at, "description"), "BASE_TYPE_MAX_LENGTH", "Must be 0 or fewer in length."))
    options = command.get("options")
    if options is not None:
        if not chat_input and options:
            found.append(Problem((*at, "options"), "BASE_TYPE_MAX_LENGTH", "Must be 0 or fewer in length."))
        else:
            found.extend(_check_options((*at, "options"), options))
    if chat_input and command_characters(command) > COMMAND_CHARACTERS_MAX:
        found.append(
            Problem(
                at,
                "APPLICATION_COMMAND_TOO_LARGE",
                f"Command exceeds maximum size ({COMMAND_CHARACTERS_MAX})",
            )
        )
    return found


def _longest(item: dict[str, Any], key: str) -> int:
    """The length a field counts with: its own or its longest localization, whichever is longer."""
    localized = item.get(f"{key}_localizations") or {}
    candidates = [item.get(key), *(localized.values() if isinstance(localized, dict) else [])]
    return max((len(str(text)) for text in candidates if text is not None), default=0)


def command_characters(command: dict[str, Any]) -> int:
    """The characters of a command that count towards its 8000: names, descriptions and choice
    values, of the command, its options (subcommands and groups included) and their choices."""
    total = _longest(command, "name") + _longest(command, "description")
    for option in command.get("options") or []:
        if isinstance(option, dict):
            total += command_characters(option)
    for choice in command.get("choices") or []:
        if isinstance(choice, dict):
            total += _longest(choice, "name") + len(str(choice.get("value", "")))
    return total


def command_type(command: Any) -> Any:
    """A definition's command type; CHAT_INPUT when it gives none."""
    return (command.get("type") if isinstance(command, dict) else None) or CHAT_INPUT


def exceeded_command_limit(commands: list[Any]) -> int | None:
    """The per-type command limit ``commands`` (one scope's) break, None when within all of them.
    Discord answers 400 / 30032 "Maximum number of application commands reached (N)"."""
    for kind, limit in COMMANDS_PER_TYPE_MAX.items():
        if sum(1 for command in commands if command_type(command) == kind) > limit:
            return limit
    return None


def check_commands(commands: Any) -> list[Problem]:
    """A bulk overwrite: each command valid, names unique per command type (the per-type counts
    are :func:`exceeded_command_limit`'s, answered with their own code)."""
    if not isinstance(commands, list):
        return [Problem((), "LIST_TYPE_CONVERT", "Must be an array.")]
    found: list[Problem] = []
    seen: set[tuple[Any, Any]] = set()
    for index, command in enumerate(commands):
        found.extend(check_command(command, (index,)))
        if isinstance(command, dict):
            key = (command_type(command), command.get("name"))
            if key in seen:
                found.append(
                    Problem(
                        (index, "name"),
                        "APPLICATION_COMMANDS_DUPLICATE_NAME",
                        "Application command names must be unique",
                    )
                )
            seen.add(key)
    return found


def _check_options(at: tuple[str | int, ...], options: Any) -> list[Problem]:
    problem = _count(at, options, COMMAND_OPTIONS_MAX)
    if problem is not None:
        return [problem]
    found: list[Problem] = []
    optional_seen = False
    for index, option in enumerate(options):
        where = (*at, index)
        if not isinstance(option, dict):
            found.append(Problem(where, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType"))
            continue
        found.extend(_check_name((*where, "name"), option.get("name"), chat_input=True))
        _keep(found, _length((*where, "description"), option.get("description"), 1, COMMAND_DESCRIPTION_MAX))
        if option.get("type") in (OPTION_SUBCOMMAND, OPTION_SUBCOMMAND_GROUP):
            found.extend(_check_options((*where, "options"), option.get("options") or []))
            continue
        if option.get("required"):
            if optional_seen:
                found.append(
                    Problem(
                        (*where, "required"),
                        "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                        "Required options must be placed before non-required options",
                    )
                )
        else:
            optional_seen = True
        if option.get("choices") is not None:
            found.extend(check_choices((*where, "choices"), option["choices"]))
    return found


def check_choices(at: tuple[str | int, ...], choices: Any) -> list[Problem]:
    """Option choices (and autocomplete answers): at most 25, names 1-100, string values <= 100."""
    problem = _count(at, choices, COMMAND_CHOICES_MAX)
    if problem is not None:
        return [problem]
    found: list[Problem] = []
    for number, choice in enumerate(choices):
        if not isinstance(choice, dict):
            found.append(
                Problem((*at, number), "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
            )
            continue
        _keep(
            found,
            _length((*at, number, "name"), choice.get("name"), 1, CHOICE_NAME_MAX),
            _too_long((*at, number, "value"), choice.get("value"), CHOICE_STRING_VALUE_MAX),
        )
    return found
