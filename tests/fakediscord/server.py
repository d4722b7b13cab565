"""A fake Discord (REST + gateway + CDN) on 127.0.0.1 for end-to-end tests of a discord.py bot.

Start it, point discord.py at it with :meth:`FakeDiscord.patched_discord` (which sets discord.py's
own ``Route.BASE`` and ``DiscordWebSocket.DEFAULT_GATEWAY``), start the bot with
:attr:`FakeDiscord.token`, then act as users (:meth:`slash_command`, :meth:`click`,
:meth:`react`) and assert on :attr:`messages` / :attr:`requests`.

Why ``DEFAULT_GATEWAY`` and not only ``/gateway/bot``: a plain ``discord.Client`` /
``commands.Bot`` in discord.py 2.7 never asks ``/gateway`` or ``/gateway/bot`` for the websocket
URL; it connects to ``DiscordWebSocket.DEFAULT_GATEWAY`` and later resumes at READY's
``resume_gateway_url``. Only ``AutoShardedClient`` reads ``/gateway/bot``. The fake answers both
routes (with its own URL) and the fixture sets the class attribute, so either kind of client
lands here.

REST route names used in :attr:`requests` and by fault rules:

``gateway``, ``gateway_bot``, ``users_me``, ``user_get``, ``application_info``,
``global_commands_get``, ``global_commands_put``, ``global_command_post``,
``guild_commands_get``, ``guild_commands_put``, ``guild_command_post``,
``interaction_callback``, ``followup_create``, ``original_get``, ``original_edit``,
``original_delete``, ``followup_get``, ``followup_edit``, ``followup_delete``,
``channel_get``, ``guild_get``, ``member_get``, ``message_create``, ``message_get``,
``message_edit``, ``message_delete``, ``reaction_add``, ``reaction_remove_own``,
``reaction_remove_user``, ``typing``, ``dm_create``, ``attachment_download``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import io
import json
import logging
import re
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web

from . import gateway as gw
from . import limits
from .faults import (
    CODE_ALREADY_ACKNOWLEDGED,
    CODE_CANNOT_EDIT_OTHERS,
    CODE_INVALID_FORM_BODY,
    CODE_INVALID_WEBHOOK_TOKEN,
    CODE_MAX_APPLICATION_COMMANDS,
    CODE_MISSING_PERMISSIONS,
    CODE_REQUEST_TOO_LARGE,
    CODE_UNKNOWN_CHANNEL,
    CODE_UNKNOWN_INTERACTION,
    CODE_UNKNOWN_MESSAGE,
    CODE_UNKNOWN_WEBHOOK,
    FaultRule,
    error_response,
    json_response,
    rate_limited_response,
)
from .models import (
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    MEMBER_PERMISSIONS,
    PERM_ADD_REACTIONS,
    PERM_ATTACH_FILES,
    PERM_EMBED_LINKS,
    PERM_MANAGE_GUILD,
    PERM_MANAGE_MESSAGES,
    PERM_READ_MESSAGE_HISTORY,
    PERM_SEND_MESSAGES,
    PERM_VIEW_CHANNEL,
    FakeAttachment,
    FakeChannel,
    FakeInteraction,
    FakeMessage,
    FakeRole,
    FakeUser,
    Mentions,
    RecordedRequest,
    UploadedFile,
    new_snowflake,
)

log = logging.getLogger(__name__)

#: Gateway intents the fake checks before dispatching an event (as Discord does).
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_GUILD_MESSAGE_REACTIONS = 1 << 10
INTENT_DIRECT_MESSAGES = 1 << 12

#: Interaction types and callback types.
INTERACTION_APPLICATION_COMMAND = 2
INTERACTION_COMPONENT = 3
INTERACTION_AUTOCOMPLETE = 4
CALLBACK_MESSAGE = 4
CALLBACK_DEFERRED_MESSAGE = 5
CALLBACK_DEFERRED_UPDATE = 6
CALLBACK_UPDATE_MESSAGE = 7
CALLBACK_AUTOCOMPLETE = 8
CALLBACK_MODAL = 9

#: Message types (docs: resources/message#message-object-message-types).
MESSAGE_DEFAULT = 0
MESSAGE_CHAT_INPUT_COMMAND = 20
MESSAGE_CONTEXT_MENU_COMMAND = 23

#: Application command option types.
OPTION_SUB_COMMAND = 1
OPTION_SUB_COMMAND_GROUP = 2
OPTION_STRING = 3
OPTION_INTEGER = 4
OPTION_BOOLEAN = 5
OPTION_USER = 6
OPTION_CHANNEL = 7
OPTION_NUMBER = 10
OPTION_ATTACHMENT = 11

#: What a bot may do in a DM with a user (the ``permissions`` Discord reports there).
DM_PERMISSIONS = (
    PERM_ADD_REACTIONS
    | PERM_VIEW_CHANNEL
    | PERM_SEND_MESSAGES
    | PERM_EMBED_LINKS
    | PERM_ATTACH_FILES
    | PERM_READ_MESSAGE_HISTORY
)

#: Default upload cap per file (docs: reference#uploading-files, "The file upload size limit applies
#: to each file in a request. The default limit is 10 MiB").
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024


class WaitTimeout(AssertionError):
    """``wait_for`` gave up; the message lists what the fake saw, to make failures readable."""


@dataclass
class _Context:
    """One parsed REST request, handed to a route handler."""

    request: web.Request
    route: str
    groups: dict[str, str]
    json: Any
    files: list[UploadedFile]
    record: RecordedRequest


_Handler = Callable[[_Context], Awaitable[web.Response]]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _iso(ts: float | None = None) -> str:
    moment = datetime.datetime.fromtimestamp(ts if ts is not None else time.time(), datetime.timezone.utc)
    return moment.isoformat()


def _image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the image header, as Discord reports them; None for non-images."""
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:
        return None


_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")
_UPLOAD_FIELD = re.compile(r"files\[(\d+)\]")


def _upload_indexes(files: list[UploadedFile]) -> list[int]:
    """The ``n`` of each ``files[n]`` part (what ``attachments[].id`` refers to); else its position."""
    indexes = []
    for position, upload in enumerate(files):
        match = _UPLOAD_FIELD.fullmatch(upload.field_name)
        indexes.append(int(match.group(1)) if match else position)
    return indexes


def _check_allowed_mentions(allowed: Any) -> list[limits.Problem]:
    """docs: resources/message#allowed-mentions-object: ``parse`` holds "roles", "users",
    "everyone"; a type in ``parse`` and its own id list together is an error; lists hold at
    most 100 ids."""
    if allowed is None:
        return []
    if not isinstance(allowed, dict):
        return [limits.Problem(("allowed_mentions",), "DICT_TYPE_CONVERT", "Only dictionaries may be used")]
    found = []
    parse = allowed.get("parse") or []
    for index, kind in enumerate(parse):
        if kind not in ("roles", "users", "everyone"):
            found.append(
                limits.Problem(
                    ("allowed_mentions", "parse", index),
                    "BASE_TYPE_CHOICES",
                    "Value must be one of ('roles', 'users', 'everyone').",
                )
            )
    for kind in ("users", "roles"):
        ids = allowed.get(kind)
        if ids is None:
            continue
        if kind in parse and ids:
            found.append(
                limits.Problem(
                    ("allowed_mentions", kind),
                    "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                    f'parse:["{kind}"] and {kind}: [ids...] are mutually exclusive.',
                )
            )
        if len(ids) > 100:
            found.append(
                limits.Problem(
                    ("allowed_mentions", kind), "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length."
                )
            )
    return found


def _refuse_choices(choices: Any) -> web.Response | None:
    """Autocomplete answers (docs: interactions/receiving-and-responding, the autocomplete
    interaction response: "max of 25 choices")."""
    if choices is None:
        return None
    problems = limits.check_choices(("data", "choices"), choices)
    return json_response(limits.form_error(problems), status=400) if problems else None


def _refuse_defer_flags(flags: Any) -> web.Response | None:
    """docs (interactions/receiving-and-responding, interaction callback data, footnote on
    ``flags``): with DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE "the only valid message flag you may use
    is EPHEMERAL"."""
    if flags is None or (isinstance(flags, int) and not flags & ~FLAG_EPHEMERAL):
        return None
    problem = limits.Problem(
        ("data", "flags"), "INTERACTION_RESPONSE_INVALID_FLAGS", "Only the EPHEMERAL flag may be set here."
    )
    return json_response(limits.form_error([problem]), status=400)


def _refuse_command_count(commands: list[Any]) -> web.Response | None:
    """One scope's commands over a per-type limit (limits.COMMANDS_PER_TYPE_MAX): docs
    (topics/opcodes-and-status-codes#json) 30032 "Maximum number of application commands reached"."""
    limit = limits.exceeded_command_limit(commands)
    if limit is None:
        return None
    return error_response(
        400, CODE_MAX_APPLICATION_COMMANDS, f"Maximum number of application commands reached ({limit})"
    )


class FakeDiscord:
    """The fake Discord: state, REST routes, gateway, CDN, fault injection and waiting helpers."""

    def __init__(
        self,
        *,
        token: str | None = None,
        heartbeat_interval_ms: int = 41250,
        ack_deadline: float = 3.0,
        token_ttl: float = 15 * 60,
        upload_limit: int = DEFAULT_UPLOAD_LIMIT,
        expired_token_status: int = 401,
    ) -> None:
        #: The bot token the fake accepts (random, shaped like a real one so redaction tests mean
        #: something).
        self.token = token or (
            "MTA"
            + secrets.token_urlsafe(21)
            + "."
            + secrets.token_urlsafe(5)
            + "."
            + secrets.token_urlsafe(27)
        )
        self.heartbeat_interval_ms = heartbeat_interval_ms
        #: Seconds the bot has to answer an interaction (Discord: 3).
        self.ack_deadline = ack_deadline
        #: Seconds an interaction token stays valid (Discord: 15 minutes).
        self.token_ttl = token_ttl
        #: Bytes one file may have; a request with a larger file gets 413 (and interactions report it
        #: as ``attachment_size_limit``).
        self.upload_limit = upload_limit
        #: Status for an expired interaction token: 401 (code 50027, what Discord answers) or 404
        #: (code 10015, Unknown Webhook).
        self.expired_token_status = expired_token_status
        #: When False the fake stops answering heartbeats (a zombie connection).
        self.ack_heartbeats = True
        #: When True every RESUME is refused with INVALID_SESSION (the client must IDENTIFY).
        self.refuse_resume = False
        #: When set, every IDENTIFY is answered by closing the gateway with this code (4014:
        #: a privileged intent the application has not enabled; 4004: a bad token).
        self.identify_close_code: int | None = None
        #: ``(requests, seconds)`` per bucket (route + channel or interaction token), as Discord
        #: enforces them; None (the default) never limits. See :meth:`enforce_rate_limits`.
        self.rate_limit: tuple[int, float] | None = None
        #: The limits reported (counted truthfully, but not enforced) while ``rate_limit`` is None.
        self.reported_rate_limit: tuple[int, float] = (50, 1.0)
        self._buckets: dict[str, list[float]] = {}
        #: Requests answered 429 by the enforced limits (not by injected faults).
        self.rate_limited: list[RecordedRequest] = []
        #: How often an enforced bucket was used up (the client had to wait for it).
        self.buckets_exhausted = 0

        self.application_id = new_snowflake()
        self.guild_id = new_snowflake()
        self.bot_user = FakeUser(new_snowflake(), "StyleBot", bot=True)
        self.owner = FakeUser(new_snowflake(), "owner")
        self.roles: dict[int, FakeRole] = {
            self.guild_id: FakeRole(self.guild_id, "@everyone", MEMBER_PERMISSIONS, 0),
        }
        self.moderator_role = self._add_role("Moderators", MEMBER_PERMISSIONS | PERM_MANAGE_MESSAGES, 2)
        self.admin_role = self._add_role("Admins", MEMBER_PERMISSIONS | PERM_MANAGE_GUILD, 3)
        self.bot_role = self._add_role(
            "StyleBot",
            PERM_VIEW_CHANNEL
            | PERM_SEND_MESSAGES
            | PERM_ATTACH_FILES
            | PERM_EMBED_LINKS
            | PERM_READ_MESSAGE_HISTORY
            | PERM_ADD_REACTIONS,
            1,
        )
        self.bot_user.role_ids = [self.bot_role.id]
        self.channel = FakeChannel(new_snowflake(), "general", self.guild_id)
        self.channels: dict[int, FakeChannel] = {self.channel.id: self.channel}
        self.users: dict[int, FakeUser] = {self.bot_user.id: self.bot_user, self.owner.id: self.owner}
        self.alice = self.add_member("alice")
        self.bob = self.add_member("bob")
        self.moderator = self.add_member("mod", moderator=True)
        self.admin = self.add_member("admin", admin=True)
        #: Command name -> ids of members a server admin let use it although they lack its
        #: ``default_member_permissions`` (Server Settings -> Integrations: a per-command override).
        self.command_overrides: dict[str, set[int]] = {}

        self.messages: dict[int, FakeMessage] = {}
        self.interactions: dict[int, FakeInteraction] = {}
        self._interactions_by_token: dict[str, FakeInteraction] = {}
        self.requests: list[RecordedRequest] = []
        #: Requests to routes the fake does not know (a bot calling something unexpected).
        self.unhandled: list[RecordedRequest] = []
        #: Followups that Discord serves only as a deprecated edit of the "thinking" original.
        self.deprecated_flows: list[RecordedRequest] = []
        #: Followups after deleting a still-loading original: behaviour Discord does not document.
        self.undocumented_flows: list[RecordedRequest] = []
        self.global_commands: list[dict[str, Any]] = []
        self.guild_commands: dict[int, list[dict[str, Any]]] = {}
        self.cdn: dict[int, FakeAttachment] = {}
        self.faults: list[FaultRule] = []

        self.sessions: dict[str, gw.GatewaySession] = {}
        self.current_session: gw.GatewaySession | None = None
        self.connections: list[gw.GatewayConnection] = []
        #: IDENTIFY and RESUME payloads received (tokens included: tests check them).
        self.identifies: list[dict[str, Any]] = []
        self.resumes: list[dict[str, Any]] = []
        self.invalid_sessions_sent = 0

        self._changed: asyncio.Condition | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._routes = self._build_routes()

    # ================================================================== lifecycle
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        """What discord.py's ``Route.BASE`` must be set to."""
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway/"

    async def start(self) -> FakeDiscord:
        self._changed = asyncio.Condition()
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_get("/gateway/", self._gateway_handler)
        app.router.add_route("*", "/{tail:.*}", self._rest_handler)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        last_error: OSError | None = None
        for _ in range(5):
            self.port = _free_port()
            site = web.TCPSite(self._runner, "127.0.0.1", self.port)
            try:
                await site.start()
                return self
            except OSError as error:  # the probed port got taken in between: try another
                last_error = error
        raise RuntimeError(f"fake discord could not bind a port: {last_error}")

    async def stop(self) -> None:
        for connection in list(self.connections):
            if not connection.ws.closed:
                with contextlib.suppress(Exception):
                    await connection.close(1001)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @contextlib.contextmanager
    def patched_discord(self) -> Iterator[None]:
        """Point discord.py (REST base URL and default gateway) at this fake, restore afterwards."""
        import yarl
        from discord.gateway import DiscordWebSocket
        from discord.http import Route

        saved_base = Route.BASE
        saved_gateway = DiscordWebSocket.DEFAULT_GATEWAY
        Route.BASE = self.api_base
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield
        finally:
            Route.BASE = saved_base
            DiscordWebSocket.DEFAULT_GATEWAY = saved_gateway

    # ================================================================== people and places
    def _add_role(self, name: str, permissions: int, position: int) -> FakeRole:
        role = FakeRole(new_snowflake(), name, permissions, position)
        self.roles[role.id] = role
        return role

    def add_member(self, name: str, *, moderator: bool = False, admin: bool = False) -> FakeUser:
        """A new guild member; ``moderator`` gives them the Manage Messages role, ``admin`` the
        Manage Server role."""
        roles = ([self.moderator_role.id] if moderator else []) + ([self.admin_role.id] if admin else [])
        user = FakeUser(new_snowflake(), name, role_ids=roles)
        self.users[user.id] = user
        return user

    def dm_channel(self, user: FakeUser) -> FakeChannel:
        """The DM channel between ``user`` and the bot (made on first use, as Create DM does)."""
        channel = next((c for c in self.channels.values() if c.type == 1 and c.recipient_id == user.id), None)
        if channel is None:
            channel = FakeChannel(new_snowflake(), "dm", None, type=1, recipient_id=user.id)
            self.channels[channel.id] = channel
        return channel

    def add_channel(self, name: str, *, bot_can_send: bool = True) -> FakeChannel:
        """Another text channel. Call before the bot connects so GUILD_CREATE lists it."""
        channel = FakeChannel(new_snowflake(), name, self.guild_id, bot_can_send=bot_can_send)
        self.channels[channel.id] = channel
        return channel

    def permissions_of(self, user: FakeUser) -> int:
        if user.id == self.owner.id:
            return (1 << 41) - 1
        value = self.roles[self.guild_id].permissions
        for role_id in user.role_ids:
            value |= self.roles[role_id].permissions
        return value

    # ================================================================== payloads
    def user_payload(self, user: FakeUser) -> dict[str, Any]:
        return {
            "id": str(user.id),
            "username": user.name,
            "discriminator": "0",
            "global_name": user.name,
            "avatar": None,
            "bot": user.bot,
            "public_flags": 0,
            "flags": 0,
        }

    def member_payload(self, user: FakeUser, *, with_permissions: bool = False) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "user": self.user_payload(user),
            "roles": [str(r) for r in user.role_ids],
            "joined_at": _iso(time.time() - 86400),
            "deaf": False,
            "mute": False,
            "flags": 0,
            "nick": None,
            "avatar": None,
            "pending": False,
            "premium_since": None,
            "communication_disabled_until": None,
        }
        if with_permissions:
            payload["permissions"] = str(self.permissions_of(user))
        return payload

    def channel_payload(self, channel: FakeChannel) -> dict[str, Any]:
        if channel.type == 1:
            recipient = self.users[channel.recipient_id] if channel.recipient_id else self.owner
            return {
                "id": str(channel.id),
                "type": 1,
                "last_message_id": None,
                "recipients": [self.user_payload(recipient)],
                "flags": 0,
            }
        return {
            "id": str(channel.id),
            "type": 0,
            "guild_id": str(self.guild_id),
            "name": channel.name,
            "position": list(self.channels).index(channel.id),
            "permission_overwrites": []
            if channel.bot_can_send
            else [
                {
                    "id": str(self.bot_role.id),
                    "type": 0,
                    "allow": "0",
                    "deny": str(PERM_SEND_MESSAGES | PERM_ATTACH_FILES),
                }
            ],
            "nsfw": False,
            "parent_id": None,
            "topic": None,
            "rate_limit_per_user": 0,
            "last_message_id": None,
            "flags": 0,
        }

    def guild_payload(self) -> dict[str, Any]:
        guild_channels = [c for c in self.channels.values() if c.guild_id == self.guild_id]
        return {
            "id": str(self.guild_id),
            "name": "Fake Guild",
            "icon": None,
            "owner_id": str(self.owner.id),
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [
                {
                    "id": str(role.id),
                    "name": role.name,
                    "permissions": str(role.permissions),
                    "position": role.position,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                }
                for role in self.roles.values()
            ],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "system_channel_id": str(self.channel.id),
            "system_channel_flags": 0,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
            "joined_at": _iso(time.time() - 86400),
            "large": False,
            "unavailable": False,
            "member_count": len(self.users),
            "members": [self.member_payload(self.bot_user)],
            "channels": [self.channel_payload(c) for c in guild_channels],
            "threads": [],
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def message_payload(self, message: FakeMessage) -> dict[str, Any]:
        """A message object as REST returns it (docs: resources/message#message-object; the
        ``guild_id`` field belongs to the gateway's MESSAGE_CREATE, not to REST answers)."""
        author = self.users.get(message.author_id, self.bot_user)
        payload: dict[str, Any] = {
            "id": str(message.id),
            "channel_id": str(message.channel_id),
            "author": self.user_payload(author),
            "content": message.content,
            "timestamp": _iso(time.time() - (time.monotonic() - message.created_at)),
            "edited_timestamp": _iso() if message.edit_count else None,
            "tts": False,
            "mention_everyone": message.mentions.everyone,
            "mentions": [self.user_payload(self.users[u]) for u in message.mentions.users if u in self.users],
            "mention_roles": [str(r) for r in message.mentions.roles],
            "attachments": [a.to_payload() for a in message.attachments],
            "embeds": message.embeds,
            "components": message.components,
            "pinned": False,
            "type": self._message_type(message),
            "flags": message.flags,
            "reactions": [
                {
                    "count": len(users),
                    "count_details": {"burst": 0, "normal": len(users)},
                    "me": self.bot_user.id in users,
                    "me_burst": False,
                    "burst_colors": [],
                    "emoji": {"id": None, "name": emoji},
                }
                for emoji, users in message.reactions.items()
                if users
            ],
        }
        if message.interaction_id is not None:
            interaction = self.interactions[message.interaction_id]
            payload["webhook_id"] = str(self.application_id)
            payload["application_id"] = str(self.application_id)
            payload["interaction_metadata"] = {
                "id": str(interaction.id),
                "type": interaction.type,
                "user": self.user_payload(interaction.user),
                "authorizing_integration_owners": {"0": str(self.guild_id)},
            }
        return payload

    def _message_type(self, message: FakeMessage) -> int:
        """docs (resources/message#message-object-message-types): a command's response and
        followups are CHAT_INPUT_COMMAND (20), or CONTEXT_MENU_COMMAND (23) for a user or message
        command; anything else the bot sends (channel messages, component responses) is DEFAULT."""
        if message.interaction_id is None:
            return MESSAGE_DEFAULT
        interaction = self.interactions[message.interaction_id]
        if interaction.type != INTERACTION_APPLICATION_COMMAND:
            return MESSAGE_DEFAULT
        command_kind = limits.command_type(interaction.payload.get("data"))
        return (
            MESSAGE_CHAT_INPUT_COMMAND if command_kind == limits.CHAT_INPUT else MESSAGE_CONTEXT_MENU_COMMAND
        )

    # ================================================================== state changes
    async def _notify(self) -> None:
        if self._changed is None:
            return
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(
        self,
        predicate: Callable[[], Any],
        *,
        timeout: float = 30.0,
        message: str = "",
    ) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked after every request, gateway event and
        every 50 ms) and return its value; raise :class:`WaitTimeout` with a summary otherwise."""
        assert self._changed is not None, "start the fake first"
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimeout(f"timed out after {timeout}s waiting: {message}\n{self.describe()}")
            async with self._changed:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 0.05))

    def describe(self, last: int = 25) -> str:
        """The last requests and the visible messages, for failure messages."""
        lines = ["recent requests:"]
        for record in self.requests[-last:]:
            extra = f" files={[f.filename for f in record.files]}" if record.files else ""
            lines.append(
                f"  {record.method} {record.route} -> {record.status}{extra}"
                f"{' (injected)' if record.injected else ''}"
            )
        lines.append("messages:")
        for message in self.messages.values():
            text = message.text().replace("\n", " | ")[:160]
            lines.append(
                f"  {message.id} ch={message.channel_id} eph={message.ephemeral} "
                f"loading={message.loading} edits={message.edit_count} "
                f"files={[a.filename for a in message.attachments]} {text!r}"
            )
        if self.unhandled:
            lines.append(f"unhandled: {[(r.method, r.path) for r in self.unhandled]}")
        return "\n".join(lines)

    # ================================================================== queries for tests
    def requests_to(self, route: str, *, method: str | None = None) -> list[RecordedRequest]:
        return [r for r in self.requests if r.route == route and (method is None or r.method == method)]

    def channel_messages(
        self, channel_id: int | None = None, *, include_ephemeral: bool = True
    ) -> list[FakeMessage]:
        """Messages in a channel (default: the main one), oldest first, deleted ones excluded."""
        wanted = channel_id if channel_id is not None else self.channel.id
        return [
            m
            for m in self.messages.values()
            if m.channel_id == wanted and not m.deleted and (include_ephemeral or not m.ephemeral)
        ]

    def messages_for(self, interaction: FakeInteraction) -> list[FakeMessage]:
        """The interaction's original response and followups, oldest first."""
        ids = ([interaction.original_message_id] if interaction.original_message_id else []) + [
            i for i in interaction.followup_ids if i != interaction.original_message_id
        ]
        return [self.messages[i] for i in ids if i in self.messages and not self.messages[i].deleted]

    def original(self, interaction: FakeInteraction) -> FakeMessage | None:
        if interaction.original_message_id is None:
            return None
        return self.messages.get(interaction.original_message_id)

    def visible_to(self, user: FakeUser, channel_id: int | None = None) -> list[FakeMessage]:
        """What ``user`` sees in the channel: public messages plus their own ephemeral ones."""
        return [m for m in self.channel_messages(channel_id) if not m.ephemeral or m.visible_to == user.id]

    def find_messages(self, phrase: str, *, user: FakeUser | None = None) -> list[FakeMessage]:
        """Messages whose visible text contains ``phrase`` (case-insensitive), in any channel."""
        found = []
        for message in self.messages.values():
            if message.deleted or phrase.lower() not in message.text().lower():
                continue
            if user is not None and message.ephemeral and message.visible_to != user.id:
                continue
            found.append(message)
        return found

    # ================================================================== fault injection
    def inject(self, rule: FaultRule) -> FaultRule:
        self.faults.append(rule)
        return rule

    def fail(
        self,
        status: int,
        route: str | None = None,
        *,
        method: str | None = None,
        times: int = 1,
        retry_after: float = 0.25,
        is_global: bool = False,
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> FaultRule:
        """Answer the next ``times`` matching requests with ``status`` (429, 500, 413, ...)."""
        return self.inject(
            FaultRule(
                status=status,
                route=route,
                method=method,
                times=times,
                retry_after=retry_after,
                is_global=is_global,
                when=when,
            )
        )

    def enforce_rate_limits(self, requests: int = 5, seconds: float = 1.0) -> None:
        """Limit every bucket to ``requests`` per ``seconds`` with truthful ``X-RateLimit-*``
        headers, so discord.py's pre-emptive waits and 429 retries are exercised for real."""
        self.rate_limit = (requests, seconds)

    def _bucket_key(self, route: str, groups: dict[str, str]) -> str:
        major = groups.get("channel_id") or groups.get("token") or groups.get("interaction_id") or ""
        return f"{route}:{major}"

    def _take_from_bucket(self, route: str, groups: dict[str, str]) -> tuple[bool, dict[str, str], float]:
        """Count one request against its bucket: (allowed, ``X-RateLimit-*`` headers, seconds to reset).

        Every answer carries the headers Discord documents (topics/rate-limits#header-format),
        from the bucket's real count. Only ``enforce_rate_limits`` makes an empty bucket refuse.
        """
        limit, per = self.rate_limit or self.reported_rate_limit
        key = self._bucket_key(route, groups)
        now = time.monotonic()
        window = self._buckets.setdefault(key, [now + per, float(limit)])
        if now >= window[0]:
            window[0], window[1] = now + per, float(limit)
        reset_after = max(0.0, window[0] - now)
        allowed = window[1] > 0 or self.rate_limit is None
        if window[1] > 0:
            window[1] -= 1
            if window[1] == 0 and self.rate_limit is not None:
                self.buckets_exhausted += 1
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(int(window[1])),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": hashlib.sha1(route.encode()).hexdigest()[:16],
        }
        return allowed, headers, reset_after

    def expire_interaction(self, interaction: FakeInteraction) -> None:
        """Make the interaction's token invalid, as 15 minutes after it was created."""
        interaction.expired = True

    # ================================================================== acting as users
    def make_attachment(
        self,
        data: bytes,
        filename: str,
        *,
        content_type: str | None = None,
        size: int | None = None,
        dimensions: tuple[int, int] | None = None,
    ) -> FakeAttachment:
        """A file a user attached; the fake serves ``data`` at its URL and counts downloads.

        ``size`` overrides the size Discord reports (to test caps without big buffers).
        """
        attachment_id = new_snowflake()
        url = f"{self.base_url}/attachments/{self.channel.id}/{attachment_id}/{quote(filename, safe='')}"
        if dimensions is None:
            dimensions = _image_size(data)
        attachment = FakeAttachment(
            id=attachment_id,
            filename=filename,
            data=data,
            url=url,
            content_type=content_type,
            size=len(data) if size is None else size,
            width=dimensions[0] if dimensions else None,
            height=dimensions[1] if dimensions else None,
        )
        self.cdn[attachment_id] = attachment
        return attachment

    def _find_command(self, name: str) -> dict[str, Any] | None:
        for command in self.guild_commands.get(self.guild_id, []):
            if command["name"] == name:
                return command
        for command in self.global_commands:
            if command["name"] == name:
                return command
        return None

    def _option_payload(
        self,
        name: str,
        value: Any,
        schema: dict[str, Any] | None,
        resolved: dict[str, dict[str, Any]],
        user: FakeUser | None = None,
    ) -> dict[str, Any]:
        declared = None
        if schema is not None:
            declared = next((o for o in schema.get("options", []) if o["name"] == name), None)
            if declared is None:
                raise AssertionError(f"command {schema['name']!r} has no option {name!r}")
        if isinstance(value, FakeAttachment):
            option_type, raw = OPTION_ATTACHMENT, str(value.id)
            resolved.setdefault("attachments", {})[str(value.id)] = value.to_payload()
        elif isinstance(value, FakeUser):
            option_type, raw = OPTION_USER, str(value.id)
            resolved.setdefault("users", {})[str(value.id)] = self.user_payload(value)
            member = self.member_payload(value, with_permissions=True)
            member.pop("user")
            resolved.setdefault("members", {})[str(value.id)] = member
        elif isinstance(value, FakeChannel):
            option_type, raw = OPTION_CHANNEL, str(value.id)
            # docs (interactions/receiving-and-responding, "Resolved Data Structure"): partial
            # channels, with the invoking member's permissions in them
            resolved.setdefault("channels", {})[str(value.id)] = {
                "id": str(value.id),
                "name": value.name,
                "type": value.type,
                "permissions": str(self.permissions_of(self.alice if user is None else user)),
            }
        elif isinstance(value, bool):
            option_type, raw = OPTION_BOOLEAN, value
        elif isinstance(value, int):
            option_type, raw = OPTION_INTEGER, value
        elif isinstance(value, float):
            option_type, raw = OPTION_NUMBER, value
        else:
            option_type, raw = OPTION_STRING, str(value)
        if declared is not None:
            if declared["type"] != option_type and not (
                declared["type"] == OPTION_NUMBER and option_type == OPTION_INTEGER
            ):
                raise AssertionError(
                    f"option {name!r} is declared with type {declared['type']}, test sent {option_type}"
                )
            option_type = declared["type"]
        return {"name": name, "type": option_type, "value": raw}

    def _base_interaction(
        self, kind: int, user: FakeUser, channel: FakeChannel
    ) -> tuple[int, str, dict[str, Any]]:
        interaction_id = new_snowflake()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(48)
        channel_data = self.channel_payload(channel)
        if channel.type == 1:
            # docs (interactions/receiving-and-responding, "Interaction Object"): in a DM there is no
            # guild_id and no member, but ``user``; the context is BOT_DM (1), and a guild
            # installation's owner is "0" there.
            channel_data["permissions"] = str(DM_PERMISSIONS)
            return (
                interaction_id,
                token,
                {
                    "id": str(interaction_id),
                    "application_id": str(self.application_id),
                    "type": kind,
                    "token": token,
                    "version": 1,
                    "channel_id": str(channel.id),
                    "channel": channel_data,
                    "user": self.user_payload(user),
                    "app_permissions": str(DM_PERMISSIONS),
                    "locale": "en-US",
                    "entitlements": [],
                    "authorizing_integration_owners": {"0": "0"},
                    "context": 1,
                    "attachment_size_limit": self.upload_limit,
                },
            )
        channel_data["permissions"] = str(self.permissions_of(user))
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": kind,
            "token": token,
            "version": 1,
            "guild_id": str(self.guild_id),
            "guild": {"id": str(self.guild_id), "locale": "en-US", "features": []},
            "channel_id": str(channel.id),
            "channel": channel_data,
            "member": self.member_payload(user, with_permissions=True),
            "app_permissions": str(self.permissions_of(self.bot_user)),
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(self.guild_id)},
            "context": 0,
            "attachment_size_limit": self.upload_limit,
        }
        return interaction_id, token, payload

    async def _dispatch_interaction(
        self,
        interaction_id: int,
        token: str,
        kind: int,
        user: FakeUser,
        channel: FakeChannel,
        payload: dict[str, Any],
    ) -> FakeInteraction:
        interaction = FakeInteraction(
            id=interaction_id,
            token=token,
            type=kind,
            user=user,
            channel_id=channel.id,
            payload=payload,
            dispatched_at=time.monotonic(),
        )
        self.interactions[interaction_id] = interaction
        self._interactions_by_token[token] = interaction
        await self.dispatch("INTERACTION_CREATE", payload)
        return interaction

    async def slash_command(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        user: FakeUser | None = None,
        channel: FakeChannel | None = None,
        autocomplete_focus: str | None = None,
    ) -> FakeInteraction:
        """A user runs ``/name`` with ``options`` (attachments, strings, ints, bools, users).

        When the bot synced its commands, option types come from its own declarations (and an
        option it did not declare is a test error); otherwise they are inferred from the values.
        ``autocomplete_focus`` sends an autocomplete request for that option instead.
        """
        user = user or self.alice
        channel = channel or self.channel
        name, *path = name.split()
        schema = self._find_command(name)
        if schema is not None:
            self._check_offered(schema, user, channel)
        # ``name`` may name a subcommand ("group sub" or "group subgroup sub"): the options nest
        # under it, as Discord sends them, and are typed from its declaration.
        declared = schema
        for step in path:
            declared = next((o for o in (declared or {}).get("options", []) if o["name"] == step), None)
            if schema is not None and declared is None:
                raise AssertionError(f"command {name!r} has no subcommand {' '.join(path)!r}")
        resolved: dict[str, dict[str, Any]] = {}
        option_payloads = []
        for option_name, value in (options or {}).items():
            option = self._option_payload(option_name, value, declared, resolved, user)
            if option_name == autocomplete_focus:
                option["focused"] = True
            option_payloads.append(option)
        for depth, step in reversed(list(enumerate(path))):
            kind_of_step = OPTION_SUB_COMMAND if depth == len(path) - 1 else OPTION_SUB_COMMAND_GROUP
            option_payloads = [{"name": step, "type": kind_of_step, "options": option_payloads}]
        kind = INTERACTION_AUTOCOMPLETE if autocomplete_focus else INTERACTION_APPLICATION_COMMAND
        interaction_id, token, payload = self._base_interaction(kind, user, channel)
        data: dict[str, Any] = {
            "id": str(schema["id"]) if schema else str(new_snowflake()),
            "name": name,
            "type": 1,
            "options": option_payloads,
        }
        if resolved:
            data["resolved"] = resolved
        if schema is not None and schema.get("guild_id"):
            data["guild_id"] = schema["guild_id"]
        payload["data"] = data
        return await self._dispatch_interaction(interaction_id, token, kind, user, channel, payload)

    def _check_offered(self, schema: dict[str, Any], user: FakeUser, channel: FakeChannel) -> None:
        """Refuse (as a test error) a registered command Discord would not offer this user here.

        docs (interactions/application-commands, "Permissions" and "Contexts"): a guild command
        exists only in its guild; ``contexts`` (or the deprecated ``dm_permission: false``) keeps a
        global command out of DMs; ``default_member_permissions`` hides a command from members
        without those permissions, unless the server's admins granted it to them (an override).
        """
        name = schema["name"]
        if channel.type == 1:
            contexts = schema.get("contexts")
            if (
                schema.get("guild_id")
                or schema.get("dm_permission") is False
                or (contexts is not None and 1 not in contexts)
            ):
                raise AssertionError(f"Discord does not offer /{name} in DMs: {schema}")
            return
        required = schema.get("default_member_permissions")
        if required is None or user.id in self.command_overrides.get(name, set()):
            return
        needed = int(required)
        if self.permissions_of(user) & needed != needed:
            raise AssertionError(
                f"Discord does not offer /{name} to {user.name} (needs permissions {needed})"
            )

    async def message_command(
        self, name: str, target: FakeMessage, *, user: FakeUser | None = None
    ) -> FakeInteraction:
        """A user picks a message context-menu command ``name`` on ``target``."""
        user = user or self.alice
        channel = self.channels[target.channel_id]
        schema = self._find_command(name)
        if schema is not None:
            self._check_offered(schema, user, channel)
        interaction_id, token, payload = self._base_interaction(
            INTERACTION_APPLICATION_COMMAND, user, channel
        )
        payload["data"] = {
            "id": str(schema["id"]) if schema else str(new_snowflake()),
            "name": name,
            "type": 3,
            "target_id": str(target.id),
            "resolved": {"messages": {str(target.id): self.message_payload(target)}},
        }
        return await self._dispatch_interaction(
            interaction_id, token, INTERACTION_APPLICATION_COMMAND, user, channel, payload
        )

    async def click(
        self, message: FakeMessage, button: str, *, user: FakeUser | None = None
    ) -> FakeInteraction:
        """A user presses a button on ``message``, found by label (or by exact ``custom_id``)."""
        user = user or self.alice
        custom_id = next((b["custom_id"] for b in message.buttons() if b.get("custom_id") == button), None)
        if custom_id is None:
            custom_id = message.button(button)["custom_id"]
        channel = self.channels[message.channel_id]
        interaction_id, token, payload = self._base_interaction(INTERACTION_COMPONENT, user, channel)
        payload["data"] = {"custom_id": custom_id, "component_type": 2}
        payload["message"] = self.message_payload(message)
        interaction = await self._dispatch_interaction(
            interaction_id, token, INTERACTION_COMPONENT, user, channel, payload
        )
        return interaction

    async def react(self, message: FakeMessage, emoji: str, *, user: FakeUser | None = None) -> None:
        """A user adds a reaction; the bot gets MESSAGE_REACTION_ADD if it asked for the intent."""
        user = user or self.alice
        message.reactions.setdefault(emoji, [])
        if user.id not in message.reactions[emoji]:
            message.reactions[emoji].append(user.id)
        await self._dispatch_reaction(message, emoji, user)

    async def _dispatch_reaction(self, message: FakeMessage, emoji: str, user: FakeUser) -> None:
        channel = self.channels[message.channel_id]
        data: dict[str, Any] = {
            "user_id": str(user.id),
            "channel_id": str(message.channel_id),
            "message_id": str(message.id),
            "emoji": {"id": None, "name": emoji},
            "burst": False,
            "burst_colors": [],
            "type": 0,
            "message_author_id": str(message.author_id),
        }
        if channel.guild_id is not None:
            data["guild_id"] = str(channel.guild_id)
            data["member"] = self.member_payload(user)
        await self.dispatch("MESSAGE_REACTION_ADD", data, intent=INTENT_GUILD_MESSAGE_REACTIONS)

    # ================================================================== gateway
    async def dispatch(self, name: str, data: dict[str, Any], *, intent: int | None = None) -> bool:
        """Send an event to the current session (buffered for RESUME while it is disconnected).

        Returns False when no session wants it (none identified, or the intent is missing).
        """
        session = self.current_session
        if session is None or session.invalid:
            return False
        if intent is not None and not session.intents & intent:
            return False
        event = session.next_event(name, data)
        connection = session.connection
        if connection is not None and not connection.closed:
            try:
                await connection.dispatch(event)
            except (ConnectionResetError, RuntimeError):
                log.debug("event %s buffered: connection went away", name)
        await self._notify()
        return True

    async def drop_gateway(self, *, abort: bool = False, code: int = gw.CLOSE_UNKNOWN_ERROR) -> None:
        """Drop the bot's websocket: a close frame with ``code`` or, with ``abort``, a cut TCP
        connection. The session survives, so the client should RESUME and get what it missed."""
        session = self.current_session
        assert session is not None and session.connection is not None, "no connected session to drop"
        connection = session.connection
        session.connection = None
        if abort:
            connection.abort()
        else:
            await connection.close(code)
        await self._notify()

    async def send_reconnect(self) -> None:
        """Ask the client to reconnect (opcode 7), as Discord does before moving a session."""
        session = self.current_session
        assert session is not None and session.connection is not None
        await session.connection.send({"op": gw.OP_RECONNECT, "d": None})

    def invalidate_sessions(self) -> None:
        """Forget every session: the next RESUME gets INVALID_SESSION and must IDENTIFY again."""
        for session in self.sessions.values():
            session.invalid = True

    @property
    def connected(self) -> bool:
        session = self.current_session
        return bool(session and session.connection and not session.connection.closed)

    async def _gateway_handler(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True)
        await ws.prepare(request)
        connection = gw.GatewayConnection(ws, request, request.query.get("compress"))
        self.connections.append(connection)
        try:
            await connection.send(
                {"op": gw.OP_HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms}}
            )
            while True:
                payload = await gw.receive_json(ws)
                if payload is None:
                    break
                await self._gateway_op(connection, payload)
        except (ConnectionResetError, RuntimeError) as error:
            log.debug("gateway connection ended: %s", error)
        finally:
            connection.closed = True
            session = connection.session
            if session is not None and session.connection is connection:
                session.connection = None
            await self._notify()
        return ws

    async def _gateway_op(self, connection: gw.GatewayConnection, payload: dict[str, Any]) -> None:
        op = payload.get("op")
        data = payload.get("d")
        if op == gw.OP_HEARTBEAT:
            connection.heartbeats += 1
            if self.ack_heartbeats:
                await connection.send({"op": gw.OP_HEARTBEAT_ACK})
        elif op == gw.OP_IDENTIFY:
            self.identifies.append(data)
            if self.identify_close_code is not None:
                await connection.close(self.identify_close_code)
                return
            if data.get("token") != self.token:
                await connection.close(gw.CLOSE_AUTHENTICATION_FAILED)
                return
            session = gw.GatewaySession(gw.new_session_id(), int(data.get("intents") or 0))
            self.sessions[session.session_id] = session
            self.current_session = session
            session.connection = connection
            connection.session = session
            ready = session.next_event(
                "READY",
                {
                    "v": 10,
                    "user": self.user_payload(self.bot_user),
                    "guilds": [{"id": str(self.guild_id), "unavailable": True}],
                    "session_id": session.session_id,
                    "resume_gateway_url": self.gateway_url,
                    "session_type": "normal",
                    "application": {"id": str(self.application_id), "flags": 0},
                    "private_channels": [],
                    "relationships": [],
                    "user_settings": {},
                    "geo_ordered_rtc_regions": [],
                    "shard": [0, 1],
                },
            )
            await connection.dispatch(ready)
            guild = session.next_event("GUILD_CREATE", self.guild_payload())
            await connection.dispatch(guild)
            await self._notify()
        elif op == gw.OP_RESUME:
            self.resumes.append(data)
            session = self.sessions.get(data.get("session_id"))
            if self.refuse_resume or session is None or session.invalid or data.get("token") != self.token:
                self.invalid_sessions_sent += 1
                await connection.send({"op": gw.OP_INVALID_SESSION, "d": False})
                await self._notify()
                return
            old = session.connection
            if old is not None and old is not connection and not old.closed:
                await old.close(gw.CLOSE_UNKNOWN_ERROR)
            session.connection = connection
            connection.session = session
            self.current_session = session
            client_seq = int(data.get("seq") or 0)
            for event in session.events:
                if event.seq > client_seq:
                    await connection.dispatch(event)
            await connection.dispatch(session.next_event("RESUMED", {}))
            await self._notify()
        elif op in (gw.OP_PRESENCE, gw.OP_REQUEST_MEMBERS):
            return
        else:
            log.warning("fake gateway got unknown op %s", op)

    # ================================================================== REST plumbing
    def _build_routes(self) -> list[tuple[str, re.Pattern[str], str, _Handler, bool]]:
        """(method, path regex under /api/v10, route name, handler, needs bot auth)."""
        s = r"(?P<%s>\d+)"
        t = r"(?P<token>[^/]+)"
        table: list[tuple[str, str, str, _Handler, bool]] = [
            ("GET", "/gateway", "gateway", self._get_gateway, False),
            ("GET", "/gateway/bot", "gateway_bot", self._get_gateway_bot, True),
            ("GET", "/users/@me", "users_me", self._get_me, True),
            ("GET", "/users/" + s % "user_id", "user_get", self._get_user, True),
            ("POST", "/users/@me/channels", "dm_create", self._create_dm, True),
            ("GET", "/oauth2/applications/@me", "application_info", self._get_application, True),
            (
                "GET",
                "/applications/" + s % "app_id" + "/commands",
                "global_commands_get",
                self._get_commands,
                True,
            ),
            (
                "PUT",
                "/applications/" + s % "app_id" + "/commands",
                "global_commands_put",
                self._put_commands,
                True,
            ),
            (
                "POST",
                "/applications/" + s % "app_id" + "/commands",
                "global_command_post",
                self._post_command,
                True,
            ),
            (
                "GET",
                "/applications/" + s % "app_id" + "/guilds/" + s % "guild_id" + "/commands",
                "guild_commands_get",
                self._get_commands,
                True,
            ),
            (
                "PUT",
                "/applications/" + s % "app_id" + "/guilds/" + s % "guild_id" + "/commands",
                "guild_commands_put",
                self._put_commands,
                True,
            ),
            (
                "POST",
                "/applications/" + s % "app_id" + "/guilds/" + s % "guild_id" + "/commands",
                "guild_command_post",
                self._post_command,
                True,
            ),
            (
                "POST",
                "/interactions/" + s % "interaction_id" + "/" + t + "/callback",
                "interaction_callback",
                self._interaction_callback,
                False,
            ),
            ("POST", "/webhooks/" + s % "app_id" + "/" + t, "followup_create", self._followup_create, False),
            (
                "GET",
                "/webhooks/" + s % "app_id" + "/" + t + "/messages/@original",
                "original_get",
                self._webhook_message_get,
                False,
            ),
            (
                "PATCH",
                "/webhooks/" + s % "app_id" + "/" + t + "/messages/@original",
                "original_edit",
                self._webhook_message_edit,
                False,
            ),
            (
                "DELETE",
                "/webhooks/" + s % "app_id" + "/" + t + "/messages/@original",
                "original_delete",
                self._webhook_message_delete,
                False,
            ),
            (
                "GET",
                "/webhooks/" + s % "app_id" + "/" + t + "/messages/" + s % "message_id",
                "followup_get",
                self._webhook_message_get,
                False,
            ),
            (
                "PATCH",
                "/webhooks/" + s % "app_id" + "/" + t + "/messages/" + s % "message_id",
                "followup_edit",
                self._webhook_message_edit,
                False,
            ),
            (
                "DELETE",
                "/webhooks/" + s % "app_id" + "/" + t + "/messages/" + s % "message_id",
                "followup_delete",
                self._webhook_message_delete,
                False,
            ),
            ("GET", "/channels/" + s % "channel_id", "channel_get", self._get_channel, True),
            ("GET", "/guilds/" + s % "guild_id", "guild_get", self._get_guild, True),
            (
                "GET",
                "/guilds/" + s % "guild_id" + "/members/" + s % "user_id",
                "member_get",
                self._get_member,
                True,
            ),
            (
                "POST",
                "/channels/" + s % "channel_id" + "/messages",
                "message_create",
                self._message_create,
                True,
            ),
            (
                "GET",
                "/channels/" + s % "channel_id" + "/messages/" + s % "message_id",
                "message_get",
                self._message_get,
                True,
            ),
            (
                "PATCH",
                "/channels/" + s % "channel_id" + "/messages/" + s % "message_id",
                "message_edit",
                self._message_edit,
                True,
            ),
            (
                "DELETE",
                "/channels/" + s % "channel_id" + "/messages/" + s % "message_id",
                "message_delete",
                self._message_delete,
                True,
            ),
            (
                "PUT",
                "/channels/"
                + s % "channel_id"
                + "/messages/"
                + s % "message_id"
                + "/reactions/(?P<emoji>[^/]+)/@me",
                "reaction_add",
                self._reaction_add,
                True,
            ),
            (
                "DELETE",
                "/channels/"
                + s % "channel_id"
                + "/messages/"
                + s % "message_id"
                + "/reactions/(?P<emoji>[^/]+)/@me",
                "reaction_remove_own",
                self._reaction_remove,
                True,
            ),
            (
                "DELETE",
                "/channels/"
                + s % "channel_id"
                + "/messages/"
                + s % "message_id"
                + "/reactions/(?P<emoji>[^/]+)/"
                + s % "user_id",
                "reaction_remove_user",
                self._reaction_remove,
                True,
            ),
            ("POST", "/channels/" + s % "channel_id" + "/typing", "typing", self._typing, True),
        ]
        return [(m, re.compile(r"/api/v(?:9|10)" + p + "$"), n, h, a) for m, p, n, h, a in table]

    async def _parse_body(self, request: web.Request) -> tuple[Any, list[UploadedFile]]:
        if request.content_type.startswith("multipart/"):
            payload: Any = None
            files: list[UploadedFile] = []
            reader = await request.multipart()
            async for part in reader:
                data = await part.read()  # type: ignore[union-attr]
                name = part.name or ""
                if name == "payload_json":
                    payload = json.loads(bytes(data).decode())
                elif part.filename is not None:
                    files.append(
                        UploadedFile(name, part.filename, bytes(data), part.headers.get("Content-Type"))
                    )
            return payload, files
        body = await request.read()
        if not body:
            return None, []
        try:
            return json.loads(body), []
        except ValueError:
            return body.decode(errors="replace"), []

    async def _rest_handler(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith("/attachments/"):
            return await self._serve_attachment(request)
        json_body, files = await self._parse_body(request)
        record = RecordedRequest(
            route="unhandled",
            method=request.method,
            path=path,
            query=dict(request.query),
            json=json_body,
            files=files,
            status=0,
            at=time.monotonic(),
            authorization=request.headers.get("Authorization"),
        )
        for method, pattern, route, handler, needs_auth in self._routes:  # noqa: B007  (read after the break)
            match = pattern.match(path)
            if match and method == request.method:
                break
        else:
            record.status = 404
            self.unhandled.append(record)
            self.requests.append(record)
            log.warning("fake discord: unhandled %s %s", request.method, path)
            await self._notify()
            return error_response(404, 0, "404: Not Found")
        record.route = route
        context = _Context(request, route, match.groupdict(), json_body, files, record)
        details = {
            "route": route,
            "method": method,
            "json": json_body,
            "files": files,
            "groups": context.groups,
        }
        response: web.Response
        rule = next((r for r in self.faults if r.matches(route, method, details)), None)
        allowed, headers, reset_after = self._take_from_bucket(route, context.groups)
        limit = headers["X-RateLimit-Limit"]
        if needs_auth and record.authorization != f"Bot {self.token}":
            response = error_response(401, 0, "401: Unauthorized")
        elif rule is not None:
            await asyncio.sleep(rule.delay)
            response = rule.respond(headers["X-RateLimit-Bucket"], limit=int(limit))
            record.injected = True
        elif not allowed:
            response = rate_limited_response(
                reset_after, is_global=False, bucket=headers["X-RateLimit-Bucket"], limit=int(limit)
            )
            self.rate_limited.append(record)
        else:
            try:
                response = await handler(context)
            except Exception:  # a bug in the fake must show up as a 500, loudly, not hang a test
                log.exception("fake discord handler for %s failed", route)
                response = error_response(500, 0, "fake discord crashed")
        if response.status != 429:  # a 429 carries its own (Remaining 0, Reset-After = retry_after)
            response.headers.update(headers)
        record.status = response.status
        if response.body and response.content_type == "application/json":
            with contextlib.suppress(Exception):
                record.response = json.loads(response.body)  # type: ignore[arg-type]
        self.requests.append(record)
        await self._notify()
        return response

    async def _serve_attachment(self, request: web.Request) -> web.StreamResponse:
        parts = request.path.split("/")
        record = RecordedRequest(
            route="attachment_download",
            method=request.method,
            path=request.path,
            query={},
            json=None,
            files=[],
            status=404,
            at=time.monotonic(),
            authorization=request.headers.get("Authorization"),
        )
        attachment = self.cdn.get(int(parts[3])) if len(parts) > 3 and parts[3].isdigit() else None
        rule = next((r for r in self.faults if r.matches("attachment_download", request.method, {})), None)
        if rule is not None:
            response = rule.respond("cdn", limit=self.reported_rate_limit[0])
            record.injected = True
        elif attachment is None:
            response = web.Response(status=404, text="not found")
        else:
            attachment.downloads += 1
            response = web.Response(
                body=attachment.data, content_type=attachment.content_type or "application/octet-stream"
            )
        record.status = response.status
        self.requests.append(record)
        await self._notify()
        return response

    # ================================================================== message bodies
    def _new_attachments(self, context: _Context) -> list[FakeAttachment]:
        stored = []
        for upload in context.files:
            attachment_id = new_snowflake()
            filename = quote(upload.filename, safe="")
            url = f"{self.base_url}/attachments/{self.channel.id}/{attachment_id}/{filename}"
            size = _image_size(upload.data)
            attachment = FakeAttachment(
                id=attachment_id,
                filename=upload.filename,
                data=upload.data,
                url=url,
                content_type=upload.content_type,
                size=len(upload.data),
                width=size[0] if size else None,
                height=size[1] if size else None,
            )
            self.cdn[attachment_id] = attachment
            stored.append(attachment)
        return stored

    def _too_large(self, context: _Context) -> web.Response | None:
        """413 when any one file is over the upload limit (Discord's limit is per file)."""
        if any(len(upload.data) > self.upload_limit for upload in context.files):
            return error_response(413, CODE_REQUEST_TOO_LARGE, "Request entity too large")
        return None

    def _refuse_message(
        self,
        context: _Context,
        body: dict[str, Any],
        *,
        message: FakeMessage | None = None,
        at: tuple[str, ...] = (),
    ) -> web.Response | None:
        """What Discord answers to a message body it will not take (None: it takes it).

        ``message`` is the message being edited (None when creating one): an edit may leave out
        what it keeps, but must not leave the message empty either. ``at`` is where ``body`` sits
        in the request (``("data",)`` in an interaction callback); the errors are nested there.
        """
        if too_large := self._too_large(context):
            return too_large
        problems = limits.check_message(body, file_count=len(context.files))
        problems += self._check_attachment_refs(context, body, message)
        problems += _check_allowed_mentions(body.get("allowed_mentions"))
        if problems:
            return json_response(limits.form_error(limits.nested(at, problems)), status=400)
        if message is None:
            empty = limits.is_empty_message(body, file_count=len(context.files))
        else:
            # with an ``attachments`` list the message keeps exactly what it names; without one it
            # keeps its files and gains the uploads (docs: reference#editing-message-attachments)
            listed = body.get("attachments")
            kept = listed if listed is not None else [*message.attachments, *context.files]
            empty = not (
                (body.get("content", message.content) or "").strip()
                or body.get("embeds", message.embeds)
                or body.get("components", message.components)
                or kept
            )
        if empty:
            return json_response(limits.empty_message_error(), status=400)
        return None

    def _check_attachment_refs(
        self, context: _Context, body: dict[str, Any], message: FakeMessage | None
    ) -> list[limits.Problem]:
        """Each ``attachments`` entry names a file of this request or one the message already has."""
        entries = body.get("attachments")
        if entries is None:
            return []
        if not isinstance(entries, list):
            return [limits.Problem(("attachments",), "LIST_TYPE_CONVERT", "Must be an array.")]
        existing = {a.id for a in message.attachments} if message is not None else set()
        uploaded = set(_upload_indexes(context.files))
        found = []
        for index, entry in enumerate(entries):
            raw = entry.get("id") if isinstance(entry, dict) else None
            try:
                entry_id = int(raw)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                entry_id = -1
            if entry_id not in existing and entry_id not in uploaded:
                found.append(
                    limits.Problem(
                        ("attachments", index, "id"),
                        "ATTACHMENT_NOT_FOUND",
                        "The attachment is neither uploaded with this request nor on the message",
                    )
                )
        return found

    def _resolve_mentions(self, content: str, allowed: Any) -> Mentions:
        """Whom ``content`` mentions, as Discord resolves it: without ``allowed_mentions`` every
        mention in the text counts (users, roles, @everyone/@here); with it, only what its
        ``parse`` list or its ``users`` / ``roles`` ids allow."""
        users = [int(i) for i in _USER_MENTION.findall(content or "")]
        roles = [int(i) for i in _ROLE_MENTION.findall(content or "")]
        everyone = "@everyone" in (content or "") or "@here" in (content or "")
        if allowed is None:
            parse, allowed_users, allowed_roles = {"users", "roles", "everyone"}, set(), set()
        else:
            parse = set(allowed.get("parse") or [])
            allowed_users = {int(i) for i in allowed.get("users") or []}
            allowed_roles = {int(i) for i in allowed.get("roles") or []}
        return Mentions(
            users=tuple(dict.fromkeys(u for u in users if "users" in parse or u in allowed_users)),
            roles=tuple(dict.fromkeys(r for r in roles if "roles" in parse or r in allowed_roles)),
            everyone=everyone and "everyone" in parse,
        )

    def _apply_body(
        self, message: FakeMessage, body: dict[str, Any], context: _Context, *, creating: bool
    ) -> None:
        """Apply a create/edit body: the fields present replace the old ones (Discord's PATCH)."""
        if "content" in body:
            message.content = body["content"] or ""
        if "embeds" in body:
            message.embeds = list(body["embeds"] or [])
        elif "embed" in body:
            message.embeds = [body["embed"]] if body["embed"] else []
        if "components" in body:
            message.components = limits.assign_component_ids(list(body["components"] or []))
        reference = body.get("message_reference")
        if creating and isinstance(reference, dict) and reference.get("message_id") is not None:
            message.reply_to = int(reference["message_id"])
        if creating or "content" in body:
            message.mentions = self._resolve_mentions(message.content, body.get("allowed_mentions"))
            if creating:
                message.pings = message.mentions
        uploads = self._new_attachments(context)
        if "attachments" in body and body["attachments"] is not None:
            kept: list[FakeAttachment] = []
            existing = {a.id: a for a in message.attachments}
            used_uploads: set[int] = set()
            by_index = {number: position for position, number in enumerate(_upload_indexes(context.files))}
            for entry in body["attachments"]:
                entry_id = int(entry["id"])
                if entry_id in existing:
                    kept.append(existing[entry_id])
                elif entry_id in by_index:
                    kept.append(uploads[by_index[entry_id]])
                    used_uploads.add(by_index[entry_id])
            unlisted = [u for i, u in enumerate(uploads) if i not in used_uploads]
            if creating:
                kept.extend(unlisted)
            else:
                # docs (reference#editing-message-attachments): on an edit "only files listed in
                # the attachments parameter will be appended to the message. Any previously-added
                # files that aren't included will be removed." An unlisted upload is dropped.
                for upload in unlisted:
                    self.cdn.pop(upload.id, None)
            message.attachments = kept
        elif uploads:
            message.attachments = ([] if creating else message.attachments) + uploads
        if creating and "flags" in body and body["flags"]:
            message.flags |= int(body["flags"]) & FLAG_EPHEMERAL
        message.snapshot()

    def _body(self, context: _Context) -> dict[str, Any]:
        return context.json if isinstance(context.json, dict) else {}

    def _json(self, data: Any, status: int = 200) -> web.Response:
        return json_response(data, status=status)

    def _no_content(self) -> web.Response:
        return web.Response(status=204)

    async def _announce_message(self, message: FakeMessage) -> None:
        """MESSAGE_CREATE for a public message, gated by the intent, as Discord sends it."""
        if message.ephemeral:
            return
        channel = self.channels.get(message.channel_id)
        intent = (
            INTENT_DIRECT_MESSAGES if channel is not None and channel.type == 1 else INTENT_GUILD_MESSAGES
        )
        payload = self.message_payload(message)
        if channel is not None and channel.guild_id is not None:  # the gateway event, unlike REST, has it
            payload["guild_id"] = str(channel.guild_id)
            payload["member"] = {k: v for k, v in self.member_payload(self.bot_user).items() if k != "user"}
        await self.dispatch("MESSAGE_CREATE", payload, intent=intent)

    # ================================================================== REST handlers: misc
    async def _get_gateway(self, context: _Context) -> web.Response:
        return self._json({"url": self.gateway_url})

    async def _get_gateway_bot(self, context: _Context) -> web.Response:
        return self._json(
            {
                "url": self.gateway_url,
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 86_400_000,
                    "max_concurrency": 1,
                },
            }
        )

    async def _get_me(self, context: _Context) -> web.Response:
        return self._json(self.user_payload(self.bot_user))

    async def _get_user(self, context: _Context) -> web.Response:
        user = self.users.get(int(context.groups["user_id"]))
        if user is None:
            return error_response(404, 10013, "Unknown User")
        return self._json(self.user_payload(user))

    async def _get_application(self, context: _Context) -> web.Response:
        return self._json(
            {
                "id": str(self.application_id),
                "name": "StyleBot",
                "description": "",
                "icon": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": self.user_payload(self.owner),
                "verify_key": secrets.token_hex(32),
                "team": None,
                "flags": 0,
                "summary": "",
                "bot": self.user_payload(self.bot_user),
            }
        )

    async def _get_channel(self, context: _Context) -> web.Response:
        channel = self.channels.get(int(context.groups["channel_id"]))
        if channel is None:
            return error_response(404, CODE_UNKNOWN_CHANNEL, "Unknown Channel")
        return self._json(self.channel_payload(channel))

    async def _get_guild(self, context: _Context) -> web.Response:
        if int(context.groups["guild_id"]) != self.guild_id:
            return error_response(404, 10004, "Unknown Guild")
        payload = self.guild_payload()
        for key in (
            "members",
            "channels",
            "threads",
            "voice_states",
            "presences",
            "joined_at",
            "large",
            "member_count",
            "unavailable",
        ):
            payload.pop(key, None)
        return self._json(payload)

    async def _get_member(self, context: _Context) -> web.Response:
        user = self.users.get(int(context.groups["user_id"]))
        if user is None or int(context.groups["guild_id"]) != self.guild_id:
            return error_response(404, 10007, "Unknown Member")
        return self._json(self.member_payload(user))

    async def _create_dm(self, context: _Context) -> web.Response:
        recipient_id = int(self._body(context).get("recipient_id", 0))
        if recipient_id not in self.users:
            return error_response(400, CODE_INVALID_FORM_BODY, "Invalid Form Body")
        return self._json(self.channel_payload(self.dm_channel(self.users[recipient_id])))

    async def _typing(self, context: _Context) -> web.Response:
        return self._no_content()

    # ================================================================== REST handlers: commands
    def _command_store(self, context: _Context) -> list[dict[str, Any]]:
        guild_id = context.groups.get("guild_id")
        if guild_id is None:
            return self.global_commands
        return self.guild_commands.setdefault(int(guild_id), [])

    def _stored_command(
        self, definition: dict[str, Any], context: _Context, previous: dict[str, Any] | None
    ) -> dict[str, Any]:
        stored = dict(definition)
        stored["id"] = previous["id"] if previous else str(new_snowflake())
        stored["application_id"] = str(self.application_id)
        stored["version"] = str(new_snowflake())
        stored.setdefault("type", 1)
        stored.setdefault("description", "")
        stored.setdefault("default_member_permissions", None)
        if stored["default_member_permissions"] is not None:  # Discord keeps it as a string
            stored["default_member_permissions"] = str(stored["default_member_permissions"])
        stored.setdefault("nsfw", False)
        if context.groups.get("guild_id"):
            stored["guild_id"] = context.groups["guild_id"]
        return stored

    async def _get_commands(self, context: _Context) -> web.Response:
        return self._json(self._command_store(context))

    async def _put_commands(self, context: _Context) -> web.Response:
        if int(context.groups["app_id"]) != self.application_id:
            return error_response(404, 10002, "Unknown Application")
        definitions = context.json
        if problems := limits.check_commands(definitions):
            return json_response(limits.form_error(problems), status=400)
        if refused := _refuse_command_count(definitions):
            return refused
        store = self._command_store(context)
        previous = {(c["name"], limits.command_type(c)): c for c in store}
        replaced = [
            self._stored_command(d, context, previous.get((d["name"], limits.command_type(d))))
            for d in definitions
        ]
        store[:] = replaced
        return self._json(replaced)

    async def _post_command(self, context: _Context) -> web.Response:
        definition = self._body(context)
        if problems := limits.check_command(definition):
            return json_response(limits.form_error(problems), status=400)
        store = self._command_store(context)
        kind = limits.command_type(definition)
        previous = next(
            (c for c in store if c["name"] == definition.get("name") and limits.command_type(c) == kind), None
        )
        if previous is None and (refused := _refuse_command_count([*store, definition])):
            return refused
        stored = self._stored_command(definition, context, previous)
        if previous is not None:
            store[store.index(previous)] = stored
        else:
            store.append(stored)
        return self._json(stored, status=200 if previous else 201)

    # ================================================================== REST handlers: interactions
    def _interaction_for_token(self, context: _Context) -> tuple[FakeInteraction | None, web.Response | None]:
        if int(context.groups.get("app_id", self.application_id)) != self.application_id:
            return None, error_response(404, CODE_UNKNOWN_WEBHOOK, "Unknown Webhook")
        interaction = self._interactions_by_token.get(context.groups["token"])
        if interaction is None:
            return None, error_response(404, CODE_UNKNOWN_WEBHOOK, "Unknown Webhook")
        context.record.interaction_id = interaction.id
        if interaction.expired or time.monotonic() - interaction.dispatched_at > self.token_ttl:
            interaction.expired = True
            if self.expired_token_status == 401:
                return None, error_response(401, CODE_INVALID_WEBHOOK_TOKEN, "Invalid Webhook Token")
            return None, error_response(404, CODE_UNKNOWN_WEBHOOK, "Unknown Webhook")
        return interaction, None

    def _callback_body(
        self, interaction: FakeInteraction, message: FakeMessage | None, kind: int
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "interaction": {
                "id": str(interaction.id),
                "type": interaction.type,
                "response_message_id": str(message.id) if message else None,
                "response_message_loading": bool(message and message.loading),
                "response_message_ephemeral": bool(message and message.ephemeral),
            }
        }
        if message is not None:
            body["resource"] = {"type": kind, "message": self.message_payload(message)}
        return body

    async def _interaction_callback(self, context: _Context) -> web.Response:
        interaction = self.interactions.get(int(context.groups["interaction_id"]))
        if interaction is None or interaction.token != context.groups["token"]:
            return error_response(404, CODE_UNKNOWN_INTERACTION, "Unknown interaction")
        context.record.interaction_id = interaction.id
        if interaction.response_type is not None:
            return error_response(
                400, CODE_ALREADY_ACKNOWLEDGED, "Interaction has already been acknowledged."
            )
        if time.monotonic() - interaction.dispatched_at > self.ack_deadline:
            return error_response(404, CODE_UNKNOWN_INTERACTION, "Unknown interaction")
        body = self._body(context)
        kind = int(body.get("type", 0))
        data = body.get("data") or {}
        message: FakeMessage | None = None
        if not isinstance(data, dict):
            return json_response(
                limits.form_error(
                    [limits.Problem(("data",), "DICT_TYPE_CONVERT", "Only dictionaries may be used")]
                ),
                status=400,
            )
        if kind == CALLBACK_MESSAGE and (refused := self._refuse_message(context, data, at=("data",))):
            return refused
        if kind == CALLBACK_UPDATE_MESSAGE and interaction.type == INTERACTION_COMPONENT:
            target = self.messages.get(int(interaction.payload["message"]["id"]))
            if target is not None and (
                refused := self._refuse_message(context, data, message=target, at=("data",))
            ):
                return refused
        if kind == CALLBACK_AUTOCOMPLETE and (refused := _refuse_choices(data.get("choices"))):
            return refused
        if kind == CALLBACK_DEFERRED_MESSAGE and (refused := _refuse_defer_flags(data.get("flags"))):
            return refused
        if kind == CALLBACK_MESSAGE:
            message = self._new_interaction_message(interaction)
            self._apply_body(message, data, context, creating=True)
            interaction.original_message_id = message.id
        elif kind == CALLBACK_DEFERRED_MESSAGE:
            message = self._new_interaction_message(interaction)
            message.flags = FLAG_LOADING | (int(data.get("flags", 0)) & FLAG_EPHEMERAL)
            message.snapshot()
            interaction.original_message_id = message.id
        elif kind in (CALLBACK_DEFERRED_UPDATE, CALLBACK_UPDATE_MESSAGE):
            if interaction.type != INTERACTION_COMPONENT:
                return error_response(
                    400, CODE_INVALID_FORM_BODY, "Interaction callback type is invalid here"
                )
            message = self.messages[int(interaction.payload["message"]["id"])]
            interaction.original_message_id = message.id
            if kind == CALLBACK_UPDATE_MESSAGE:
                self._apply_body(message, data, context, creating=False)
        elif kind == CALLBACK_AUTOCOMPLETE:
            interaction.choices = list(data.get("choices", []))
        elif kind != CALLBACK_MODAL:
            return error_response(400, CODE_INVALID_FORM_BODY, f"Unsupported callback type {kind}")
        interaction.response_type = kind
        interaction.responded_at = time.monotonic()
        if message is not None:
            context.record.message_id = message.id
        if kind in (CALLBACK_MESSAGE, CALLBACK_DEFERRED_MESSAGE) and message is not None:
            await self._announce_message(message)
        if context.request.query.get("with_response") in ("1", "true", "True"):
            return self._json(self._callback_body(interaction, message, kind))
        return self._no_content()

    def _new_interaction_message(self, interaction: FakeInteraction) -> FakeMessage:
        message = FakeMessage(
            id=new_snowflake(),
            channel_id=interaction.channel_id,
            author_id=self.bot_user.id,
            interaction_id=interaction.id,
            visible_to=interaction.user.id,
        )
        self.messages[message.id] = message
        return message

    async def _followup_create(self, context: _Context) -> web.Response:
        interaction, problem = self._interaction_for_token(context)
        if problem is not None:
            return problem
        assert interaction is not None
        if interaction.response_type is None:
            return error_response(404, CODE_UNKNOWN_WEBHOOK, "Unknown Webhook")
        body = self._body(context)
        original = self.original(interaction)
        deprecated = (
            interaction.response_type == CALLBACK_DEFERRED_MESSAGE
            and original is not None
            and original.loading
            and not original.deleted
        )
        if refused := self._refuse_message(context, body, message=original if deprecated else None):
            return refused
        if interaction.original_deleted_while_loading:
            # Not described by Discord's docs (an old report, discord-api-docs#2739, says it failed
            # with 10008 Unknown Message); the fake serves it, and records it for the tests to refuse.
            self.undocumented_flows.append(context.record)
        if deprecated:
            assert original is not None
            # docs (interactions/receiving-and-responding#create-followup-message): directly after
            # a DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE this "will function as Edit Original Interaction
            # Response for backwards compatibility … This behavior is deprecated". Served, recorded.
            self.deprecated_flows.append(context.record)
            original.flags &= ~FLAG_LOADING
            self._apply_body(original, body, context, creating=False)
            message = original
        else:
            message = self._new_interaction_message(interaction)
            self._apply_body(message, body, context, creating=True)
            await self._announce_message(message)
        if message.id not in interaction.followup_ids:
            interaction.followup_ids.append(message.id)
        context.record.message_id = message.id
        if context.request.query.get("wait") in ("1", "true", "True"):
            return self._json(self.message_payload(message))
        return self._no_content()

    def _webhook_target(self, context: _Context, interaction: FakeInteraction) -> FakeMessage | None:
        if "message_id" in context.groups:
            message_id = int(context.groups["message_id"])
            if message_id != interaction.original_message_id and message_id not in interaction.followup_ids:
                return None
        else:
            if interaction.original_message_id is None:
                return None
            message_id = interaction.original_message_id
        message = self.messages.get(message_id)
        if message is None or message.deleted:
            return None
        context.record.message_id = message.id
        return message

    async def _webhook_message_get(self, context: _Context) -> web.Response:
        interaction, problem = self._interaction_for_token(context)
        if problem is not None:
            return problem
        assert interaction is not None
        message = self._webhook_target(context, interaction)
        if message is None:
            return error_response(404, CODE_UNKNOWN_MESSAGE, "Unknown Message")
        return self._json(self.message_payload(message))

    async def _webhook_message_edit(self, context: _Context) -> web.Response:
        interaction, problem = self._interaction_for_token(context)
        if problem is not None:
            return problem
        assert interaction is not None
        message = self._webhook_target(context, interaction)
        if message is None:
            return error_response(404, CODE_UNKNOWN_MESSAGE, "Unknown Message")
        if refused := self._refuse_message(context, self._body(context), message=message):
            return refused
        message.flags &= ~FLAG_LOADING
        self._apply_body(message, self._body(context), context, creating=False)
        return self._json(self.message_payload(message))

    async def _webhook_message_delete(self, context: _Context) -> web.Response:
        interaction, problem = self._interaction_for_token(context)
        if problem is not None:
            return problem
        assert interaction is not None
        message = self._webhook_target(context, interaction)
        if message is None:
            return error_response(404, CODE_UNKNOWN_MESSAGE, "Unknown Message")
        if message.id == interaction.original_message_id and message.loading:
            interaction.original_deleted_while_loading = True
        await self._mark_deleted(message)
        return self._no_content()

    # ================================================================== REST handlers: channels
    def _channel_message(self, context: _Context) -> tuple[FakeMessage | None, web.Response | None]:
        channel = self.channels.get(int(context.groups["channel_id"]))
        if channel is None:
            return None, error_response(404, CODE_UNKNOWN_CHANNEL, "Unknown Channel")
        message = self.messages.get(int(context.groups["message_id"]))
        if message is None or message.deleted or message.channel_id != channel.id or message.ephemeral:
            return None, error_response(404, CODE_UNKNOWN_MESSAGE, "Unknown Message")
        context.record.message_id = message.id
        return message, None

    async def _message_create(self, context: _Context) -> web.Response:
        channel = self.channels.get(int(context.groups["channel_id"]))
        if channel is None:
            return error_response(404, CODE_UNKNOWN_CHANNEL, "Unknown Channel")
        if not channel.bot_can_send:
            return error_response(403, CODE_MISSING_PERMISSIONS, "Missing Permissions")
        body = self._body(context)
        if refused := self._refuse_message(context, body):
            return refused
        message = FakeMessage(id=new_snowflake(), channel_id=channel.id, author_id=self.bot_user.id)
        self._apply_body(message, body, context, creating=True)
        message.flags &= ~FLAG_EPHEMERAL
        self.messages[message.id] = message
        context.record.message_id = message.id
        await self._announce_message(message)
        return self._json(self.message_payload(message))

    async def _message_get(self, context: _Context) -> web.Response:
        message, problem = self._channel_message(context)
        if problem is not None:
            return problem
        assert message is not None
        return self._json(self.message_payload(message))

    async def _message_edit(self, context: _Context) -> web.Response:
        message, problem = self._channel_message(context)
        if problem is not None:
            return problem
        assert message is not None
        if message.author_id != self.bot_user.id:
            return error_response(
                403, CODE_CANNOT_EDIT_OTHERS, "Cannot edit a message authored by another user"
            )
        if refused := self._refuse_message(context, self._body(context), message=message):
            return refused
        self._apply_body(message, self._body(context), context, creating=False)
        return self._json(self.message_payload(message))

    async def _message_delete(self, context: _Context) -> web.Response:
        message, problem = self._channel_message(context)
        if problem is not None:
            return problem
        assert message is not None
        # docs (resources/message, "Delete Message"): another user's message needs MANAGE_MESSAGES
        channel = self.channels[message.channel_id]
        if (
            message.author_id != self.bot_user.id
            and channel.guild_id is not None
            and not self.permissions_of(self.bot_user) & PERM_MANAGE_MESSAGES
        ):
            return error_response(403, CODE_MISSING_PERMISSIONS, "Missing Permissions")
        await self._mark_deleted(message)
        return self._no_content()

    async def _mark_deleted(self, message: FakeMessage) -> None:
        """Delete ``message`` and send MESSAGE_DELETE (not for an ephemeral one, which only its
        user ever saw), gated by the intent like MESSAGE_CREATE."""
        message.deleted = True
        if message.ephemeral:
            return
        channel = self.channels.get(message.channel_id)
        data = {"id": str(message.id), "channel_id": str(message.channel_id)}
        if channel is not None and channel.guild_id is not None:
            data["guild_id"] = str(channel.guild_id)
        intent = (
            INTENT_DIRECT_MESSAGES if channel is not None and channel.type == 1 else INTENT_GUILD_MESSAGES
        )
        await self.dispatch("MESSAGE_DELETE", data, intent=intent)

    async def _reaction_add(self, context: _Context) -> web.Response:
        message, problem = self._channel_message(context)
        if problem is not None:
            return problem
        assert message is not None
        emoji = context.groups["emoji"]
        users = message.reactions.setdefault(emoji, [])
        if self.bot_user.id not in users:
            users.append(self.bot_user.id)
            # Discord echoes the bot's own reaction back to it; a bot must ignore it.
            await self._dispatch_reaction(message, emoji, self.bot_user)
        return self._no_content()

    async def _reaction_remove(self, context: _Context) -> web.Response:
        message, problem = self._channel_message(context)
        if problem is not None:
            return problem
        assert message is not None
        user_id = int(context.groups.get("user_id") or self.bot_user.id)
        users = message.reactions.get(context.groups["emoji"], [])
        if user_id in users:
            users.remove(user_id)
        return self._no_content()
