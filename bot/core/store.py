"""Job records (:mod:`bot.core.records`) in SQLite, in the data dir, readable by the bot's user
only, and the stored inputs (:mod:`bot.core.inputs`).

A re-run's record refers to the same input files as its job's. A file is deleted when no record
refers to it any more: after the retention period, soon after a job fails or is cancelled, or
oldest first when the inputs would exceed their byte cap. Every method here may block (SQLite,
the disk); the bot calls them from a thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from nst_engine.files import TEMPORARY_SUFFIX, write_atomically

from .deliveries import Delivery, DeliveryJournal
from .errors import StorageFull
from .records import JobRecord, JobStatus, RecordChanges, job_params

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .inputs import InputImage

#: Never fill the disk: storing inputs that would leave less free than this is refused, and
#: ``nst-bot check`` fails a directory with less (the cache holds paintings and style targets too).
MIN_FREE_BYTES = 256 * 1024 * 1024
#: How long a write waits for a locked database before it fails (sqlite3's default is 5 s).
BUSY_TIMEOUT_SECONDS = 5.0


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
    expired INTEGER NOT NULL DEFAULT 0,
    start_path TEXT,
    result_path TEXT,
    boot_id TEXT,
    resumes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_result_message ON jobs(result_message_id);
CREATE INDEX IF NOT EXISTS jobs_content_path ON jobs(content_path);
CREATE INDEX IF NOT EXISTS jobs_style_path ON jobs(style_path);
"""
#: Columns added since the first schema, each ``ALTER TABLE``d into an older database at open.
_ADDED_COLUMNS = {
    "start_path": "TEXT",
    "result_path": "TEXT",
    "boot_id": "TEXT",
    "resumes": "INTEGER NOT NULL DEFAULT 0",
}
#: The columns naming stored files (:meth:`JobStore._discard` deletes a file when none names it).
_PATH_COLUMNS = ("content_path", "style_path", "start_path", "result_path")
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
    "start_path",
    "result_path",
    "boot_id",
    "resumes",
]
#: The journal of delivered results whose record could not be written (next to the database).
DELIVERIES_FILE_NAME = "deliveries.jsonl"


def open_private_database(path: Path, schema: str) -> sqlite3.Connection:
    """An SQLite database only the bot's user can read (the file 0600 in a 0700 directory, created
    so before SQLite opens it), shared by the bot's threads, in autocommit mode; a write waits up
    to ``BUSY_TIMEOUT_SECONDS`` for a lock. ``schema`` is run on it (``CREATE ... IF NOT EXISTS``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    os.chmod(path, 0o600)
    database = sqlite3.connect(
        path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_SECONDS
    )
    database.executescript(schema)
    return database


class JobStore:
    """SQLite-backed job records plus the stored input images (``Settings.inputs_dir``)."""

    def __init__(
        self,
        database_path: Path,
        inputs_dir: Path,
        *,
        max_input_bytes: int | None = None,
        results_dir: Path | None = None,
    ) -> None:
        """``database_path`` and ``inputs_dir`` come from the settings (both under ``data_dir``);
        ``max_input_bytes`` (``inputs_max_bytes``) caps the stored inputs and kept results, None:
        no cap. ``results_dir`` (default: ``results`` next to ``inputs_dir``) holds the results
        kept for their Upscale button, made when the first is kept."""
        self.path = Path(database_path)
        self.inputs_dir = Path(inputs_dir)
        self.results_dir = (
            Path(results_dir) if results_dir is not None else self.inputs_dir.parent / "results"
        )
        self.max_input_bytes = max_input_bytes
        self.inputs_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.inputs_dir, 0o700)
        self._lock = threading.Lock()
        #: Held while inputs are written or deleted, so the byte cap is counted consistently.
        self._files_lock = threading.Lock()
        #: Each thread reads through its own connection (:meth:`_reader`): a read waiting for a
        #: locked database (up to the busy timeout) holds up neither the writes nor other reads,
        #: so every button pressed meanwhile is answered when the timeout ends, not one by one.
        self._readers = threading.local()
        self._reader_connections: list[sqlite3.Connection] = []
        self._db = open_private_database(self.path, _SCHEMA)
        self._db.row_factory = sqlite3.Row  # rows read by column name (see _record)
        present = {row["name"] for row in self._db.execute("PRAGMA table_info(jobs)").fetchall()}
        for column, definition in _ADDED_COLUMNS.items():
            if column not in present:  # a database an older version wrote
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {definition}")
        for column in ("start_path", "result_path"):
            self._db.execute(f"CREATE INDEX IF NOT EXISTS jobs_{column} ON jobs({column})")
        #: Results posted whose record could not be written yet (see :mod:`bot.core.deliveries`).
        self.deliveries = DeliveryJournal(self.path.parent / DELIVERIES_FILE_NAME)
        for directory in (self.inputs_dir, self.results_dir):
            for leftover in directory.glob(".*" + TEMPORARY_SUFFIX):  # a write cut short by a crash
                leftover.unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            self._db.close()
            for reader in self._reader_connections:
                reader.close()

    def _reader(self) -> sqlite3.Connection:
        """This thread's connection for reads (opened on its first read, closed by :meth:`close`)."""
        reader: sqlite3.Connection | None = getattr(self._readers, "connection", None)
        if reader is None:
            reader = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_SECONDS
            )
            reader.row_factory = sqlite3.Row
            self._readers.connection = reader
            with self._lock:
                self._reader_connections.append(reader)
        return reader

    # ------------------------------------------------------------------ inputs
    def add_with_inputs(self, record: JobRecord, content: InputImage, style: InputImage | None) -> None:
        """Store the inputs that are not stored yet, point ``record`` at them and add it.

        Makes room first: refuses (:class:`StorageFull`) when the disk would be left with less
        than ``MIN_FREE_BYTES``, and deletes the oldest finished jobs' inputs while the cap would
        be exceeded. On any failure (a full disk, a locked database) nothing new stays on disk.
        """
        inputs = [(role, item) for role, item in (("content", content), ("style", style)) if item is not None]
        written: list[Path] = []
        try:
            with self._files_lock:
                needed = sum(len(item.data) for _, item in inputs if item.data is not None)
                if needed:
                    self._make_room(needed)
                for role, item in inputs:
                    if item.data is not None:
                        path = (
                            self.inputs_dir
                            / f"{record.job_id}-{role}-{uuid.uuid4().hex[:8]}.{item.extension}"
                        )
                        write_atomically(path, item.data)
                        written.append(path)
                        item.path, item.data = str(path), None
            record.content_path = content.path
            record.style_path = style.path if style is not None else None
            self.add(record)
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise

    def keep_result(self, job_id: str, data: bytes) -> str:
        """Store a delivered picture (``data``: lossless WebP, no metadata) for its Upscale button
        and return its path; the caller records it as the job's ``result_path``. Counted in the
        byte cap and expired with the job's inputs. Raises :class:`StorageFull` like inputs."""
        with self._files_lock:
            self._make_room(len(data))
            self.results_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.results_dir, 0o700)
            path = self.results_dir / f"{job_id}-{uuid.uuid4().hex[:8]}.webp"
            write_atomically(path, data)
        return str(path)

    def _make_room(self, needed: int) -> None:
        """Free space for ``needed`` more bytes of inputs, or raise :class:`StorageFull`."""
        if shutil.disk_usage(self.inputs_dir).free - needed < MIN_FREE_BYTES:
            raise StorageFull()
        cap = self.max_input_bytes
        if cap is None:
            return
        if needed > cap:
            raise StorageFull()
        total = self.stored_bytes()
        while total + needed > cap:
            with self._lock:
                row = self._db.execute(
                    "SELECT * FROM jobs WHERE expired = 0 AND status NOT IN (?, ?) "
                    "AND (content_path IS NOT NULL OR style_path IS NOT NULL OR result_path IS NOT NULL) "
                    "ORDER BY created_at LIMIT 1",
                    (JobStatus.QUEUED.value, JobStatus.RUNNING.value),
                ).fetchone()
            if row is None:  # every stored input belongs to a job in flight
                raise StorageFull()
            total -= self._discard(self._record(row))

    def stored_bytes(self) -> int:
        """Bytes of all stored inputs and kept results (and writes in progress)."""
        total = 0
        for directory in (self.inputs_dir, self.results_dir):
            if not directory.is_dir():
                continue
            with os.scandir(directory) as entries:
                for entry in entries:
                    with contextlib.suppress(FileNotFoundError):
                        total += entry.stat().st_size
        return total

    def purge(self, retention_seconds: float, now: float | None = None) -> int:
        """Delete the inputs of jobs older than the retention period; returns how many were expired."""
        cutoff = (time.time() if now is None else now) - retention_seconds
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM jobs WHERE expired = 0 AND created_at < ? AND status NOT IN (?, ?)",
                (cutoff, JobStatus.QUEUED.value, JobStatus.RUNNING.value),
            ).fetchall()
        with self._files_lock:
            for row in rows:
                self._discard(self._record(row))
        return len(rows)

    def discard_inputs(self, record: JobRecord, *, everywhere: bool = False) -> None:
        """Let go of a job's stored images now (failed, cancelled, expired, deleted by its user).

        Its record stays, marked expired. A file another job still refers to (a re-run shares its
        job's inputs) is kept until the last record referring to it lets go; with ``everywhere``
        (the user deleted the result: their photo must go) it is deleted at once and every record
        sharing it is expired too, so those results' buttons say the job has expired.
        """
        with self._files_lock:
            self._discard(record, everywhere=everywhere)

    def _discard(self, record: JobRecord, *, everywhere: bool = False) -> int:
        """``discard_inputs`` with the files lock held; returns the bytes freed."""
        paths = {getattr(record, column) for column in _PATH_COLUMNS} - {None}
        record.expired = True
        record.content_path = record.style_path = record.start_path = record.result_path = None
        self.update(
            record.job_id, expired=True, content_path=None, style_path=None, start_path=None, result_path=None
        )
        freed = 0
        for path in paths:
            with self._lock:
                if everywhere:
                    for column in _PATH_COLUMNS:
                        self._db.execute(
                            f"UPDATE jobs SET expired = 1, {column} = NULL WHERE {column} = ?", (path,)
                        )
                shared = self._db.execute(
                    "SELECT 1 FROM jobs WHERE "
                    + " OR ".join(f"{column} = ?" for column in _PATH_COLUMNS)
                    + " LIMIT 1",
                    (path,) * len(_PATH_COLUMNS),
                ).fetchone()
            if shared is None:
                with contextlib.suppress(FileNotFoundError):
                    freed += Path(path).stat().st_size
                    Path(path).unlink()
        return freed

    # ------------------------------------------------------------------ records
    def add(self, record: JobRecord) -> None:
        row = self._row(record)
        with self._lock:
            self._db.execute(
                f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})", row
            )

    def update(self, job_id: str, **changes: Unpack[RecordChanges]) -> None:
        if not changes:
            return
        encoded: dict[str, object] = {}
        for key, value in changes.items():
            if key not in _COLUMNS or key == "job_id":
                raise KeyError(key)
            if key == "stats" and value is not None:
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
        """The job whose result is ``message_id``; also while its record does not say so yet (its
        last write in progress, or failed: :mod:`bot.core.deliveries`)."""
        record = self._one("SELECT * FROM jobs WHERE result_message_id = ?", (message_id,))
        if record is not None:
            return record
        delivery = self.deliveries.delivery_of(message_id)
        record = None if delivery is None else self.get(delivery.job_id)
        if record is not None and delivery is not None:  # the record as it is being written
            record.status = JobStatus.DONE
            record.result_message_id = message_id
            record.stats = delivery.stats
            record.finished_at = delivery.finished_at
        return record

    def leftovers(self, boot_id: str) -> list[JobRecord]:
        """Jobs queued or running under another bot process than ``boot_id`` (a previous one, which
        stopped or crashed), oldest first; never a job of this process, whenever this is asked."""
        in_flight = self.with_status(JobStatus.QUEUED, JobStatus.RUNNING)
        return [record for record in in_flight if record.boot_id != boot_id]

    def replay_deliveries(self) -> list[Delivery]:
        """Write the records of the delivered results the journal keeps (their last write failed
        before); returns the deliveries still unrecorded (the database still fails)."""
        recorded: set[str] = set()
        for delivery in self.deliveries.unrecorded():
            try:
                self.update(
                    delivery.job_id,
                    status=JobStatus.DONE,
                    result_message_id=delivery.result_message_id,
                    stats=delivery.stats,
                    finished_at=delivery.finished_at,
                )
            except sqlite3.Error:
                break  # still failing: the rest waits for the next start too
            recorded.add(delivery.job_id)
        self.deliveries.forget(recorded)
        return self.deliveries.unrecorded()

    def with_status(self, *statuses: JobStatus) -> list[JobRecord]:
        marks = ", ".join("?" * len(statuses))
        rows = (
            self._reader()
            .execute(
                f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY created_at",
                [s.value for s in statuses],
            )
            .fetchall()
        )
        return [self._record(row) for row in rows]

    # ------------------------------------------------------------------ encoding
    def _one(self, sql: str, args: tuple[object, ...]) -> JobRecord | None:
        row = self._reader().execute(sql, args).fetchone()
        return None if row is None else self._record(row)

    @staticmethod
    def _row(record: JobRecord) -> list[object]:
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
            record.start_path,
            record.result_path,
            record.boot_id,
            record.resumes,
        ]

    @staticmethod
    def _record(row: sqlite3.Row) -> JobRecord:
        return JobRecord(
            job_id=row["job_id"],
            user_id=row["user_id"],
            guild_id=row["guild_id"],
            channel_id=row["channel_id"],
            params=job_params(json.loads(row["params"])),
            content_path=row["content_path"],
            style_path=row["style_path"],
            status=JobStatus(row["status"]),
            created_at=row["created_at"],
            finished_at=row["finished_at"],
            progress_message_id=row["progress_message_id"],
            result_message_id=row["result_message_id"],
            stats=None if row["stats"] is None else json.loads(row["stats"]),
            error=row["error"],
            expired=bool(row["expired"]),
            start_path=row["start_path"],
            result_path=row["result_path"],
            boot_id=row["boot_id"],
            resumes=row["resumes"],
        )
