"""The gateway half of the fake: one websocket session per connected client.

Speaks Discord's gateway v10 in JSON: HELLO, IDENTIFY -> READY + GUILD_CREATE, heartbeats,
RESUME -> replay + RESUMED, INVALID_SESSION, RECONNECT, and DISPATCH of events. Transport
compression is honoured the way discord.py asks for it: its URL always carries
``compress=zlib-stream`` (``zstd-stream`` when the ``zstandard`` package is installed), and it
decompresses binary frames only, so a ``zlib-stream`` session gets binary frames from one shared
zlib stream ending in ``Z_SYNC_FLUSH``; any other value (or none) gets plain text frames.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import zlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from .models import GatewayEvent

log = logging.getLogger(__name__)

OP_DISPATCH = 0
OP_HEARTBEAT = 1
OP_IDENTIFY = 2
OP_PRESENCE = 3
OP_RESUME = 6
OP_RECONNECT = 7
OP_REQUEST_MEMBERS = 8
OP_INVALID_SESSION = 9
OP_HELLO = 10
OP_HEARTBEAT_ACK = 11

#: Close codes.
CLOSE_UNKNOWN_ERROR = 4000
CLOSE_AUTHENTICATION_FAILED = 4004


@dataclass
class GatewaySession:
    """A Discord session: survives websocket drops until it is invalidated."""

    session_id: str
    intents: int
    seq: int = 0
    #: Every dispatch of the session, for replay on RESUME.
    events: list[GatewayEvent] = field(default_factory=list)
    connection: GatewayConnection | None = None
    invalid: bool = False

    def next_event(self, name: str, data: dict[str, Any]) -> GatewayEvent:
        self.seq += 1
        event = GatewayEvent(self.seq, name, data)
        self.events.append(event)
        return event


class GatewayConnection:
    """One websocket connection (a session may see several over its life)."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, compress: str | None):
        self.ws = ws
        self.request = request
        self.compress = compress
        self._compressor = zlib.compressobj() if compress == "zlib-stream" else None
        self._send_lock = asyncio.Lock()
        self.session: GatewaySession | None = None
        self.heartbeats = 0
        self.closed = False

    async def send(self, payload: dict[str, Any]) -> None:
        text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        async with self._send_lock:
            if self.ws.closed:
                raise ConnectionResetError("gateway websocket is closed")
            if self._compressor is not None:
                data = self._compressor.compress(text.encode()) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
                await self.ws.send_bytes(data)
            else:
                await self.ws.send_str(text)

    async def dispatch(self, event: GatewayEvent) -> None:
        await self.send({"op": OP_DISPATCH, "t": event.name, "s": event.seq, "d": event.data})

    def abort(self) -> None:
        """Cut the TCP connection without a close frame, as a network failure would."""
        self.closed = True
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    async def close(self, code: int) -> None:
        self.closed = True
        await self.ws.close(code=code, message=b"fake discord closed the connection")


def new_session_id() -> str:
    return secrets.token_hex(16)


async def receive_json(ws: web.WebSocketResponse) -> dict[str, Any] | None:
    """The next JSON payload from the client, or None once the socket is closed."""
    while True:
        message = await ws.receive()
        if message.type == WSMsgType.TEXT:
            return json.loads(message.data)
        if message.type == WSMsgType.BINARY:
            return json.loads(message.data.decode())
        if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return None
