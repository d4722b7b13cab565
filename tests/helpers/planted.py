"""Records an attacker with write access to Redis could plant where arq looks for jobs and results.

The pickles are laid out exactly as arq's default format writes them; loading one runs a shell
command that creates ``marker``, so a test sees whether anything was run.
"""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path
from typing import Any

import msgpack
from arq.constants import job_key_prefix, result_key_prefix
from redis import Redis

from nst_queue import protocol


class RunsCode:
    """Unpickling this calls ``os.system``: the classic pickle payload."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def now_ms() -> int:
    return int(time.time() * 1000)


def pickled_job(marker: Path) -> bytes:
    return pickle.dumps(
        {"t": 1, "f": protocol.PAINT_FUNCTION, "a": (RunsCode(marker),), "k": {}, "et": now_ms()}
    )


def pickled_result(marker: Path, job_id: str) -> bytes:
    now = now_ms()
    return pickle.dumps({
        "t": 1, "f": protocol.PAINT_FUNCTION, "a": (), "k": {}, "et": now, "s": True, "r": RunsCode(marker),
        "st": now, "ft": now, "q": protocol.QUEUE_NAME, "id": job_id,
    })  # fmt: skip


def job_record(argument: Any, function: str = protocol.PAINT_FUNCTION) -> bytes:
    """A msgpack job record as this version writes them, around any argument."""
    return msgpack.packb({"t": 1, "f": function, "a": [argument], "k": {}, "et": now_ms()})


def result_record(job_id: str, outcome: Any) -> bytes:
    now = now_ms()
    return msgpack.packb({
        "t": 1, "f": protocol.PAINT_FUNCTION, "a": [], "k": {}, "et": now, "s": True, "r": outcome,
        "st": now, "ft": now, "q": protocol.QUEUE_NAME, "id": job_id,
    })  # fmt: skip


def oversized(limit: int) -> bytes:
    """A well-formed msgpack map one byte over ``limit``: refused for its size alone."""
    framing = len(msgpack.packb({"padding": bytes(limit)})) - limit
    data = msgpack.packb({"padding": bytes(limit + 1 - framing)})
    assert len(data) == limit + 1, len(data)
    return data


def plant_job(redis: Redis, job_id: str, data: bytes) -> None:
    """``data`` under ``arq:job:<id>``, and the id at the head of the paint queue."""
    redis.set(job_key_prefix + job_id, data, ex=protocol.JOB_TTL_SECONDS)
    redis.zadd(protocol.QUEUE_NAME, {job_id: now_ms()})


def plant_result(redis: Redis, job_id: str, data: bytes) -> None:
    redis.set(result_key_prefix + job_id, data, ex=protocol.RESULT_TTL_SECONDS)
