"""One bot per data dir: an OS file lock on ``data_dir/nst-bot.lock``, held for the process's life.

Two bots on one data dir share the job records: the second one's start-up recovery took the
first one's running jobs for crash leftovers, failed them, deleted their photos and told their
users they were lost. So ``nst-bot`` takes an exclusive ``flock`` on a file in the data dir
before it opens anything there (:func:`hold_data_dir`), and a second ``nst-bot`` on the same
directory stops at start with one line (exit 2) naming the process that holds it: the holder
writes its pid, start time and host name into the file.

The operating system releases the lock when the process ends, however it ends (a crash, SIGKILL,
a power cut), so there is never a stale lock to delete by hand; the file itself stays and is
rewritten by the next holder. ``nst-bot sync`` writes no job state and takes no lock (it can run
beside the bot). ``nst-bot check`` only probes (:func:`running_bot`): it never creates the file,
and reports a running bot as a note, not a failure, because checking a working set-up while its
bot runs is what an operator does.

Where the lock cannot be taken for a reason other than another holder (no ``fcntl`` on Windows, a
network file system without locks), the bot logs a warning and runs unlocked, as it did before.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from .failures import CONFIGURATION, DirectoryUnusable, Failure

try:
    import fcntl
except ImportError:  # Windows: no flock; the bot runs unlocked there (a warning says so)
    fcntl = None  # type: ignore[assignment]  # mypy checks this module as on POSIX

log = logging.getLogger(__name__)

#: The lock file, in the data dir (next to ``jobs.sqlite3``).
LOCK_FILE_NAME = "nst-bot.lock"
#: The most of the lock file that is read: it holds one short JSON object.
_MAX_HOLDER_BYTES = 4096

#: The locks this process holds, by data dir: each file stays open (and locked) until the process ends.
_held: dict[Path, int] = {}


@dataclass(frozen=True)
class Holder:
    """The process that holds a data dir's lock, as it wrote itself into the lock file."""

    pid: int | None = None
    #: When it took the lock (seconds since the epoch).
    started: float | None = None
    host: str | None = None

    def describe(self, now: float | None = None) -> str:
        """``pid 1234, started 09:12`` (the date too when not today; the host when not this one)."""
        parts = [f"pid {self.pid}"] if self.pid is not None else []
        if self.started is not None:
            started = datetime.datetime.fromtimestamp(self.started)
            today = datetime.datetime.fromtimestamp(time.time() if now is None else now).date()
            parts.append(
                "started " + started.strftime("%H:%M" if started.date() == today else "%Y-%m-%d %H:%M")
            )
        if self.host and self.host != socket.gethostname():
            parts.append(f"on {self.host}")
        return f"another nst-bot ({', '.join(parts)})" if parts else "another nst-bot"


class DataDirBusy(DirectoryUnusable):
    """Another process holds the data dir's lock; the start fails with one line, exit 2."""

    def __init__(self, data_dir: Path, holder: Holder) -> None:
        super().__init__(
            Failure(
                f"{holder.describe()} is using the data dir {data_dir}",
                "stop it or give this one another NST_BOT_DATA_DIR",
                CONFIGURATION,
            )
        )


def lock_path(data_dir: Path) -> Path:
    return data_dir.expanduser().absolute() / LOCK_FILE_NAME


def hold_data_dir(data_dir: Path) -> None:
    """Take the data dir's lock for the rest of this process's life, creating the directory (0700).

    Raises :class:`DataDirBusy` when another process holds it. Calling it again for a data dir
    this process already holds does nothing.
    """
    path = lock_path(data_dir)
    if path.parent in _held:
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        locked = _lock(descriptor, exclusive=True)
    except OSError as error:
        os.close(descriptor)
        log.warning(
            "cannot lock the data dir %s (%s): make sure no other nst-bot uses it",
            path.parent,
            error.strerror,
        )
        return
    if not locked:
        holder = _read_holder(descriptor)
        os.close(descriptor)
        raise DataDirBusy(path.parent, holder)
    me = {"pid": os.getpid(), "started": time.time(), "host": socket.gethostname()}
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, json.dumps(me).encode() + b"\n", 0)
    _held[path.parent] = descriptor


def running_bot(data_dir: Path) -> Holder | None:
    """The process holding the data dir's lock, or None when none does (or locks are unavailable).

    Only probes: never creates the directory or the file. It holds a shared lock for an instant,
    so a bot starting in that very instant could be refused; a check is run by hand, so the
    window does not matter.
    """
    path = lock_path(data_dir)
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:  # no lock file: no bot has ever held this data dir (or it cannot be read)
        return None
    try:
        if _lock(descriptor, exclusive=False):
            return None  # closing the descriptor releases the probe's lock
        return _read_holder(descriptor)
    except OSError:
        return None
    finally:
        os.close(descriptor)


def _lock(descriptor: int, *, exclusive: bool) -> bool:
    """Try to lock without waiting: True when locked, False when another process holds it.

    Raises OSError when locks are unavailable here (no ``fcntl``, or the file system refuses).
    """
    if fcntl is None:
        raise OSError(0, "file locks are not available on this system")
    try:
        fcntl.flock(descriptor, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_holder(descriptor: int) -> Holder:
    """What the holder wrote into the lock file; an empty or garbled file gives an anonymous holder
    (the holder may not have written itself yet)."""
    try:
        written = json.loads(os.pread(descriptor, _MAX_HOLDER_BYTES, 0) or b"{}")
    except (OSError, ValueError):
        return Holder()
    if not isinstance(written, dict):
        return Holder()
    pid, started, host = written.get("pid"), written.get("started"), written.get("host")
    return Holder(
        pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
        started=float(started)
        if isinstance(started, (int, float)) and not isinstance(started, bool)
        else None,
        host=host if isinstance(host, str) else None,
    )


def running_bot_note(data_dir: Path) -> str:
    """What ``nst-bot check`` adds to its data dir line: the bot running on it, if any.

    Not a failure: the set-up works (that bot is using it); only a second bot needs another dir.
    """
    holder = running_bot(data_dir)
    if holder is None:
        return ""
    return f"; {holder.describe()} is running on it (a second bot needs another NST_BOT_DATA_DIR)"
