"""Results that were posted but whose record could not be written: never reported lost.

A job's last record write (status ``done`` and its result message) can fail after the picture is
already in the channel: a locked database past its busy timeout, a full disk, a data dir turned
read-only. :class:`~bot.core.life.JobLife` retries it a few times; when it still fails, the
delivery is written here, in a small file next to the database (one JSON line per result), so
that the next start does not take the job for one a crash interrupted (it would say "lost" and
paint it again), and writes the record then (:meth:`bot.core.store.JobStore.replay_deliveries`).
While the record is missing, this process still knows the result (:meth:`DeliveryJournal.delivery_of`):
its buttons and the re-run reaction answer that it cannot be re-run right now, never nothing.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from nst_engine.files import write_atomically

from .records import JsonValue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    """A posted result: what the job's record says once it can be written."""

    job_id: str
    result_message_id: int
    finished_at: float
    stats: dict[str, JsonValue] | None = None


class DeliveryJournal:
    """The deliveries not recorded yet: the file ``path`` and this process's copy in memory.

    Results whose last write is still in progress are known here too (:meth:`posting`), in memory
    only, so a reaction on a result a moment old finds its job while the write waits for a lock.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        #: Deliveries whose record could not be written, by job id (as in the file).
        self._unrecorded: dict[str, Delivery] = {}
        #: Result message id -> its delivery, for those and for the writes in progress.
        self._by_message: dict[int, Delivery] = {}
        for delivery in self._read():
            self._unrecorded[delivery.job_id] = delivery
            self._by_message[delivery.result_message_id] = delivery

    def _read(self) -> list[Delivery]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        except OSError as error:
            log.error("cannot read the journal of delivered results: %s", error)
            return []
        deliveries = []
        for line in lines:
            try:
                entry = json.loads(line)
                stats = entry.get("stats")
                deliveries.append(
                    Delivery(
                        job_id=str(entry["job_id"]),
                        result_message_id=int(entry["result_message_id"]),
                        finished_at=float(entry["finished_at"]),
                        stats=stats if isinstance(stats, dict) else None,
                    )
                )
            except (ValueError, KeyError, TypeError, AttributeError):  # a line cut short by a crash
                log.warning("skipping an unreadable line of %s", self.path.name)
        return deliveries

    def posting(self, delivery: Delivery) -> None:
        """``delivery``'s result was posted; its record is being written."""
        with self._lock:
            self._by_message[delivery.result_message_id] = delivery

    def recorded(self, delivery: Delivery) -> None:
        """The record of ``delivery``'s job now says it is done: nothing to keep."""
        with self._lock:
            if self._by_message.get(delivery.result_message_id) == delivery:
                del self._by_message[delivery.result_message_id]

    def add(self, delivery: Delivery) -> None:
        """Keep ``delivery`` (its record could not be written): in memory at once, then appended
        to the file and synced; raises ``OSError`` when the file cannot be written."""
        with self._lock:
            self._unrecorded[delivery.job_id] = delivery
            self._by_message[delivery.result_message_id] = delivery
            line = json.dumps(asdict(delivery), separators=(",", ":")) + "\n"
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(descriptor, line.encode("utf-8"))
                os.fsync(descriptor)
            finally:
                os.close(descriptor)

    def unrecorded(self) -> list[Delivery]:
        with self._lock:
            return list(self._unrecorded.values())

    def is_unrecorded(self, job_id: str) -> bool:
        """Whether ``job_id`` was delivered but its record does not say so yet."""
        with self._lock:
            return job_id in self._unrecorded

    def delivery_of(self, result_message_id: int) -> Delivery | None:
        """The delivery of result ``result_message_id``, while its job's record does not say so."""
        with self._lock:
            return self._by_message.get(result_message_id)

    def forget(self, job_ids: set[str]) -> None:
        """Those deliveries are recorded now: drop them here and from the file (rewritten whole)."""
        if not job_ids:
            return
        with self._lock:
            for job_id in job_ids:
                delivery = self._unrecorded.pop(job_id, None)
                if delivery is not None and self._by_message.get(delivery.result_message_id) == delivery:
                    del self._by_message[delivery.result_message_id]
            remaining = "".join(
                json.dumps(asdict(d), separators=(",", ":")) + "\n" for d in self._unrecorded.values()
            )
            if remaining:
                write_atomically(self.path, remaining.encode("utf-8"))
            else:
                self.path.unlink(missing_ok=True)
