"""What can go wrong with a job, and the one sentence its user is told about each.

A :class:`JobRefused` is a job that was not admitted (or could not be kept); its ``str()`` is
already the user's sentence. :func:`friendly_error` turns any other exception into one; the Discord
layer's ``answer_error`` (:mod:`bot.chat.replies`) is the one place that says it.
"""

from __future__ import annotations

import errno
import re
import sqlite3

from nst_engine.errors import Cancelled, InvalidImage, NSTError, PresetError, is_out_of_memory

from . import texts


class JobRefused(Exception):
    """A job was not admitted; the message is written for the user."""


class ShuttingDown(JobRefused):
    def __init__(self) -> None:
        super().__init__(texts.SHUTTING_DOWN)


class QueueFull(JobRefused):
    def __init__(self) -> None:
        super().__init__(texts.QUEUE_FULL)


class TooManyJobs(JobRefused):
    def __init__(self, limit: int) -> None:
        super().__init__(texts.too_many_jobs(limit))


class CoolingDown(JobRefused):
    def __init__(self, retry_after: float) -> None:
        super().__init__(texts.cooling_down(retry_after))
        self.retry_after = retry_after


class ServiceUnavailable(JobRefused):
    """The painting service (Redis) cannot be reached."""

    def __init__(self) -> None:
        super().__init__(texts.SERVICE_UNAVAILABLE)


class StorageFull(JobRefused):
    """There is no room to keep a job's inputs (the disk is nearly full, or the inputs' cap is
    taken by jobs still in flight)."""

    def __init__(self) -> None:
        super().__init__(texts.STORAGE_FULL)


class RerunRefused(JobRefused):
    """A re-run that cannot start (already at the end of the levels, or the inputs expired)."""


class RerunInProgress(JobRefused):
    """The result is already being painted again (one re-run of a result at a time)."""

    def __init__(self, channel_id: int | None) -> None:
        super().__init__(texts.already_rerunning(channel_id))


class RerunBudgetSpent(JobRefused):
    """The user re-ran as many of other people's results as the hour allows."""

    def __init__(self, per_hour: int, retry_after: float) -> None:
        super().__init__(texts.rerun_budget_spent(per_hour, retry_after))
        self.retry_after = retry_after


class JobCancelled(Exception):
    """The job was cancelled before it started, or stopped by a shutdown."""


class Detached(Exception):
    """The bot stopped following a job that goes on without it (a remote job at shutdown)."""


class Undeliverable(Exception):
    """A finished picture that could not be posted; ``str()`` is the user's sentence."""


#: An absolute file path (``/root/.cache/...``, ``~/x/y``, ``C:\\x\\y``), not a URL's path.
_SERVER_PATH = re.compile(r"(?<![\w.:/\\])(?:~|[A-Za-z]:)?[/\\](?:[^\s'\"/\\]+[/\\])+[^\s'\"]*")


def without_paths(text: str) -> str:
    """``text`` with every server file path replaced: users never see them (the log has them)."""
    return _SERVER_PATH.sub("(a file on the server)", text)


def friendly_error(error: BaseException, *, preset: str | None = None) -> str:
    """The one-line message a user sees for a failed job; never a traceback, never a server path.

    ``preset``: the job's preset, if any. A preset that cannot be loaded (a missing file, a failed
    download) is the operator's to fix; the engine's message tells them where to put the file,
    and it goes to the log only.
    """
    if isinstance(error, (Cancelled, JobCancelled)):
        return texts.CANCELLED
    if isinstance(error, (JobRefused, Undeliverable)):
        return str(error)
    if isinstance(error, InvalidImage):
        return without_paths(texts.unusable_image(str(error)))
    if preset is not None and (
        isinstance(error, PresetError) or (isinstance(error, NSTError) and str(error).startswith("preset "))
    ):  # a remote worker's PresetError comes back as a plain NSTError with the same text
        return texts.preset_unavailable(preset)
    if isinstance(error, NSTError):
        return without_paths(texts.engine_failed(str(error)))
    if is_out_of_memory(error):
        return texts.OUT_OF_MEMORY
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return texts.DISK_FULL_TEXT
    if isinstance(error, sqlite3.OperationalError):  # "database is locked", a full disk under SQLite
        return texts.DATABASE_BUSY_TEXT
    return texts.UNEXPECTED
