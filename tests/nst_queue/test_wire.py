"""arq's records as msgpack: what this version writes it reads back, and nothing else is loaded."""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path
from typing import Any

import msgpack
import pytest
from arq.jobs import (
    DeserializationError,
    deserialize_job_raw,
    deserialize_result,
    serialize_job,
    serialize_result,
)
from arq.worker import JobExecutionFailed
from PIL import Image

from nst_engine.errors import NSTError
from nst_queue import protocol, wire
from tests.helpers.images import content_image, stripes_style
from tests.helpers.planted import job_record, now_ms, oversized, pickled_job, pickled_result, result_record


def payload() -> dict[str, Any]:
    return protocol.job_payload(content_image(40, 30), [stripes_style(32, 32)], {"size": 40, "seed": 3})


def arq_result(outcome: Any, *, success: bool = True) -> bytes:
    data = serialize_result(
        protocol.PAINT_FUNCTION, (payload(),), {}, 1, now_ms(), success, outcome, now_ms(), now_ms(),
        "ref", protocol.QUEUE_NAME, job_id="j1", serializer=wire.dump,
    )  # fmt: skip
    assert data is not None
    return data


def test_a_job_travels_through_arqs_own_functions_as_msgpack() -> None:
    sent = payload()
    data = serialize_job(protocol.PAINT_FUNCTION, (sent,), {}, None, now_ms(), serializer=wire.dump)
    assert not data.startswith(b"\x80"), "not a pickle"
    function, args, kwargs, _try, _enqueued = deserialize_job_raw(data, deserializer=wire.load_job)
    assert (function, kwargs) == (protocol.PAINT_FUNCTION, {})
    [received] = args
    assert received == sent, "bytes, numbers and text come back as they went"
    assert protocol.unpack_image(received["content"]).tobytes() == content_image(40, 30).tobytes()


def test_a_result_keeps_its_outcome_and_drops_the_inputs() -> None:
    outcome = protocol.failure(NSTError("too small"))
    info = deserialize_result(arq_result(outcome), deserializer=wire.load_result)
    assert info.result == outcome and info.success
    assert list(info.args) == [], "the job's pictures are not copied into its result"
    assert len(arq_result(outcome)) < 1000


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (asyncio.CancelledError(), {"ok": False, "kind": "cancelled", "message": "CancelledError"}),
        (
            JobExecutionFailed("max 2 retries exceeded"),
            {"ok": False, "kind": "internal", "message": "max 2 retries exceeded"},
        ),
        (RuntimeError("/secret/path"), {"ok": False, "kind": "internal", "message": "RuntimeError"}),
    ],
)
def test_exceptions_arq_records_become_data(error: BaseException, expected: dict[str, Any]) -> None:
    info = deserialize_result(arq_result(error, success=False), deserializer=wire.load_result)
    assert info.result == expected


def test_arqs_stand_in_for_an_unserializable_result_is_a_failure() -> None:
    info = deserialize_result(
        arq_result("unable to serialize result", success=False), deserializer=wire.load_result
    )
    assert info.result == {"ok": False, "kind": "internal", "message": "unable to serialize result"}


def refusal(load: Any, data: bytes) -> str:
    with pytest.raises(wire.RefusedRecord) as caught:
        load(data)
    return str(caught.value)


def test_a_pickle_is_refused_without_being_loaded(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    assert "pickle" in refusal(wire.load_job, pickled_job(marker))
    assert "pickle" in refusal(wire.load_result, pickled_result(marker, "j1"))
    for version in range(2, 6):
        assert "pickle" in refusal(wire.load_job, pickle.dumps({"f": "paint"}, protocol=version))
    assert not marker.exists()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xc1 no msgpack starts like this", "not msgpack"),
        (msgpack.packb({"f": "paint"}) + b"trailing", "not msgpack"),
        (msgpack.packb(msgpack.ExtType(5, b"code")), "not msgpack"),
        (msgpack.packb([1, 2, 3]), "not an arq record"),
        (job_record(payload(), function="os.system"), "unknown function"),
        (job_record({"content": "x"}), "not a paint payload"),
        (job_record({**payload(), "styles": []}), "without styles"),
        (job_record({**payload(), "params": {"size": 40, "x": {"nested": 1}}}), "not plain values"),
        (
            job_record({**payload(), "content": {"format": "raw", "width": 5000, "height": 1, "data": b"1"}}),
            "impossible dimensions",
        ),
        (
            job_record({**payload(), "content": {"format": "raw", "width": 2, "height": 2, "data": b"1"}}),
            "does not fit",
        ),
    ],
    # Named by reason: a record's bytes carry its enqueue time, and ids must not change between runs.
    ids=lambda value: value if isinstance(value, str) else "record",
)
def test_a_malformed_job_is_refused(data: bytes, reason: str) -> None:
    assert reason in refusal(wire.load_job, data)


def test_an_extension_type_anywhere_is_refused() -> None:
    planted = msgpack.packb({"t": 1, "f": "paint", "a": [msgpack.ExtType(1, b"x")], "k": {}, "et": 1})
    assert "extension type 1" in refusal(wire.load_job, planted)


@pytest.mark.parametrize(
    "outcome",
    [
        "a string",
        {"ok": True, "image": {"format": "raw", "width": 1, "height": 1, "data": b"abc"}, "stats": {"x": 1}},
        {"ok": True, "image": {"format": "gif", "data": b"GIF89a"}, "stats": {}},
        {"ok": False, "kind": "engine"},
    ],
)
def test_a_malformed_result_is_refused(outcome: Any) -> None:
    refusal(wire.load_result, result_record("j1", outcome))


def test_records_over_the_protocols_limits_are_refused_before_parsing() -> None:
    assert "bytes allowed" in refusal(wire.load_result, oversized(protocol.RESULT_RECORD_MAX_BYTES))
    assert "bytes allowed" in refusal(wire.load_job, oversized(protocol.JOB_MAX_BYTES))


def test_the_limits_hold_the_largest_pictures_the_protocol_sends() -> None:
    assert protocol.JOB_MAX_BYTES > 2 * protocol.MAX_SIZE**2 * 3, "content and style at 4096 px, raw"
    assert protocol.RESULT_RECORD_MAX_BYTES > protocol.RESULT_MAX_BYTES


def test_a_job_too_large_for_the_queue_is_refused_by_its_sender(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol, "JOB_MAX_BYTES", 1024 * 1024 + 4000)
    with pytest.raises(NSTError, match="more than a queued job may carry"):
        protocol.job_payload(content_image(40, 30), [stripes_style(40, 40)], {"size": 40})


def test_the_writer_refuses_to_write_an_oversized_record(monkeypatch: pytest.MonkeyPatch) -> None:
    record = {"t": 1, "f": "paint", "a": [payload()], "k": {}, "et": now_ms()}
    monkeypatch.setattr(protocol, "JOB_MAX_BYTES", 1000)
    with pytest.raises(ValueError, match="bytes allowed"):
        wire.dump(record)


def test_arq_reports_a_refusal_as_its_deserialization_error_with_the_reason() -> None:
    with pytest.raises(DeserializationError) as caught:
        deserialize_job_raw(b"\x80\x04garbage", deserializer=wire.load_job)
    assert wire.refusal_reason(caught.value) is not None and "pickle" in str(
        wire.refusal_reason(caught.value)
    )
    assert wire.refusal_reason(RuntimeError("other")) is None


def test_a_picture_file_larger_than_the_engine_takes_is_not_decoded() -> None:
    packed = protocol.pack_image(Image.new("RGB", (protocol.MAX_SIZE + 1, 1)))
    with pytest.raises(ValueError, match="larger than"):
        protocol.unpack_image(
            {"format": "file", "data": protocol.encode_png(Image.new("RGB", (protocol.MAX_SIZE + 1, 1)))}
        )
    assert packed["format"] == "raw"


@pytest.mark.parametrize(
    "fields",
    [
        {b"kind": b"progress", b"step": b"1"},
        {b"kind": b"progress", **{name.encode(): b"nan?" for name in protocol._PROGRESS_FIELDS}},
        {b"kind": b"start", b"try": b"one"},
        {
            b"kind": b"progress",
            **{name.encode(): b"1" for name in protocol._PROGRESS_FIELDS},
            b"preview": b"not png",
        },
    ],
)
def test_an_unreadable_event_is_a_value_error(fields: dict[bytes, bytes]) -> None:
    with pytest.raises(ValueError, match="malformed"):
        protocol.read_event(fields)


def test_a_progress_event_carries_the_time_fraction_and_an_older_one_reads_without_it() -> None:
    from nst_engine import Progress

    progress = Progress(
        step=3, total=10, level=1, levels=2, width=64, height=48, content_loss=1.0, style_loss=2.0,
        tv_loss=0.5, total_loss=3.5, elapsed=4.0, eta=12.0, time_fraction=0.25,
    )  # fmt: skip
    fields = {key.encode(): str(value).encode() for key, value in protocol.progress_event(progress).items()}
    kind, read = protocol.read_event(fields)
    assert kind == "progress" and read.fraction == 0.25
    del fields[b"time_fraction"]  # what a worker of the version before it sends
    _, older = protocol.read_event(fields)
    assert older.time_fraction is None and older.fraction == 0.3


def clip_payload(data: bytes = b"GIF89a clip bytes", **changes: Any) -> dict[str, Any]:
    from nst_engine.clips import ClipLimits, ClipParams

    clip = {
        **protocol.clip_job(data, ClipLimits(max_frames=4), ClipParams(frame_iterations=2), "webp"),
        **changes,
    }
    return {**payload(), "clip": clip}


def test_an_animation_job_carries_its_clip_file_and_reads_back_the_engines_values() -> None:
    sent = clip_payload()
    data = serialize_job(protocol.PAINT_FUNCTION, (sent,), {}, None, now_ms(), serializer=wire.dump)
    [received] = deserialize_job_raw(data, deserializer=wire.load_job)[1]
    clip_file, limits, params, clip_format = protocol.unpack_clip_job(received["clip"])
    assert clip_file == b"GIF89a clip bytes" and clip_format == "webp"
    assert (limits.max_frames, params.frame_iterations) == (4, 2)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"data": b""}, "without its file"),
        ({"data": "text"}, "without its file"),
        ({"limits": {"max_frames": 4}}, "without its limits"),
        ({"format": "exe"}, "unknown clip format"),
        ({"frame_iterations": "20"}, "without its temporal weight"),
    ],
)
def test_a_malformed_clip_job_is_refused(changes: dict[str, Any], reason: str) -> None:
    assert reason in refusal(wire.load_job, job_record(clip_payload(**changes)))


def test_a_clip_over_its_own_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol, "CLIP_MAX_BYTES", 100)
    assert "over 100" in refusal(wire.load_job, job_record(clip_payload(b"x" * 101)))
    with pytest.raises(ValueError, match="over 100"):
        protocol.job_payload(
            content_image(40, 30),
            [stripes_style(32, 32)],
            {"size": 40},
            clip=clip_payload(b"x" * 101)["clip"],
        )


def test_a_painted_clip_comes_back_with_its_result_and_a_malformed_one_is_refused() -> None:
    from nst_engine.clips import EncodedClip
    from nst_engine.engine import RunStats

    stats = RunStats(
        **{
            name: 1 if name not in ("device", "precision") else "cpu"
            for name in RunStats.__dataclass_fields__
        }
    )
    encoded = EncodedClip(b"RIFF....WEBP", "webp", 40, 30, 3, (100, 100, 100))
    outcome = protocol.success(protocol.pack_image(content_image(40, 30)), stats, clip=encoded)
    info = deserialize_result(arq_result(outcome), deserializer=wire.load_result)
    painted = protocol.outcome_clip(info.result)
    assert painted == protocol.PaintedClip(b"RIFF....WEBP", "webp", 3)
    for bad in ({"format": "webp", "data": b"x", "frames": 0}, {"format": "bmp", "data": b"x", "frames": 1}):
        refusal(wire.load_result, result_record("j1", {**outcome, "clip": bad}))


def test_progress_carries_the_frame_and_an_older_workers_reads_as_frame_1_of_1() -> None:
    from nst_engine import Progress

    progress = Progress(
        step=3, total=10, level=1, levels=1, width=64, height=48, content_loss=1.0, style_loss=2.0,
        tv_loss=0.5, total_loss=3.5, elapsed=4.0, eta=12.0, frame=2, frames=5,
    )  # fmt: skip
    fields = {key.encode(): str(value).encode() for key, value in protocol.progress_event(progress).items()}
    _, read = protocol.read_event(fields)
    assert (read.frame, read.frames) == (2, 5)
    with pytest.raises(ValueError, match="malformed"):
        protocol.read_event({**fields, b"frame": b"6"})
    del fields[b"frame"], fields[b"frames"]
    _, older = protocol.read_event(fields)
    assert (older.frame, older.frames) == (1, 1)


def test_an_upscales_starting_picture_travels_checked_like_the_others() -> None:
    """The optional ``start_from`` of an upscale: packed and read back like the inputs; a malformed
    one (over the size a picture may have, or not a picture) refuses the whole job."""
    start = content_image(20, 15)
    sent = protocol.job_payload(
        content_image(40, 30), [stripes_style(32, 32)], {"size": 40, "seed": 3}, start_from=start
    )
    data = serialize_job(protocol.PAINT_FUNCTION, (sent,), {}, None, now_ms(), serializer=wire.dump)
    [received] = deserialize_job_raw(data, deserializer=wire.load_job)[1]
    assert protocol.unpack_image(received["start_from"]).tobytes() == start.tobytes()
    assert "start_from" not in payload(), "only an upscale carries one"
    too_large = {"format": "file", "data": bytes(protocol.IMAGE_MAX_BYTES + 1)}
    assert "over" in refusal(wire.load_job, job_record({**payload(), "start_from": too_large}))
    assert "not a map" in refusal(wire.load_job, job_record({**payload(), "start_from": "x"}))
