"""Job records in SQLite, in the data dir, readable by the bot's user only.

A record outlives the process so buttons and reactions on an old result still work after a
restart: it keeps the parameters, who asked, where the result went, and the paths of the stored
inputs. After the retention period the inputs are deleted and the record says ``expired``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from PIL import Image


class JobStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: The result was deleted with its Delete button (and its stored inputs with it).
    DELETED = "deleted"


@dataclass
class JobRecord:
    """One request, as stored. ``params`` is the job's own description (strength, size, preset...)."""

    job_id: str
    user_id: int
    guild_id: int | None
    channel_id: int | None
    params: dict[str, Any]
    content_path: str | None = None
    style_path: str | None = None
    status: JobStatus = JobStatus.QUEUED
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    progress_message_id: int | None = None
    result_message_id: int | None = None
    stats: dict[str, Any] | None = None
    error: str | None = None
    expired: bool = False


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL,
    guild_id INTEGER,
    channel_id INTEGER,
    params TEXT NOT NULL,
    content_path TEXT,
    style_path TEXT,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    finished_at REAL,
    progress_message_id INTEGER,
    result_message_id INTEGER,
    stats TEXT,
    error TEXT,
    expired INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_result_message ON jobs(result_message_id);
"""
_COLUMNS = [
    "job_id",
    "user_id",
    "guild_id",
    "channel_id",
    "params",
    "content_path",
    "style_path",
    "status",
    "created_at",
    "finished_at",
    "progress_message_id",
    "result_message_id",
    "stats",
    "error",
    "expired",
]


def new_job_id() -> str:
    """A short random id: it goes into button custom_ids (100 characters at most)."""
    return uuid.uuid4().hex[:16]


class JobStore:
    """SQLite-backed job records plus the stored input images (``Settings.inputs_dir``)."""

    def __init__(self, database_path: Path, inputs_dir: Path) -> None:
        """``database_path`` and ``inputs_dir`` come from the settings (both under ``data_dir``)."""
        self.path = Path(database_path)
        self.inputs_dir = Path(inputs_dir)
        for directory in (self.path.parent, self.inputs_dir):
            directory.mkdir(parents=True, exist_ok=True)
            os.chmod(directory, 0o700)
        if not self.path.exists():
            # Create the file with owner-only permissions before SQLite opens it.
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        os.chmod(self.path, 0o600)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ inputs
    def save_input(self, job_id: str, role: str, image: Image.Image) -> Path:
        """Store a decoded input as PNG under a generated name (never the uploader's filename)."""
        path = self.inputs_dir / f"{job_id}-{role}-{uuid.uuid4().hex[:8]}.png"
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            image.save(handle, format="PNG")
        return path

    @staticmethod
    def load_input(path: str | None) -> Image.Image | None:
        """The stored input, or None when it was purged (or never stored)."""
        if not path or not Path(path).is_file():
            return None
        with Image.open(path) as image:
            image.load()
            rgb: Image.Image = image.convert("RGB")
            return rgb

    # ------------------------------------------------------------------ records
    def add(self, record: JobRecord) -> None:
        row = self._row(record)
        with self._lock:
            self._db.execute(
                f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})", row
            )

    def update(self, job_id: str, **changes: Any) -> None:
        if not changes:
            return
        encoded = {}
        for key, value in changes.items():
            if key not in _COLUMNS or key == "job_id":
                raise KeyError(key)
            if key in ("params", "stats") and value is not None:
                value = json.dumps(value)
            elif key == "status":
                value = JobStatus(value).value
            elif key == "expired":
                value = int(bool(value))
            encoded[key] = value
        assignments = ", ".join(f"{key} = ?" for key in encoded)
        with self._lock:
            self._db.execute(f"UPDATE jobs SET {assignments} WHERE job_id = ?", [*encoded.values(), job_id])

    def get(self, job_id: str) -> JobRecord | None:
        return self._one("SELECT * FROM jobs WHERE job_id = ?", (job_id,))

    def by_result_message(self, message_id: int) -> JobRecord | None:
        return self._one("SELECT * FROM jobs WHERE result_message_id = ?", (message_id,))

    def with_status(self, *statuses: JobStatus) -> list[JobRecord]:
        marks = ", ".join("?" * len(statuses))
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY created_at",
                [s.value for s in statuses],
            ).fetchall()
        return [self._record(row) for row in rows]

    def purge(self, retention_seconds: float, now: float | None = None) -> int:
        """Delete the inputs of jobs older than the retention period; returns how many were expired."""
        cutoff = (time.time() if now is None else now) - retention_seconds
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM jobs WHERE expired = 0 AND created_at < ? AND status NOT IN (?, ?)",
                (cutoff, JobStatus.QUEUED.value, JobStatus.RUNNING.value),
            ).fetchall()
        for row in rows:
            self.discard_inputs(self._record(row))
        return len(rows)

    def discard_inputs(self, record: JobRecord) -> None:
        """Delete a job's stored images now (expired, or never run); its record stays, marked expired."""
        for path in (record.content_path, record.style_path):
            if path:
                Path(path).unlink(missing_ok=True)
        record.expired, record.content_path, record.style_path = True, None, None
        self.update(record.job_id, expired=True, content_path=None, style_path=None)

    # ------------------------------------------------------------------ encoding
    def _one(self, sql: str, args: tuple[Any, ...]) -> JobRecord | None:
        with self._lock:
            row = self._db.execute(sql, args).fetchone()
        return None if row is None else self._record(row)

    @staticmethod
    def _row(record: JobRecord) -> list[Any]:
        return [
            record.job_id,
            record.user_id,
            record.guild_id,
            record.channel_id,
            json.dumps(record.params),
            record.content_path,
            record.style_path,
            JobStatus(record.status).value,
            record.created_at,
            record.finished_at,
            record.progress_message_id,
            record.result_message_id,
            None if record.stats is None else json.dumps(record.stats),
            record.error,
            int(record.expired),
        ]

    @staticmethod
    def _record(row: tuple[Any, ...]) -> JobRecord:
        data = dict(zip(_COLUMNS, row, strict=True))
        data["params"] = json.loads(data["params"])
        data["stats"] = None if data["stats"] is None else json.loads(data["stats"])
        data["status"] = JobStatus(data["status"])
        data["expired"] = bool(data["expired"])
        return JobRecord(**data)
