"""The state a fake Discord keeps: users, guild, messages, interactions, recorded requests.

Tests assert on *what a person would see* (message texts, embeds, buttons, files, edits), so the
fake keeps messages as Discord does — one object per message id, edited in place, with every
revision kept — and keeps every HTTP request it answered, parsed, for assertions about *how* the
bot got there (retries, order, timing).
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

#: Discord's epoch (2015-01-01) in milliseconds; snowflakes count from it.
DISCORD_EPOCH_MS = 1420070400000

#: Message flag bits the fake understands.
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7

#: Permission bits used by the fake (a subset of Discord's).
PERM_MANAGE_GUILD = 1 << 5
PERM_ADD_REACTIONS = 1 << 6
PERM_VIEW_CHANNEL = 1 << 10
PERM_SEND_MESSAGES = 1 << 11
PERM_MANAGE_MESSAGES = 1 << 13
PERM_EMBED_LINKS = 1 << 14
PERM_ATTACH_FILES = 1 << 15
PERM_READ_MESSAGE_HISTORY = 1 << 16
PERM_USE_APPLICATION_COMMANDS = 1 << 31
MEMBER_PERMISSIONS = (
    PERM_ADD_REACTIONS
    | PERM_VIEW_CHANNEL
    | PERM_SEND_MESSAGES
    | PERM_EMBED_LINKS
    | PERM_ATTACH_FILES
    | PERM_READ_MESSAGE_HISTORY
    | PERM_USE_APPLICATION_COMMANDS
)

_snowflake_lock = threading.Lock()
_snowflake_counter = itertools.count()
_last_snowflake = 0


def new_snowflake() -> int:
    """A fresh, strictly increasing snowflake whose timestamp is now.

    discord.py reads the creation time out of ids (e.g. to pick a delete rate limit), so ids must
    carry a real timestamp, not just be unique.
    """
    global _last_snowflake
    with _snowflake_lock:
        candidate = ((int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22) | (next(_snowflake_counter) & 0xFFF)
        _last_snowflake = max(candidate, _last_snowflake + 1)
        return _last_snowflake


@dataclass
class FakeRole:
    id: int
    name: str
    permissions: int
    position: int = 0


@dataclass
class FakeUser:
    """A person (or the bot) known to the fake. ``role_ids`` make them a guild member."""

    id: int
    name: str
    bot: bool = False
    role_ids: list[int] = field(default_factory=list)

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"


@dataclass
class FakeChannel:
    id: int
    name: str
    guild_id: int | None
    #: When False the bot gets 403 Missing Permissions on posting here (a channel it may not use).
    bot_can_send: bool = True
    #: 1 = DM channel (recipient_id set); 0 = guild text channel.
    type: int = 0
    recipient_id: int | None = None


@dataclass
class FakeAttachment:
    """A file the fake serves at ``url``: one a user attached, or one the bot uploaded."""

    id: int
    filename: str
    data: bytes
    url: str
    content_type: str | None = None
    #: The size Discord *reports*; tests may claim a larger size than ``data`` (size-cap checks).
    size: int = 0
    width: int | None = None
    height: int | None = None
    #: How many times the fake served the bytes; a refused-before-download file stays at 0.
    downloads: int = 0

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.url,
        }
        if self.content_type is not None:
            payload["content_type"] = self.content_type
        if self.width is not None and self.height is not None:
            payload["width"] = self.width
            payload["height"] = self.height
        return payload


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request, as the bot sent it."""

    field_name: str
    filename: str
    data: bytes
    content_type: str | None


@dataclass(frozen=True)
class MessageRevision:
    """What a message looked like after one create or edit; ``at`` is ``time.monotonic()``."""

    at: float
    content: str
    embeds: list[dict[str, Any]]
    components: list[dict[str, Any]]
    attachments: list[FakeAttachment]
    flags: int


@dataclass(frozen=True)
class Mentions:
    """Whom a message mentions, after its ``allowed_mentions`` (Discord's ``mentions``,
    ``mention_roles`` and ``mention_everyone``)."""

    users: tuple[int, ...] = ()
    roles: tuple[int, ...] = ()
    everyone: bool = False


@dataclass
class FakeMessage:
    """One message in a channel (or an interaction's response), edited in place."""

    id: int
    channel_id: int
    author_id: int
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[FakeAttachment] = field(default_factory=list)
    flags: int = 0
    #: The interaction whose webhook created it, if any.
    interaction_id: int | None = None
    #: The user an ephemeral message is shown to.
    visible_to: int | None = None
    #: The message this one replies to (its ``message_reference``), if any.
    reply_to: int | None = None
    deleted: bool = False
    created_at: float = field(default_factory=time.monotonic)
    revisions: list[MessageRevision] = field(default_factory=list)
    #: emoji -> ids of users who reacted with it.
    reactions: dict[str, list[int]] = field(default_factory=dict)
    #: Who the current content mentions (resolved against the request's ``allowed_mentions``).
    mentions: Mentions = field(default_factory=Mentions)
    #: Who was pinged when the message was created (edits never ping).
    pings: Mentions = field(default_factory=Mentions)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & FLAG_EPHEMERAL)

    @property
    def loading(self) -> bool:
        """True while a deferred response shows "Bot is thinking..."."""
        return bool(self.flags & FLAG_LOADING)

    @property
    def edit_count(self) -> int:
        return max(0, len(self.revisions) - 1)

    def snapshot(self) -> None:
        self.revisions.append(
            MessageRevision(
                at=time.monotonic(),
                content=self.content,
                embeds=[dict(e) for e in self.embeds],
                components=list(self.components),
                attachments=list(self.attachments),
                flags=self.flags,
            )
        )

    # ---------------------------------------------------------------- what a user sees
    def text(self) -> str:
        """Content plus every embed's title, description, field names/values and footer, so a
        test can search for a phrase wherever the bot chose to put it."""
        parts = [self.content]
        for embed in self.embeds:
            parts.append(str(embed.get("title", "")))
            parts.append(str(embed.get("description", "")))
            for embed_field in embed.get("fields", []):
                parts.append(f"{embed_field.get('name', '')}: {embed_field.get('value', '')}")
            footer = embed.get("footer") or {}
            parts.append(str(footer.get("text", "")))
            author = embed.get("author") or {}
            parts.append(str(author.get("name", "")))
        return "\n".join(p for p in parts if p)

    def buttons(self) -> list[dict[str, Any]]:
        """Every button (type 2) in the message's action rows."""
        found: list[dict[str, Any]] = []

        def walk(components: list[dict[str, Any]]) -> None:
            for component in components:
                if component.get("type") == 2:
                    found.append(component)
                walk(component.get("components", []) or [])

        walk(self.components)
        return found

    def button(self, label: str) -> dict[str, Any]:
        """The button whose label contains ``label`` (case-insensitive); AssertionError if none."""
        for button in self.buttons():
            if label.lower() in str(button.get("label", "")).lower():
                return button
        labels = [b.get("label") for b in self.buttons()]
        raise AssertionError(f"no button labelled {label!r} on message {self.id}; has {labels}")

    def files(self) -> list[FakeAttachment]:
        return list(self.attachments)


@dataclass
class FakeInteraction:
    """An interaction the fake dispatched, and what the bot did with it."""

    id: int
    token: str
    type: int
    user: FakeUser
    channel_id: int
    payload: dict[str, Any]
    dispatched_at: float
    #: Callback type the bot answered with (4, 5, 6, 7, 8...), None until it answers.
    response_type: int | None = None
    responded_at: float | None = None
    #: The original response: the deferred/sent message, or for a component the message it is on.
    original_message_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)
    #: Set when the bot deleted the still-loading original of a "thinking" defer.
    original_deleted_while_loading: bool = False
    #: Autocomplete choices returned by the bot (callback type 8).
    choices: list[dict[str, Any]] | None = None
    expired: bool = False

    @property
    def deferred(self) -> bool:
        return self.response_type in (5, 6)


@dataclass
class RecordedRequest:
    """One HTTP request the fake answered, parsed."""

    route: str
    method: str
    path: str
    query: dict[str, str]
    json: Any
    files: list[UploadedFile]
    status: int
    at: float
    authorization: str | None
    #: True when the answer came from an injected fault.
    injected: bool = False
    interaction_id: int | None = None
    message_id: int | None = None
    response: Any = None

    @property
    def total_upload_bytes(self) -> int:
        return sum(len(f.data) for f in self.files)


@dataclass
class GatewayEvent:
    """A dispatch the fake sent (or buffered for a disconnected session)."""

    seq: int
    name: str
    data: dict[str, Any]
