"""Checks over everything a client sent to the fake: whom its messages may ping, and whether
Discord would have refused any of them.

The end-to-end suite runs both after every test (tests/e2e/conftest.py); they live here, beside the
fake whose records they read, so that their own tests (test_policy.py) need no bot.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from .models import RecordedRequest
from .server import FakeDiscord

#: Requests that carry a message body as their JSON.
MESSAGE_ROUTES = {"followup_create", "original_edit", "followup_edit", "message_create", "message_edit"}
#: Interaction callback types whose ``data`` is a message (CHANNEL_MESSAGE_WITH_SOURCE, UPDATE_MESSAGE).
CALLBACK_WITH_MESSAGE = (4, 7)
USER_MENTION = re.compile(r"<@!?(\d+)>")


def message_bodies(fake: FakeDiscord) -> Iterator[tuple[RecordedRequest, dict[str, Any]]]:
    """Every message body the client sent, with its request."""
    for record in fake.requests:
        if record.route in MESSAGE_ROUTES and isinstance(record.json, dict):
            yield record, record.json
        elif (
            record.route == "interaction_callback"
            and isinstance(record.json, dict)
            and record.json.get("type") in CALLBACK_WITH_MESSAGE
        ):
            yield record, record.json.get("data") or {}


def mention_policy_breaches(fake: FakeDiscord) -> list[str]:
    """Each message pings exactly the user it is for: never @everyone/@here or a role, nobody else,
    and that user wherever its text mentions them.

    Every body must carry ``allowed_mentions`` (the bot-wide default pings no one) with an empty
    ``parse`` list and no roles. Its ``users`` may hold at most one id: in a message sent through an
    interaction, the interaction's user (the requester); in a channel message, a user its text
    mentions. And the other way round: where the text mentions that user, ``users`` must hold them,
    or the mention is only a grey name that notifies no one.
    """
    breaches = []
    for record, body in message_bodies(fake):
        allowed = body.get("allowed_mentions")
        where = f"{record.method} {record.route}"
        if not isinstance(allowed, dict):
            breaches.append(f"{where}: no allowed_mentions")
            continue
        if allowed.get("parse"):
            breaches.append(f"{where}: parse={allowed['parse']}")
        if allowed.get("roles"):
            breaches.append(f"{where}: roles={allowed['roles']}")
        users = {int(u) for u in allowed.get("users") or []}
        mentioned = {int(u) for u in USER_MENTION.findall(str(body.get("content") or ""))}
        if record.interaction_id is not None:
            permitted = {fake.interactions[record.interaction_id].user.id}
        else:
            permitted = mentioned
        if not users <= permitted or len(users) > 1:
            breaches.append(f"{where}: may ping {sorted(users)}, only {sorted(permitted)} allowed")
        if unpinged := (mentioned & permitted) - users:
            breaches.append(f"{where}: mentions {sorted(unpinged)} without pinging them")
    for message in fake.messages.values():
        if message.pings.everyone or message.pings.roles:
            breaches.append(f"message {message.id} pinged everyone or roles")
    return breaches


def refused_bodies(fake: FakeDiscord) -> list[str]:
    """Requests the fake refused as Discord would (400), other than refusals a test injected."""
    return [
        f"{r.method} {r.route} -> 400 {json.dumps(r.response)[:300]}"
        for r in fake.requests
        if r.status == 400 and not r.injected
    ]
