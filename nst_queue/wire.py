"""The bytes of arq's records in Redis: msgpack, checked before anything in them is used.

arq writes two records per job: the job (function name, arguments, try number, enqueue time)
under ``arq:job:<id>`` and its result (the same, plus success flag, outcome, start and finish
times, queue name, job id) under ``arq:result:<id>``. Its default format is pickle, and loading a
pickle runs whatever code it names: anyone able to write to Redis could run code in the workers
and in the bot. Here both are msgpack, which holds only data (maps, lists, text, numbers, bytes;
pictures travel as bytes without base64), with no extension types.

A job's payload may carry an upscale's starting picture (``start_from``), packed like the
inputs and under the same checks (:func:`nst_queue.protocol.check_payload`); JOB_MAX_BYTES has
room for it.

Reading is strict. A record that is a pickle (written by a version before this format, or
planted), is not msgpack, is larger than the protocol allows (checked before parsing), or is not
shaped like what this version writes raises :class:`RefusedRecord`, which arq wraps in its
``DeserializationError``. The worker then fails the job without running it (its
``Worker.run_job``), and :class:`nst_queue.client.QueueClient` reports the job failed; each logs
one line with :func:`refusal_reason`.

Aborts (a sorted set of job ids) and progress (stream entries of text and PNG bytes, read by
:func:`nst_queue.protocol.read_event`) were never pickled.
"""

from __future__ import annotations

from typing import Any

import msgpack
from arq.worker import JobExecutionFailed

from . import protocol

#: The first bytes of a pickle of protocol 2 to 5 (what arq's ``pickle.dumps`` writes).
_PICKLE_STARTS = tuple(bytes([0x80, version]) for version in range(2, 6))
#: Millisecond times (arq's enqueue, start and finish times) must fall before the year 5000.
_LATEST_MS = 95_617_584_000_000
_JOB_KEYS = ("t", "f", "a", "k", "et")
_RESULT_KEYS = (*_JOB_KEYS, "s", "r", "st", "ft", "q", "id")


class RefusedRecord(ValueError):
    """A record this version will not use; nothing in it was run. The message says why."""


def dump(record: dict[str, Any]) -> bytes:
    """arq's serializer, for jobs and results alike.

    A result keeps its outcome as data (an exception arq recorded, an abort for one, becomes a
    :func:`~nst_queue.protocol.failure`) and drops the copy of the job's arguments arq puts in it:
    the inputs are not needed once the job has ended, and a result stays under
    RESULT_RECORD_MAX_BYTES.
    """
    if "s" in record:
        record = {**record, "a": [], "k": {}, "r": _outcome_data(record["r"])}
        limit = protocol.RESULT_RECORD_MAX_BYTES
    else:
        limit = protocol.JOB_MAX_BYTES
    data: bytes = msgpack.packb(record)
    if len(data) > limit:
        raise ValueError(f"a record of {len(data)} bytes is over the {limit} bytes allowed")
    return data


def load_job(data: bytes) -> dict[str, Any]:
    """The worker's deserializer: a paint job's record, or :class:`RefusedRecord`."""
    record = _load(data, protocol.JOB_MAX_BYTES, _JOB_KEYS)
    if record["f"] != protocol.PAINT_FUNCTION:
        raise RefusedRecord(f"unknown function {str(record['f'])[:60]!r}")
    arguments = record["a"]
    if not isinstance(arguments, list) or len(arguments) != 1 or record["k"] != {}:
        raise RefusedRecord("a paint job takes exactly one argument, its payload")
    try:
        protocol.check_payload(arguments[0])
    except ValueError as error:
        raise RefusedRecord(str(error)) from None
    return record


def load_result(data: bytes) -> dict[str, Any]:
    """The client's deserializer: a job's result record, or :class:`RefusedRecord`."""
    record = _load(data, protocol.RESULT_RECORD_MAX_BYTES, _RESULT_KEYS)
    if not isinstance(record["s"], bool) or not all(_is_time(record[key]) for key in ("st", "ft")):
        raise RefusedRecord("a result without its success flag or times")
    if not isinstance(record["q"], str) or not isinstance(record["id"], str):
        raise RefusedRecord("a result without its queue and job id")
    try:
        protocol.check_outcome(record["r"])
    except ValueError as error:
        raise RefusedRecord(str(error)) from None
    return record


def refusal_reason(error: BaseException | None) -> str | None:
    """Why a record was refused, when ``error`` (arq's ``DeserializationError``) comes from one."""
    for _ in range(8):  # arq chains its error to ours with ``raise ... from``
        if error is None:
            return None
        if isinstance(error, RefusedRecord):
            return str(error)
        error = error.__cause__
    return None


def _load(data: bytes, limit: int, keys: tuple[str, ...]) -> dict[str, Any]:
    if len(data) > limit:
        raise RefusedRecord(f"{len(data)} bytes, over the {limit} bytes allowed")
    if data.startswith(_PICKLE_STARTS):
        raise RefusedRecord(
            "a pickle (written by a version before msgpack records, or planted), never loaded"
        )
    try:
        record = msgpack.unpackb(data, ext_hook=_no_extension)
    except Exception as error:  # msgpack's errors, for every way bytes can be malformed
        detail = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        raise RefusedRecord(f"not msgpack ({detail})"[:200]) from None
    if not isinstance(record, dict) or any(key not in record for key in keys):
        raise RefusedRecord("not an arq record")
    if not isinstance(record["f"], str) or not _is_time(record["et"]):
        raise RefusedRecord("an arq record without its function name or enqueue time")
    if not (record["t"] is None or (_is_int(record["t"]) and 0 <= record["t"] < 2**31)):
        raise RefusedRecord("an arq record with an impossible try number")
    if not isinstance(record["a"], list) or not isinstance(record["k"], dict):
        raise RefusedRecord("an arq record without its arguments")
    return record


def _no_extension(code: int, _data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_time(value: Any) -> bool:
    return _is_int(value) and 0 <= value < _LATEST_MS


def _outcome_data(outcome: Any) -> dict[str, Any]:
    """What :func:`dump` stores as a result's outcome: always one of the protocol's outcome maps."""
    if isinstance(outcome, dict):  # Painter.paint's return value: protocol.success() or failure()
        return outcome
    if isinstance(outcome, BaseException):
        reason = refusal_reason(outcome)
        if reason is not None:  # the worker refused the job (arq's DeserializationError)
            return protocol.refused(reason)
        if isinstance(outcome, JobExecutionFailed):  # "max 2 retries exceeded", "job expired"...
            return {"ok": False, "kind": "internal", "message": str(outcome)}
        return protocol.failure(outcome)
    # arq's stand-in when a result cannot be serialized: "unable to serialize result"
    return {"ok": False, "kind": "internal", "message": str(outcome)[:200]}
