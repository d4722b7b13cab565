"""Per-server settings in SQLite: defaults, round trips across a reopen, validation, file modes."""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path

import pytest

from bot.core.guild_settings import MAX_CHANNELS, RERUN_ANYONE, GuildSettings, GuildSettingsStore
from bot.core.settings import Settings


def test_a_server_never_configured_gets_the_defaults(tmp_path: Path) -> None:
    store = GuildSettingsStore(tmp_path / "guilds.sqlite3")
    for guild_id in (1, None):
        current = store.get(guild_id)
        assert current == GuildSettings()
        assert current.allows_channel(123) and current.allows_size("large") and not current.spoilers
        assert current.allows_rerun(5, 5) and not current.allows_rerun(5, 6), "only the requester re-runs"
    store.close()


def test_settings_survive_a_reopen_and_stay_per_server(tmp_path: Path) -> None:
    path = Settings(data_dir=tmp_path / "data").guild_settings_path
    store = GuildSettingsStore(path)
    changed = GuildSettings(channels=(10, 11), max_size="medium", reruns=RERUN_ANYONE, spoilers=True)
    store.save(1, 99, changed)
    store.save(1, 99, dataclasses.replace(changed, channels=(11,)))
    store.close()

    reopened = GuildSettingsStore(path)
    assert reopened.get(1) == dataclasses.replace(changed, channels=(11,))
    assert reopened.get(2) == GuildSettings(), "another server is untouched"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    reopened.close()


def test_channel_rule_counts_a_thread_as_its_parent_channel() -> None:
    current = GuildSettings(channels=(10,))
    assert current.allows_channel(10)
    assert not current.allows_channel(20)
    assert current.allows_channel(20, parent_id=10)
    assert not current.allows_channel(20, parent_id=30)


def test_sizes_over_the_server_largest_are_refused_or_clamped() -> None:
    current = GuildSettings(max_size="medium")
    assert current.allows_size("small") and current.allows_size("medium") and not current.allows_size("large")
    assert current.clamp_size("large") == "medium" and current.clamp_size("small") == "small"
    assert GuildSettings().clamp_size("large") == "large"


@pytest.mark.parametrize("changes", [{"max_size": "huge"}, {"reruns": "nobody"}])
def test_invalid_values_are_refused(changes: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        GuildSettings(**changes)  # type: ignore[arg-type]


def test_the_channel_list_is_bounded(tmp_path: Path) -> None:
    store = GuildSettingsStore(tmp_path / "guilds.sqlite3")
    with pytest.raises(ValueError, match=str(MAX_CHANNELS)):
        store.save(1, 99, GuildSettings(channels=tuple(range(MAX_CHANNELS + 1))))
    assert store.get(1) == GuildSettings()
    store.close()
