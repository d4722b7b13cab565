"""Job records in SQLite: round trips, lookups, restart recovery, retention purge, permissions."""

from __future__ import annotations

import stat
import time
from pathlib import Path

from bot.settings import Settings
from bot.store import JobRecord, JobStatus, JobStore, new_job_id
from tests.helpers.images import content_image


def make_record(store: JobStore, **changes) -> JobRecord:
    job_id = new_job_id()
    record = JobRecord(
        job_id=job_id,
        user_id=42,
        guild_id=1,
        channel_id=2,
        params={"strength": "normal", "seed": 0},
        **changes,
    )
    record.content_path = str(store.save_input(job_id, "content", content_image()))
    store.add(record)
    return record


def open_store(data_dir: Path) -> JobStore:
    """A store laid out as the bot's settings lay it out under ``data_dir``."""
    settings = Settings(data_dir=data_dir)
    return JobStore(settings.database_path, settings.inputs_dir)


def test_round_trip_and_lookups(tmp_path: Path) -> None:
    store = open_store(tmp_path / "data")
    record = make_record(store)
    store.update(record.job_id, status=JobStatus.DONE, result_message_id=555, stats={"seconds": 1.5})
    loaded = store.get(record.job_id)
    assert loaded is not None
    assert loaded.params == {"strength": "normal", "seed": 0}
    assert loaded.status is JobStatus.DONE and loaded.stats == {"seconds": 1.5}
    assert store.by_result_message(555).job_id == record.job_id
    assert store.by_result_message(556) is None
    assert store.load_input(loaded.content_path).size == content_image().size


def test_records_survive_reopening(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    record = make_record(store)
    store.close()
    assert open_store(tmp_path).get(record.job_id).user_id == 42


def test_purge_deletes_old_inputs_only(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    old = make_record(store, status=JobStatus.DONE, created_at=time.time() - 10 * 86400)
    new = make_record(store, status=JobStatus.DONE)
    assert store.purge(7 * 86400) == 1
    expired = store.get(old.job_id)
    assert expired.expired and expired.content_path is None
    assert not Path(old.content_path).exists()
    assert Path(new.content_path).exists() and not store.get(new.job_id).expired
    assert store.purge(7 * 86400) == 0


def test_files_are_private_and_named_by_the_bot(tmp_path: Path) -> None:
    store = open_store(tmp_path / "data")
    record = make_record(store)
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    path = Path(record.content_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.parent == store.inputs_dir and path.name.startswith(record.job_id)
