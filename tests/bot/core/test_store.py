"""Job records in SQLite and the stored inputs: round trips, lookups, retention purge, shared
inputs, the byte cap, free space, atomic writes, permissions."""

from __future__ import annotations

import errno
import io
import os
import shutil
import sqlite3
import stat
import time
from pathlib import Path

import pytest
from PIL import Image

import bot.core.store as store_module
from bot.core.deliveries import Delivery
from bot.core.errors import StorageFull
from bot.core.inputs import InputImage, load_input, prepare_input
from bot.core.records import JobRecord, JobStatus, new_job_id
from bot.core.requests import JobRequest
from bot.core.settings import Settings
from bot.core.store import JobStore
from tests.helpers.images import content_image, phone_photo_jpeg, png_bytes


def make_record(store: JobStore, content: InputImage | None = None, **changes) -> JobRecord:
    """A job stored with its content input (a new 64x48 PNG unless ``content`` is given)."""
    record = JobRecord(
        job_id=new_job_id(),
        user_id=42,
        guild_id=1,
        channel_id=2,
        params={"strength": "normal", "seed": 0},
        **changes,
    )
    if content is None:
        content = InputImage(content_image(), data=png_bytes(content_image()), extension="png")
    store.add_with_inputs(record, content, None)
    return record


def open_store(data_dir: Path, **options) -> JobStore:
    """A store laid out as the bot's settings lay it out under ``data_dir``."""
    settings = Settings(data_dir=data_dir)
    return JobStore(settings.database_path, settings.inputs_dir, **options)


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
    assert load_input(loaded.content_path, max_side=768).size == content_image().size


def test_a_request_field_this_version_does_not_know_is_dropped(tmp_path: Path) -> None:
    """A record written by another version (an extra key) still loads, and its job can re-run."""
    store = open_store(tmp_path)
    record = make_record(store)
    with store._db:
        store._db.execute(
            "UPDATE jobs SET params = ? WHERE job_id = ?",
            ('{"strength": "strong", "seed": 3, "style_layers": [1, 2]}', record.job_id),
        )
    loaded = store.get(record.job_id)
    assert loaded is not None and loaded.params == {"strength": "strong", "seed": 3}
    request = JobRequest.from_dict(loaded.params)
    assert (request.strength, request.seed) == ("strong", 3)


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


def test_a_phone_photo_is_kept_once_at_the_largest_size_as_lossless_webp(tmp_path: Path) -> None:
    photo = phone_photo_jpeg(1600, 1200)  # 1.9 MP is enough to show it and quick to make
    prepared = prepare_input(photo, max_side=768, max_pixels=40_000_000, max_bytes=10 * 1024 * 1024)
    assert prepared.image.size == (768, 576)
    assert prepared.extension == "webp" and len(prepared.data) < len(photo)
    prepared_bytes = prepared.data
    store = open_store(tmp_path)
    record = make_record(store, prepared)
    stored = Path(record.content_path)
    assert stored.stat().st_size == store.stored_bytes() == len(prepared_bytes)
    with Image.open(stored) as image:
        assert image.format == "WEBP" and image.size == (768, 576)
        assert image.convert("RGB").tobytes() == prepared.image.tobytes(), "lossless"


def test_a_small_original_is_kept_as_sent_when_that_is_smaller(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    content_image(300, 200).save(buffer, format="JPEG", quality=70)
    prepared = prepare_input(buffer.getvalue(), max_side=768, max_pixels=40_000_000, max_bytes=10**7)
    assert prepared.data == buffer.getvalue() and prepared.extension == "jpeg"


def test_a_rerun_shares_its_jobs_inputs_and_deleting_one_keeps_the_other(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    first = make_record(store, status=JobStatus.DONE)
    shared = InputImage(content_image(), path=first.content_path)
    rerun = make_record(store, shared, status=JobStatus.DONE)
    assert rerun.content_path == first.content_path
    assert len(os.listdir(store.inputs_dir)) == 1, "no copy per re-run"
    store.discard_inputs(first)
    assert Path(rerun.content_path).is_file(), "the re-run still refers to the file"
    assert store.get(first.job_id).expired and not store.get(rerun.job_id).expired
    store.discard_inputs(store.get(rerun.job_id))
    assert os.listdir(store.inputs_dir) == []


def test_deleting_a_result_deletes_its_photo_everywhere(tmp_path: Path) -> None:
    """The Delete button: the user's photo goes now, and the re-runs sharing it expire."""
    store = open_store(tmp_path)
    first = make_record(store, status=JobStatus.DONE)
    rerun = make_record(store, InputImage(content_image(), path=first.content_path), status=JobStatus.DONE)
    other = make_record(store, status=JobStatus.DONE)
    store.discard_inputs(store.get(rerun.job_id), everywhere=True)
    assert not Path(first.content_path).exists()
    assert store.get(first.job_id).expired and store.get(first.job_id).content_path is None
    assert store.get(rerun.job_id).expired
    assert not store.get(other.job_id).expired and Path(other.content_path).is_file(), "others untouched"


def test_the_byte_cap_evicts_the_oldest_finished_jobs_first(tmp_path: Path) -> None:
    one = len(png_bytes(content_image()))
    store = open_store(tmp_path, max_input_bytes=3 * one)
    now = time.time()
    oldest = make_record(store, status=JobStatus.DONE, created_at=now - 30)
    running = make_record(store, status=JobStatus.RUNNING, created_at=now - 40)  # in flight: kept
    newer = make_record(store, status=JobStatus.FAILED, created_at=now - 20)
    latest = make_record(store, status=JobStatus.DONE, created_at=now - 10)
    assert store.get(oldest.job_id).expired and not Path(oldest.content_path).exists()
    for kept in (running, newer, latest):
        assert not store.get(kept.job_id).expired and Path(kept.content_path).exists()
    assert store.stored_bytes() <= 3 * one
    make_record(store)
    make_record(store)  # newer and latest go; the running job's input stays
    assert Path(running.content_path).exists() and store.get(latest.job_id).expired
    with pytest.raises(StorageFull):  # only jobs in flight are left: refused, nothing written
        make_record(store, status=JobStatus.QUEUED)
        make_record(store)
    assert store.stored_bytes() <= 3 * one


def test_a_nearly_full_disk_refuses_before_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(tmp_path)
    usage = shutil.disk_usage(tmp_path)
    nearly_full = usage._replace(free=store_module.MIN_FREE_BYTES + 10)
    monkeypatch.setattr(store_module.shutil, "disk_usage", lambda path: nearly_full)
    with pytest.raises(StorageFull, match="no room"):
        make_record(store)
    assert os.listdir(store.inputs_dir) == [] and store.with_status(JobStatus.QUEUED) == []


def test_a_write_that_fills_the_disk_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(tmp_path)

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        make_record(store)
    assert os.listdir(store.inputs_dir) == [], "the temporary file must be removed"
    assert store.with_status(JobStatus.QUEUED) == []


def test_leftovers_are_the_jobs_in_flight_of_other_processes_only(tmp_path: Path) -> None:
    store = open_store(tmp_path / "data")
    ours = make_record(store, boot_id="this-process")
    older = make_record(store, boot_id="previous-process")
    unmarked = make_record(store)  # written by a version without boot ids
    finished = make_record(store, boot_id="previous-process", status=JobStatus.DONE)
    left = {record.job_id for record in store.leftovers("this-process")}
    assert left == {older.job_id, unmarked.job_id}
    assert ours.job_id not in left and finished.job_id not in left


def test_a_database_an_older_version_wrote_gets_the_new_columns(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    settings.database_path.parent.mkdir(parents=True)
    old = sqlite3.connect(settings.database_path)
    old.executescript(
        store_module._SCHEMA.replace(",\n    boot_id TEXT,\n    resumes INTEGER NOT NULL DEFAULT 0", "")
    )
    old.execute(
        "INSERT INTO jobs (job_id, user_id, params, status, created_at) VALUES ('old', 1, '{}', 'running', 0)"
    )
    old.commit()
    old.close()
    store = open_store(tmp_path / "data")
    [record] = store.leftovers("new-process")
    assert record.job_id == "old" and record.boot_id is None and record.resumes == 0
    store.update("old", resumes=1, boot_id="new-process")
    assert store.get("old").resumes == 1


def test_a_journaled_delivery_is_found_and_recorded_at_the_next_start(tmp_path: Path) -> None:
    store = open_store(tmp_path / "data")
    record = make_record(store, status=JobStatus.RUNNING)
    store.deliveries.add(Delivery(record.job_id, 777, finished_at=1.0, stats={"seconds": 2.0}))
    found = store.by_result_message(777)
    assert found is not None and found.job_id == record.job_id and found.stats == {"seconds": 2.0}
    store.close()
    again = open_store(tmp_path / "data")  # the next start reads the journal
    assert again.deliveries.is_unrecorded(record.job_id)
    assert again.replay_deliveries() == []
    loaded = again.get(record.job_id)
    assert loaded.status is JobStatus.DONE and loaded.result_message_id == 777
    assert loaded.stats == {"seconds": 2.0}
    assert not again.deliveries.path.exists() and not again.deliveries.is_unrecorded(record.job_id)
