"""Why a start failed, as one line an operator can act on.

A failed start used to end in a 70-line aiohttp traceback that named neither the cause nor the
fix. :func:`classify` turns the exception that ended a start (or ``nst-bot sync`` /
``nst-bot check``'s login) into a :class:`Failure`: the cause, what to do, and the exit status —
:data:`CONFIGURATION` (2) when the operator's settings or Discord application must change,
:data:`ENVIRONMENT` (1) when the network or Discord is at fault and the same command may work later.

The classification is a list of rules (:data:`RULES`), tried in order on the exception and then on
its causes; each rule recognises one kind of failure and returns ``None`` for anything else. A new
kind of failure is one more rule in that list.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
import discord

if TYPE_CHECKING:
    from ..core.settings import SettingsError

#: Exit status for a failure the operator fixes in the settings or the developer portal.
CONFIGURATION = 2
#: Exit status for a failure of the network or of Discord: the same command may work later.
ENVIRONMENT = 1

#: Where the operator's own proxy variables are; discord.py reads none of them.
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


@dataclass(frozen=True)
class Failure:
    """One start-up failure: what went wrong, what to do about it, and the exit status."""

    cause: str
    fix: str
    status: int

    @property
    def line(self) -> str:
        """The one line printed for it (after ``nst-bot: `` or a ✗); of a multi-line cause, the first."""
        cause = self.cause.strip().splitlines()[0] if self.cause.strip() else "failed"
        return f"{cause}; {self.fix}"


def settings_failure(error: SettingsError) -> Failure:
    """A setting that does not load (``nst-bot`` and ``nst-bot check`` say the same)."""
    return Failure(
        str(error),
        "correct it in config/bot.toml or its NST_BOT_* variable (docs/bot.md, section 3)",
        CONFIGURATION,
    )


class QueueUnreachable(Exception):
    """The queue's Redis did not answer at start-up (``where`` has no password in it)."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


class DirectoryUnusable(Exception):
    """The data directory cannot be used; raised before the bot is built (it creates it)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.line)
        self.failure = failure


@dataclass(frozen=True)
class Connection:
    """How the bot reaches Discord: what the rules need to say which part failed."""

    #: The ``proxy`` setting (may carry credentials; never shown as is).
    proxy: str | None
    #: The ``connect_timeout`` setting, in seconds.
    timeout: float

    @property
    def proxy_host(self) -> str | None:
        return urllib.parse.urlsplit(self.proxy).hostname if self.proxy else None

    @property
    def shown_proxy(self) -> str:
        """The proxy URL without its user name and password."""
        if not self.proxy:
            return ""
        parts = urllib.parse.urlsplit(self.proxy)
        host = parts.hostname or ""
        return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


Rule = Callable[[BaseException, Connection], "Failure | None"]


def discord_host() -> str:
    """The host the bot logs in at: ``discord.com``, unless discord.py is pointed elsewhere."""
    return urllib.parse.urlsplit(discord.http.Route.BASE).hostname or "discord.com"


def _where(error: aiohttp.ClientConnectorError) -> str:
    return f"{error.host}:{error.port}"


def _reason(error: BaseException) -> str:
    """The innermost OS or TLS reason of a connection error, e.g. ``Connection refused``."""
    inner = getattr(error, "os_error", None) or error
    if isinstance(inner, ssl.SSLCertVerificationError):
        return str(inner.verify_message or inner.reason or inner).rstrip(".")
    if isinstance(inner, ssl.SSLError):
        return str(inner.reason or inner)
    if isinstance(inner, socket.gaierror):
        return str(inner.strerror or inner)
    if isinstance(inner, OSError) and inner.errno:
        # asyncio words a refused connection "Connect call failed (...)"; the OS's words are clearer
        return os.strerror(inner.errno)
    return str(inner) or type(inner).__name__


def _network_fix(connection: Connection) -> str:
    """What to do when Discord cannot be reached directly; names HTTPS_PROXY if the operator set it."""
    if connection.proxy is None and any(os.environ.get(name) for name in _PROXY_VARIABLES):
        return "HTTPS_PROXY is set, but the bot does not read it: set NST_BOT_PROXY to your proxy"
    return "allow outgoing HTTPS to Discord in the firewall, or set NST_BOT_PROXY to your proxy"


# ---------------------------------------------------------------------------- rules
def _directory(error: BaseException, connection: Connection) -> Failure | None:
    return error.failure if isinstance(error, DirectoryUnusable) else None


def _bad_token(error: BaseException, connection: Connection) -> Failure | None:
    closed_4004 = isinstance(error, discord.ConnectionClosed) and error.code == 4004
    if not isinstance(error, discord.LoginFailure) and not closed_4004:
        return None
    return Failure(
        "Discord refused the token (401 Unauthorized)",
        "copy a new one from the Bot tab of the developer portal into DISCORD_TOKEN",
        CONFIGURATION,
    )


def _privileged_intents(error: BaseException, connection: Connection) -> Failure | None:
    # discord.py raises PrivilegedIntentsRequired only when it would reconnect; before the first
    # READY (see connect) the close itself arrives.
    closed_4014 = isinstance(error, discord.ConnectionClosed) and error.code == 4014
    if not isinstance(error, discord.PrivilegedIntentsRequired) and not closed_4014:
        return None
    return Failure(
        "Discord refused the gateway intents the bot asked for (close code 4014: a privileged intent "
        "is not enabled for this application)",
        "enable it on the Bot tab of the developer portal, or stop asking for it in bot_intents()",
        CONFIGURATION,
    )


def _proxy(error: BaseException, connection: Connection) -> Failure | None:
    if isinstance(error, aiohttp.ClientHttpProxyError):
        return Failure(
            f"the proxy {connection.shown_proxy} refused to connect to Discord "
            f"({error.status} {error.message})",
            "check the address and credentials in NST_BOT_PROXY",
            CONFIGURATION,
        )
    through_proxy = isinstance(error, aiohttp.ClientProxyConnectionError) or (
        isinstance(error, aiohttp.ClientConnectorError)
        and connection.proxy_host is not None
        and error.host == connection.proxy_host
    )
    if not through_proxy:
        return None
    assert isinstance(error, aiohttp.ClientConnectorError)
    return Failure(
        f"cannot reach the proxy {connection.shown_proxy} ({_reason(error)})",
        "check NST_BOT_PROXY and that the proxy is running",
        ENVIRONMENT,
    )


def _tls(error: BaseException, connection: Connection) -> Failure | None:
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        return Failure(
            f"the TLS certificate of {_where(error)} is not trusted ({_reason(error.certificate_error)})",
            "something on the network intercepts HTTPS: add its CA certificate to the system store "
            "(or SSL_CERT_FILE), or connect without it",
            ENVIRONMENT,
        )
    if isinstance(error, aiohttp.ClientConnectorSSLError):
        return Failure(
            f"the TLS handshake with {_where(error)} failed ({_reason(error)})",
            "something on the network answers instead of Discord (a captive portal or a proxy): "
            "check the network, or set NST_BOT_PROXY to your proxy",
            ENVIRONMENT,
        )
    return None


def _dns(error: BaseException, connection: Connection) -> Failure | None:
    if not isinstance(error, aiohttp.ClientConnectorError) or not isinstance(error.os_error, socket.gaierror):
        return None
    return Failure(
        f"cannot resolve {error.host} (DNS lookup failed: {_reason(error)})",
        f"check this machine's DNS and network connection; {_network_fix(connection)}",
        ENVIRONMENT,
    )


def _refused(error: BaseException, connection: Connection) -> Failure | None:
    if not isinstance(error, aiohttp.ClientConnectorError):
        return None
    if isinstance(error.os_error, ConnectionRefusedError):
        cause = f"{_where(error)} refused the connection"
    else:
        cause = f"cannot connect to {_where(error)} ({_reason(error)})"
    return Failure(cause, _network_fix(connection), ENVIRONMENT)


def _server_error(error: BaseException, connection: Connection) -> Failure | None:
    if not isinstance(error, discord.DiscordServerError):
        return None
    return Failure(
        f"Discord answered {error.status} {error.response.reason or ''}".rstrip()
        + " (a failure on Discord's side)",
        "wait and start again; https://discordstatus.com shows outages",
        ENVIRONMENT,
    )


def _timeout(error: BaseException, connection: Connection) -> Failure | None:
    if not isinstance(error, (asyncio.TimeoutError, TimeoutError)):
        return None
    # aiohttp's own connect timeout (30 s) can fire before the connect_timeout setting does.
    waited = (
        "in time" if isinstance(error, aiohttp.ServerTimeoutError) else f"within {connection.timeout:g} s"
    )
    return Failure(
        f"{discord_host()} did not answer {waited}",
        "a firewall may be dropping traffic to Discord, or Discord is slow: "
        f"{_network_fix(connection)}, or raise NST_BOT_CONNECT_TIMEOUT",
        ENVIRONMENT,
    )


def _gateway_closed(error: BaseException, connection: Connection) -> Failure | None:
    if not isinstance(error, discord.ConnectionClosed):
        return None
    return Failure(
        f"Discord closed the gateway connection (close code {error.code}: {error.reason or 'no reason'})",
        "check https://discordstatus.com and start again",
        ENVIRONMENT,
    )


def _http_error(error: BaseException, connection: Connection) -> Failure | None:
    if not isinstance(error, discord.HTTPException):
        return None
    return Failure(
        f"Discord answered {error.status} {error.response.reason or ''} ({error.text or 'no detail'})",
        "check https://discordstatus.com and start again",
        ENVIRONMENT,
    )


def _connection_broken(error: BaseException, connection: Connection) -> Failure | None:
    if not isinstance(error, (aiohttp.ClientError, ConnectionError)):
        return None
    return Failure(
        f"the connection to {discord_host()} broke ({type(error).__name__}: {error})",
        f"start again; if it keeps failing, {_network_fix(connection)}",
        ENVIRONMENT,
    )


def _queue(error: BaseException, connection: Connection) -> Failure | None:
    if not isinstance(error, QueueUnreachable):
        return None
    reason = error.reason.rstrip(".")
    if any(word in reason.lower() for word in ("auth", "password")):
        return Failure(
            f"Redis at {error.where} refused the bot's credentials ({reason})",
            "correct the password in queue_url (NST_BOT_QUEUE_URL)",
            CONFIGURATION,
        )
    return Failure(
        f"Redis at {error.where} did not answer ({reason})",
        "start Redis, or correct queue_url (NST_BOT_QUEUE_URL); README, 'More than one machine'",
        ENVIRONMENT,
    )


#: The rules, most specific first: a proxy's DNS failure is a proxy failure, a TLS error is a
#: connector error too, and every discord.py HTTP error is an ``HTTPException``.
RULES: list[Rule] = [
    _directory,
    _queue,
    _bad_token,
    _privileged_intents,
    _proxy,
    _tls,
    _dns,
    _refused,
    _server_error,
    _timeout,
    _gateway_closed,
    _http_error,
    _connection_broken,
]


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error, then what caused it (discord.py wraps some aiohttp errors)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def classify(error: BaseException, connection: Connection) -> Failure:
    """The failure ``error`` stands for; an unknown error still gets one line (and exit 1)."""
    for candidate in _chain(error):
        for rule in RULES:
            failure = rule(candidate, connection)
            if failure is not None:
                return failure
    return Failure(
        f"unexpected {type(error).__name__}: {error}",
        "set NST_DEBUG=1 to see the traceback",
        ENVIRONMENT,
    )
