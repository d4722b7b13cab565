"""A small fake of Discord (REST, gateway, CDN) that a real discord.py client can talk to.

See :mod:`tests.fakediscord.server` for what it speaks and :mod:`tests.fakediscord.fixtures` for
the pytest fixture that points discord.py at it.
"""

from .faults import FaultRule
from .models import FakeAttachment, FakeChannel, FakeInteraction, FakeMessage, FakeUser, RecordedRequest
from .server import FakeDiscord, WaitTimeout

__all__ = [
    "FakeAttachment",
    "FakeChannel",
    "FakeDiscord",
    "FakeInteraction",
    "FakeMessage",
    "FakeUser",
    "FaultRule",
    "RecordedRequest",
    "WaitTimeout",
]
