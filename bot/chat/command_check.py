"""``nst-bot check``'s commands line: what Discord has registered against what ``nst-bot sync``
would register now (the same tree the bot builds), and the :class:`Check` every line of the
check is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord

from .failures import CONFIGURATION, Connection, Failure, classify

if TYPE_CHECKING:
    from .app import NSTBot


@dataclass(frozen=True)
class Check:
    """The outcome of one check: what was found, or the failure with its fix."""

    name: str
    found: str = ""
    failure: Failure | None = None

    @property
    def line(self) -> str:
        if self.failure is None:
            return f"✓ {self.name}: {self.found}"
        return f"✗ {self.name}: {self.failure.line}"


async def commands_check(bot: NSTBot, guild_id: int | None, connection: Connection) -> Check:
    """Compare what Discord has registered with what ``nst-bot sync`` would register now."""
    guild = discord.Object(id=guild_id) if guild_id is not None else None
    if guild is not None:
        bot.tree.copy_global_to(guild=guild)  # what `nst-bot sync --guild` registers
    payloads = [command.to_dict(bot.tree) for command in bot.tree.get_commands(guild=guild)]
    expected = {_key(payload): payload for payload in payloads}
    where = f"in guild {guild_id}" if guild_id is not None else "globally"
    sync = f"run nst-bot sync --guild {guild_id}" if guild_id is not None else "run nst-bot sync"
    application_id = bot.application_id
    assert application_id is not None  # set by login
    try:
        if guild_id is None:
            registered = await bot.http.get_global_commands(application_id)
        else:
            registered = await bot.http.get_guild_commands(application_id, guild_id)
    except (discord.Forbidden, discord.NotFound) as error:
        return Check(
            "commands",
            failure=Failure(
                f"cannot read the commands {where} ({error.status} {error.text})",
                "invite the bot to that server with the applications.commands scope (docs/bot.md, section 1)",
                CONFIGURATION,
            ),
        )
    except Exception as error:
        return Check("commands", failure=classify(error, connection))
    found = {_key(dict(command)): dict(command) for command in registered}
    if not found:
        return Check("commands", failure=Failure(f"none registered {where}", sync, CONFIGURATION))
    differences = []
    missing = [key[0] for key in expected if key not in found]
    extra = [key[0] for key in found if key not in expected]
    changed = [key[0] for key in expected if key in found and not _matches(expected[key], found[key])]
    for label, which in (("missing", missing), ("not in the code", extra), ("changed", changed)):
        if which:
            differences.append(f"{label}: {', '.join(sorted(which))}")
    names = ", ".join(sorted(key[0] for key in found))
    if differences:
        return Check(
            "commands",
            failure=Failure(
                f"{len(found)} registered {where} ({names}), different from the code's "
                f"({'; '.join(differences)})",
                sync,
                CONFIGURATION,
            ),
        )
    return Check("commands", f"{len(found)} registered {where} ({names}), the same as the code's")


def _key(command: Mapping[str, object]) -> tuple[str, int]:
    """Discord tells commands apart by name and type (a slash command and a menu may share a name)."""
    kind = command.get("type", 1)
    return str(command["name"]), int(kind) if isinstance(kind, (int, str)) else 1


def _matches(local: object, remote: object) -> bool:
    """Whether Discord's stored ``remote`` says what the code's ``local`` payload says.

    Discord adds fields (ids, versions) and drops empty ones (``required: false``), so only the
    keys the code sends are compared, an empty local value matches a missing remote one, and
    ``None`` (the code leaves it to Discord's default) matches anything.
    """
    if local is None:
        return True
    if isinstance(local, dict):
        return isinstance(remote, dict) and all(
            _matches(value, remote.get(key)) for key, value in local.items()
        )
    if isinstance(local, list):
        if not local:
            return not remote
        return isinstance(remote, list) and len(local) == len(remote) and all(map(_matches, local, remote))
    if local is False or local == "":
        return remote in (None, False, "")
    if isinstance(local, int) and not isinstance(local, bool) and isinstance(remote, str):
        return str(local) == remote  # a permission bit set: sent as a number, kept as a string
    return bool(local == remote)
