"""Fault injection: make the fake answer some requests the way Discord does on a bad day.

Each rule matches requests by route name (see ``FakeDiscord`` for the names) and/or method and an
optional predicate, fires ``times`` times, then stops. The answers copy what discord.py reads:

* 429: a JSON body with ``retry_after`` and ``global``, plus ``Via`` (without it discord.py assumes a
  Cloudflare ban and raises instead of retrying), ``Retry-After`` and the ``X-RateLimit-*`` headers.
* 5xx: discord.py retries 500/502/504/524 after 1 s, 3 s, ... up to five tries.
* 413: "Request entity too large" (code 40005); discord.py raises ``HTTPException``.
* 401/50027 and 404/10015: what Discord answers to a webhook call with an expired or unknown
  interaction token.

``delay`` holds the answer back that many seconds first: with a delay longer than the client
waits, the request times out, as it does behind a firewall that drops Discord's answers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

#: Discord JSON error codes the fake uses.
CODE_UNKNOWN_CHANNEL = 10003
CODE_UNKNOWN_MESSAGE = 10008
CODE_UNKNOWN_WEBHOOK = 10015
CODE_UNKNOWN_INTERACTION = 10062
CODE_REQUEST_TOO_LARGE = 40005
CODE_MAX_APPLICATION_COMMANDS = 30032
CODE_ALREADY_ACKNOWLEDGED = 40060
CODE_CANNOT_EDIT_OTHERS = 50005
CODE_MISSING_PERMISSIONS = 50013
CODE_INVALID_WEBHOOK_TOKEN = 50027
CODE_INVALID_FORM_BODY = 50035


def json_response(data: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """JSON with ``Content-Type: application/json`` and no charset: discord.py parses a body as
    JSON only when the header is exactly that, as Discord sends it."""
    return web.Response(
        body=json.dumps(data).encode(), status=status, headers=headers, content_type="application/json"
    )


def error_response(status: int, code: int, message: str) -> web.Response:
    return json_response({"message": message, "code": code}, status=status)


def rate_limited_response(retry_after: float, *, is_global: bool, bucket: str, limit: int) -> web.Response:
    """429 as docs/topics/rate-limits#exceeding-a-rate-limit describes it: a JSON body with
    ``message``, ``retry_after`` (seconds) and ``global``; ``Retry-After``; the bucket's
    ``X-RateLimit-*`` headers with ``Remaining: 0``; ``X-RateLimit-Scope`` (and ``X-RateLimit-Global``
    for the global limit)."""
    body = {
        "message": "You are being rate limited.",
        "retry_after": retry_after,
        "global": is_global,
        "code": 0,
    }
    headers = {
        "Via": "1.1 google",
        "Retry-After": str(max(1, round(retry_after))),
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
        "X-RateLimit-Reset-After": f"{retry_after:.3f}",
        "X-RateLimit-Bucket": bucket,
        "X-RateLimit-Scope": "global" if is_global else "user",
    }
    if is_global:
        headers["X-RateLimit-Global"] = "true"
    return json_response(body, status=429, headers=headers)


@dataclass
class FaultRule:
    """Answer matching requests with ``status`` (``times`` times), instead of the normal answer."""

    status: int
    route: str | None = None
    method: str | None = None
    times: int = 1
    #: For 429: seconds discord.py is told to wait.
    retry_after: float = 0.25
    is_global: bool = False
    #: Discord JSON error code for non-429 statuses; a sensible default per status when None.
    code: int | None = None
    message: str | None = None
    #: Extra filter on the parsed request (e.g. only requests that upload files).
    when: Callable[[dict[str, Any]], bool] | None = None
    #: Seconds to wait before answering.
    delay: float = 0.0
    hits: int = field(default=0)

    def matches(self, route: str, method: str, details: dict[str, Any]) -> bool:
        if self.hits >= self.times:
            return False
        if self.route is not None and self.route != route:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.when is None or self.when(details)

    @property
    def exhausted(self) -> bool:
        return self.hits >= self.times

    def respond(self, bucket: str, *, limit: int) -> web.Response:
        """The injected answer; ``bucket`` and ``limit`` are the request's rate-limit bucket."""
        self.hits += 1
        if self.status == 429:
            return rate_limited_response(
                self.retry_after, is_global=self.is_global, bucket=bucket, limit=limit
            )
        code, message = _DEFAULTS.get(self.status, (0, f"{self.status}: injected failure"))
        return error_response(
            self.status, self.code if self.code is not None else code, self.message or message
        )


_DEFAULTS: dict[int, tuple[int, str]] = {
    400: (CODE_INVALID_FORM_BODY, "Invalid Form Body"),
    401: (CODE_INVALID_WEBHOOK_TOKEN, "Invalid Webhook Token"),
    403: (CODE_MISSING_PERMISSIONS, "Missing Permissions"),
    404: (CODE_UNKNOWN_WEBHOOK, "Unknown Webhook"),
    413: (CODE_REQUEST_TOO_LARGE, "Request entity too large"),
    500: (0, "500: Internal Server Error"),
    502: (0, "502: Bad Gateway"),
    503: (0, "503: Service Unavailable"),
}
