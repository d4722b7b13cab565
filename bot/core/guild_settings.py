"""Per-server settings, changed by a server's admins with ``/nst-admin`` and kept in SQLite.

The operator's settings (:mod:`bot.core.settings`) bound what any server gets; these narrow it for one
server: where the bot may paint, the largest size and upscale, who may re-run someone else's
picture, and whether results are spoilers. They live in their own database file next to the job records
(``Settings.guild_settings_path``), owner-only like it, and survive restarts. Reads come from a
copy in memory (every command reads them, before anything else); a change is written through at
once.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import texts
from .settings import SIZE_NAMES
from .store import open_private_database

#: Who may re-run (buttons or reaction) a result someone else asked for.
RERUN_ANYONE = "anyone"
RERUN_REQUESTER = "requester"
RERUN_CHOICES = (RERUN_ANYONE, RERUN_REQUESTER)
#: At most this many channels in a server's list (a list that long is a configuration mistake).
MAX_CHANNELS = 50


@dataclass(frozen=True)
class GuildSettings:
    """One server's settings; the defaults are what a server that never ran ``/nst-admin`` gets."""

    #: Channels the bot paints in; empty: every channel it can see.
    channels: tuple[int, ...] = ()
    #: The largest size name allowed here (one of ``SIZE_NAMES``); None: every size the operator offers.
    max_size: str | None = None
    #: ``anyone`` or ``requester``: who may re-run (or react to) someone else's result. The
    #: requester by default: a result repaints their photo, and a server opts in to sharing that.
    reruns: str = RERUN_REQUESTER
    #: Post every result (and its previews) as a spoiler.
    spoilers: bool = False
    #: The longest side an Upscale may paint here, in px; None: the operator's ``max_upscale_side``.
    max_upscale: int | None = None

    def __post_init__(self) -> None:
        if self.max_size is not None and self.max_size not in SIZE_NAMES:
            raise ValueError(f"max_size must be one of {', '.join(SIZE_NAMES)}, got {self.max_size!r}")
        if self.reruns not in RERUN_CHOICES:
            raise ValueError(f"reruns must be one of {', '.join(RERUN_CHOICES)}, got {self.reruns!r}")

    def allows_channel(self, channel_id: int | None, parent_id: int | None = None) -> bool:
        """Whether the bot may paint in ``channel_id`` (a thread counts as its parent channel)."""
        if not self.channels:
            return True
        return channel_id in self.channels or (parent_id is not None and parent_id in self.channels)

    def allows_rerun(self, requester_id: int, user_id: int) -> bool:
        """Whether ``user_id`` may re-run (button or reaction) a result ``requester_id`` asked for."""
        return self.reruns != RERUN_REQUESTER or user_id == requester_id

    def upscale_limit(self, operator_limit: int) -> int:
        """The longest side an Upscale may paint here: this server's own limit, never above the
        operator's ``max_upscale_side`` (``operator_limit``; 0: no upscales anywhere)."""
        if self.max_upscale is None:
            return operator_limit
        return min(self.max_upscale, operator_limit)

    def allows_size(self, size: str) -> bool:
        return self.max_size is None or SIZE_NAMES.index(size) <= SIZE_NAMES.index(self.max_size)

    def clamp_size(self, size: str) -> str:
        """``size``, or this server's largest when ``size`` is larger."""
        if self.max_size is None or self.allows_size(size):
            return size
        return self.max_size


_SCHEMA = """
CREATE TABLE IF NOT EXISTS guild_settings (
    guild_id INTEGER PRIMARY KEY,
    channels TEXT NOT NULL DEFAULT '[]',
    max_size TEXT,
    reruns TEXT NOT NULL DEFAULT 'requester',
    spoilers INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    updated_by INTEGER,
    max_upscale INTEGER
);
"""


class GuildSettingsStore:
    """The settings of every server, in SQLite at ``path`` (created 0600 in a 0700 directory)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = open_private_database(self.path, _SCHEMA)
        self._cache: dict[int, GuildSettings] = {}
        present = {row[1] for row in self._db.execute("PRAGMA table_info(guild_settings)").fetchall()}
        if "max_upscale" not in present:  # a database an older version made
            self._db.execute("ALTER TABLE guild_settings ADD COLUMN max_upscale INTEGER")
        rows = self._db.execute(
            "SELECT guild_id, channels, max_size, reruns, spoilers, max_upscale FROM guild_settings"
        )
        for guild_id, channels, max_size, reruns, spoilers, max_upscale in rows.fetchall():
            self._cache[guild_id] = GuildSettings(
                channels=tuple(int(c) for c in json.loads(channels)),
                max_size=max_size,
                reruns=reruns,
                spoilers=bool(spoilers),
                max_upscale=max_upscale,
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def get(self, guild_id: int | None) -> GuildSettings:
        """The settings of ``guild_id`` (the defaults for a server never configured, or no server)."""
        if guild_id is None:
            return GuildSettings()
        return self._cache.get(guild_id, GuildSettings())

    def refusal_to_paint(
        self, guild_id: int | None, channel_id: int | None, parent_id: int | None = None
    ) -> str | None:
        """Why the bot will not paint here (None: it will): a DM, or a channel outside the server's
        list (``/nst-admin channels``; a thread counts as its parent channel ``parent_id``)."""
        if guild_id is None:
            return texts.DM_TEXT
        server = self.get(guild_id)
        if server.allows_channel(channel_id, parent_id):
            return None
        return texts.not_this_channel(server.channels)

    def save(self, guild_id: int, by: int, changed: GuildSettings) -> None:
        """Make ``changed`` the settings of ``guild_id`` (written at once); ``by``: who changed them."""
        if len(changed.channels) > MAX_CHANNELS:
            raise ValueError(f"at most {MAX_CHANNELS} channels")
        with self._lock:
            self._db.execute(
                "INSERT INTO guild_settings (guild_id, channels, max_size, reruns, spoilers, updated_at,"
                " updated_by, max_upscale) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(guild_id) DO UPDATE"
                " SET channels = excluded.channels, max_size = excluded.max_size, reruns = excluded.reruns,"
                " spoilers = excluded.spoilers, updated_at = excluded.updated_at,"
                " updated_by = excluded.updated_by, max_upscale = excluded.max_upscale",
                (
                    guild_id,
                    json.dumps(list(changed.channels)),
                    changed.max_size,
                    changed.reruns,
                    int(changed.spoilers),
                    time.time(),
                    by,
                    changed.max_upscale,
                ),
            )
            self._cache[guild_id] = changed
