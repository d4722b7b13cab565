"""A job's record: what is stored of each job, and who may control it.

A record outlives the process so buttons and reactions on an old result still work after a
restart: it keeps the request (``params``), who asked, where the result went, and the paths of
the stored inputs. :class:`~bot.core.store.JobStore` keeps records in SQLite.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from enum import Enum
from typing import TypeAlias, TypedDict, cast


class JobStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: The result was deleted with its Delete button (and its stored inputs with it).
    DELETED = "deleted"


#: A value JSON can hold: a record keeps its parameters and its run statistics as JSON.
JsonValue: TypeAlias = str | int | float | bool | list["JsonValue"] | dict[str, "JsonValue"] | None


class JobParams(TypedDict, total=False):
    """A job's request as its record keeps it (:class:`bot.core.requests.JobRequest`); a record
    written before a field existed lacks it."""

    strength: str
    size: str
    preserve_color: bool
    seed: int
    preset: str | None
    spoiler: bool
    kind: str
    side: int | None
    reply_to: int | None


def job_params(stored: object) -> JobParams:
    """The stored request's fields this version knows: a record written by another version may
    have more (or fewer), and a resumed or re-run job must not fail on a key it cannot use."""
    if not isinstance(stored, dict):
        return JobParams()
    known = JobParams.__optional_keys__
    return cast(JobParams, {key: value for key, value in stored.items() if key in known})


class RecordChanges(TypedDict, total=False):
    """The fields :meth:`JobStore.update` may change in a stored record."""

    status: JobStatus
    error: str | None
    finished_at: float | None
    progress_message_id: int | None
    result_message_id: int | None
    stats: dict[str, JsonValue] | None
    content_path: str | None
    style_path: str | None
    start_path: str | None
    result_path: str | None
    expired: bool
    boot_id: str | None
    resumes: int


@dataclass
class JobRecord:
    """One request, as stored. ``params`` is the job's own description (strength, size, preset...)."""

    job_id: str
    user_id: int
    guild_id: int | None
    channel_id: int | None
    params: JobParams
    content_path: str | None = None
    style_path: str | None = None
    #: An upscale's starting picture: the result it enlarges (that job's ``result_path``, shared).
    start_path: str | None = None
    #: The delivered picture, kept (lossless, no metadata) for its Upscale button while it can be
    #: upscaled; it expires with the inputs.
    result_path: str | None = None
    status: JobStatus = JobStatus.QUEUED
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    progress_message_id: int | None = None
    result_message_id: int | None = None
    stats: dict[str, JsonValue] | None = None
    error: str | None = None
    expired: bool = False
    #: The bot process that follows the job (:attr:`bot.core.runner.JobRunner.boot_id`): a job
    #: queued or running under another id was left by a previous process, never one of ours.
    boot_id: str | None = None
    #: How many times the job was painted again after its process died (at most ``MAX_RESUMES``).
    resumes: int = 0


def new_job_id() -> str:
    """A short random id: it goes into button custom_ids (100 characters at most)."""
    return uuid.uuid4().hex[:16]


def may_control(record: JobRecord, user_id: int, *, moderator: bool) -> bool:
    """Whether ``user_id`` may cancel or delete ``record``'s job: its requester, or a moderator
    (Manage Messages in the channel)."""
    return user_id == record.user_id or moderator
