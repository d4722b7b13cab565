"""A job's life: the order of its record writes, the last write retried then journaled, and how a
worker's failure is logged."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock, MagicMock

import pytest

import bot.core.life as life_module
from bot.core.deliveries import Delivery
from bot.core.life import JobLife
from bot.core.records import JobRecord, JobStatus, new_job_id
from bot.core.requests import JobRequest
from bot.core.settings import Settings
from bot.core.store import JobStore
from nst_queue.protocol import RemoteFailure


def make_life(tmp_path: Path) -> JobLife:
    settings = Settings(data_dir=tmp_path / "data")
    store = JobStore(settings.database_path, settings.inputs_dir)
    record = JobRecord(job_id=new_job_id(), user_id=1, guild_id=2, channel_id=3, params={})
    store.add(record)
    backend = MagicMock()
    backend.stopped_by_shutdown.return_value = False
    messages = AsyncMock()
    messages.started = MagicMock()  # the one method the backend calls without awaiting
    return JobLife(record, JobRequest(), messages, store=store, backend=backend)


async def test_writes_land_in_the_order_they_were_asked_for(tmp_path: Path, monkeypatch) -> None:
    """A write asked for from a plain callback (the job started) may not land after a later one
    (the job ended), although each runs in its own thread and the first is slow."""
    life = make_life(tmp_path)
    real_update = life.store.update

    def slow_running(job_id: str, **changes: Any) -> None:
        if changes.get("status") is JobStatus.RUNNING:
            time.sleep(0.3)
        real_update(job_id, **changes)

    monkeypatch.setattr(life.store, "update", slow_running)
    life.on_start()
    assert await life.save(status=JobStatus.FAILED)
    assert life.store.get(life.job_id).status is JobStatus.FAILED


async def test_the_last_write_is_retried_then_journaled(tmp_path: Path, monkeypatch) -> None:
    life = make_life(tmp_path)
    monkeypatch.setattr(life_module, "DELIVERY_WRITE_BACKOFF", (0.0, 0.0))
    calls: list[dict[str, Any]] = []

    def failing(job_id: str, **changes: Any) -> None:
        calls.append(changes)
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(life.store, "update", failing)
    await life.record_delivery(Delivery(life.job_id, 99, finished_at=1.0))
    assert len(calls) == life_module.DELIVERY_WRITE_ATTEMPTS
    assert life.store.deliveries.is_unrecorded(life.job_id)
    assert life.store.deliveries.delivery_of(99).job_id == life.job_id
    assert life.store.deliveries.path.read_text().count(life.job_id) == 1


async def test_a_workers_failure_is_one_log_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    life = make_life(tmp_path)
    with caplog.at_level(logging.ERROR):
        await life.failed(RemoteFailure("the worker failed: boom"), stopped_by_shutdown=False)
    [line] = [r for r in caplog.records if r.name == life_module.__name__]
    assert line.exc_info is None and "boom" in line.getMessage()
    assert "Traceback" not in caplog.text
