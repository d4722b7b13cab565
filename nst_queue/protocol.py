"""What travels through Redis between whoever asks for a painting and the workers.

A job is one arq job of the function :data:`PAINT_FUNCTION` whose only argument is a payload dict
(:func:`job_payload`): inputs as lossless images (:func:`pack_image`), already no larger than the
job's size, and the engine's parameters as a plain dict. While it runs, the worker appends events
to a capped stream per job (:func:`events_key`): ``start`` (with the try number), ``progress`` (every field of
:class:`nst_engine.Progress`, a preview as PNG bytes now and then). Its outcome is arq's result:
:func:`success` or :func:`failure` dicts, or an exception arq recorded (the job was aborted, or ran
out of tries). Every key has a lifetime, so nothing is left behind in Redis.

Images travel as raw RGB pixels up to RAW_MAX_BYTES (a 2048 px picture): compressing a painting
costs more than sending it (a 683x512 result took 45 ms to write as PNG and 10 ms to read back,
against about a millisecond for its 1 MB of pixels on a LAN), and the bot encodes the result for
Discord anyway. Larger pictures go as PNG, so a 4096 px one stays a few MB in Redis.

arq's records (a job, a result) are written as msgpack by :mod:`nst_queue.wire`, never pickled; it
checks every record with :func:`check_payload` and :func:`check_outcome` before anything uses it,
and refuses records over JOB_MAX_BYTES and RESULT_RECORD_MAX_BYTES.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeGuard

from PIL import Image

from nst_engine import Progress, Result, RunStats
from nst_engine.errors import Cancelled, InvalidImage, NSTError, is_out_of_memory
from nst_engine.params import MAX_SIZE

if TYPE_CHECKING:
    from nst_engine.clips import ClipFormat, ClipLimits, ClipParams, EncodedClip

#: The arq queue (a sorted set: the waiting line, oldest first) and the one function on it.
QUEUE_NAME = "nst:queue"
PAINT_FUNCTION = "paint"
#: A job runs at most this many times in all (a worker that dies mid-job hands it on once).
MAX_TRIES = 2
#: A running job's arq "in progress" key lives this long and is renewed every HEARTBEAT_SECONDS by
#: the worker painting it: when that worker dies, the job is taken up again within this time.
IN_PROGRESS_SECONDS = 10.0
HEARTBEAT_SECONDS = 2.0
#: A job not started within this time expires (its inputs with it); results and event streams are
#: kept this long after they were written. Results are up to RESULT_MAX_BYTES.
JOB_TTL_SECONDS = 3600
RESULT_TTL_SECONDS = 3600
EVENTS_TTL_SECONDS = 3600
RESULT_MAX_BYTES = 16 * 1024 * 1024
#: Images up to this many bytes of pixels travel raw (see the module's docstring), larger as PNG.
RAW_MAX_BYTES = 2048 * 2048 * 3
#: The largest picture :func:`pack_image` makes: a MAX_SIZE square as PNG, which for pixels that do
#: not compress at all is their bytes plus PNG's framing (a filter byte per row, block and chunk
#: headers: well under the 1/64 of the pixel count allowed here).
IMAGE_MAX_BYTES = MAX_SIZE * MAX_SIZE * 3 + MAX_SIZE * MAX_SIZE // 64
#: The largest clip file a job may carry (an animation job's ``clip``: the kept GIF, WebP, APNG or
#: MP4, decoded by the worker; its frames never travel raw).
CLIP_MAX_BYTES = 32 * 1024 * 1024
#: The largest job record: a content, a style and an upscale's starting picture at the largest
#: size, even incompressible, a clip, and room for the parameters. More styles fit as long as the
#: pictures stay within it.
JOB_MAX_BYTES = 3 * IMAGE_MAX_BYTES + CLIP_MAX_BYTES + 1024 * 1024
#: The largest result record: the painting (at most RESULT_MAX_BYTES) and room for its stats and
#: arq's fields (a result keeps no copy of the job's inputs).
RESULT_RECORD_MAX_BYTES = RESULT_MAX_BYTES + 1024 * 1024
#: Events kept per job stream (XADD MAXLEN ~): a reader that falls behind only misses old progress.
EVENTS_MAXLEN = 64
#: One job's longest run on a worker, in seconds (arq's job timeout).
JOB_TIMEOUT_SECONDS = 6 * 3600


#: Each worker's health key (arq's health check, renewed every 10 s, lives 11 s) is this + its name.
WORKER_KEY_PREFIX = "nst:worker:"


def events_key(job_id: str) -> str:
    return f"nst:events:{job_id}"


def starts_key(job_id: str) -> str:
    """A short list of ``try:worker`` entries, one per time a worker started the job (for operators)."""
    return f"nst:starts:{job_id}"


def encode_png(image: Image.Image) -> bytes:
    """Lossless and quick: zlib's fastest level (used for previews and pictures too big to go raw)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def decode_png(data: bytes) -> Image.Image:
    """A picture file as RGB; ValueError for one larger than MAX_SIZE (checked before decoding it)."""
    with Image.open(io.BytesIO(data)) as image:
        if max(image.size) > MAX_SIZE:
            raise ValueError(f"a {image.width}x{image.height} picture is larger than {MAX_SIZE} px")
        image.load()
        return image.convert("RGB")


def pack_image(image: Image.Image) -> dict[str, Any]:
    """An RGB picture as plain data, losslessly: raw pixels up to RAW_MAX_BYTES, a PNG file above."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    if rgb.width * rgb.height * 3 <= RAW_MAX_BYTES:
        return {"format": "raw", "width": rgb.width, "height": rgb.height, "data": rgb.tobytes()}
    return {"format": "file", "data": encode_png(rgb)}


def check_packed_image(packed: Any) -> None:
    """ValueError unless ``packed`` is shaped like what :func:`pack_image` makes (nothing decoded)."""
    if not isinstance(packed, dict):
        raise ValueError("a packed image is not a map")
    kind, data = packed.get("format"), packed.get("data")
    if not isinstance(data, bytes) or not data:
        raise ValueError("packed image without data")
    if len(data) > IMAGE_MAX_BYTES:
        raise ValueError(f"a packed image of {len(data)} bytes is over {IMAGE_MAX_BYTES}")
    if kind == "file":
        return
    if kind != "raw":
        raise ValueError(f"unknown image format {kind!r}")
    width, height = packed.get("width"), packed.get("height")
    if not (_is_int(width) and _is_int(height)):
        raise ValueError(f"raw image without dimensions {width!r}x{height!r}")
    if not (0 < width <= MAX_SIZE and 0 < height <= MAX_SIZE):
        raise ValueError(f"raw image of impossible dimensions {width}x{height}")
    if len(data) != width * height * 3:
        raise ValueError(f"raw image of {len(data)} bytes does not fit {width}x{height} RGB")


def unpack_image(packed: Any) -> Image.Image:
    """The picture :func:`pack_image` made; ValueError for anything else (a mismatched sender)."""
    check_packed_image(packed)
    if packed["format"] == "file":  # any image file Pillow reads
        return decode_png(packed["data"])
    return Image.frombytes("RGB", (packed["width"], packed["height"]), packed["data"])


def _is_int(value: Any) -> TypeGuard[int]:
    """A whole number, not a bool (msgpack keeps the two apart; Python's isinstance does not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_plain(value: Any, depth: int = 0) -> bool:
    """A parameter value as :meth:`StyleParams.to_dict` writes it: scalars and short lists of them."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    return isinstance(value, list) and depth == 0 and all(_is_plain(item, 1) for item in value)


def shrink_to(image: Image.Image, size: int) -> Image.Image:
    """``image`` no larger than ``size`` on its longest side (never enlarged): what is worth sending.

    The engine's own resampling is used, to the dimensions the engine would work at, so the
    content's full-size level is the same picture the engine would have made from the original.
    """
    if max(image.size) <= size:
        return image
    from nst_engine.tensors import resize, scaled_dimensions

    return resize(image, scaled_dimensions(image.width, image.height, size))


def job_payload(
    content: Image.Image,
    styles: list[Image.Image],
    params: dict[str, Any],
    *,
    preview_every: int = 0,
    preview_size: int = 256,
    clip: dict[str, Any] | None = None,
    start_from: Image.Image | None = None,
) -> dict[str, Any]:
    """The one argument of a paint job. Inputs are shrunk to the job's size and packed losslessly.

    ``clip`` (:func:`clip_job`) makes it an animation: the worker paints the clip's frames with
    :func:`nst_engine.stylize_clip` (``content`` is then its first frame) and sends the result
    back encoded (:func:`success`'s ``clip``).

    ``start_from`` (an earlier result to continue: the engine's ``start_from``) travels with the
    pictures, packed the same way and under the same size checks, only when given (a worker of an
    older version ignores the key and paints the upscale from scratch).
    """
    size = int(params["size"])
    payload: dict[str, Any] = {
        "content": pack_image(shrink_to(content, size)),
        "styles": [pack_image(shrink_to(style, size)) for style in styles],
        "params": params,
        "preview_every": preview_every,
        "preview_size": preview_size,
    }
    if clip is not None:
        check_clip_job(clip)
        payload["clip"] = clip
    packed = [payload["content"], *payload["styles"]]
    if start_from is not None:
        payload["start_from"] = pack_image(shrink_to(start_from, size))
        packed.append(payload["start_from"])
    pictures = sum(len(image["data"]) for image in packed)
    if pictures > JOB_MAX_BYTES - 1024 * 1024:
        raise NSTError(
            f"the pictures make {pictures / 2**20:.1f} MiB, more than a queued job may carry "
            f"({(JOB_MAX_BYTES - 2**20) / 2**20:.1f} MiB); use fewer styles or a smaller size"
        )
    return payload


_PAYLOAD_KEYS = ("content", "styles", "params", "preview_every", "preview_size")


def check_payload(payload: Any) -> None:
    """ValueError unless ``payload`` is shaped like :func:`job_payload`'s (before a worker uses it).

    Keys this version does not know are let through (and ignored), so a newer sender's extras do not
    fail a job; the parameters' values are checked by the engine when the job runs.
    """
    if not isinstance(payload, dict) or any(key not in payload for key in _PAYLOAD_KEYS):
        raise ValueError("the job's argument is not a paint payload")
    check_packed_image(payload["content"])
    styles = payload["styles"]
    if not isinstance(styles, list) or not styles:
        raise ValueError("a paint payload without styles")
    for packed in styles:
        check_packed_image(packed)
    if payload.get("start_from") is not None:  # optional: an upscale's starting picture
        check_packed_image(payload["start_from"])
    params = payload["params"]
    if not isinstance(params, dict) or not all(
        isinstance(key, str) and _is_plain(value) for key, value in params.items()
    ):
        raise ValueError("the job's parameters are not plain values")
    if not _is_int(params.get("size")):
        raise ValueError("the job's parameters have no size")
    every, size = payload["preview_every"], payload["preview_size"]
    if not (_is_int(every) and 0 <= every < 2**31 and _is_int(size) and 0 < size <= MAX_SIZE):
        raise ValueError(f"impossible preview settings {every!r} / {size!r}")
    if "clip" in payload:
        check_clip_job(payload["clip"])


# ---------------------------------------------------------------------------- clips
#: What a clip job says beyond its file: the limits it is decoded with (as the bot decoded it),
#: the temporal loss's parameters, and the format the painted clip comes back in.
_CLIP_LIMIT_KEYS = ("max_frames", "max_seconds", "max_source_frames", "max_pixels")
_CLIP_FORMATS = ("mp4", "webp", "gif")
#: The most frames a clip may say it has, in a job or a result (a sanity bound, not a setting).
CLIP_MAX_FRAMES = 100_000


def clip_job(data: bytes, limits: ClipLimits, clip_params: ClipParams, output_format: str) -> dict[str, Any]:
    """A job payload's ``clip``: the clip's file (never its frames raw) and how to paint it."""
    return {
        "data": data,
        "limits": {key: getattr(limits, key) for key in _CLIP_LIMIT_KEYS},
        "temporal_weight": float(clip_params.temporal_weight),
        "frame_iterations": clip_params.frame_iterations,
        "format": output_format,
    }


def check_clip_job(clip: Any) -> None:
    """ValueError unless ``clip`` is shaped like :func:`clip_job`'s (the values are checked by
    ``ClipLimits`` and ``ClipParams`` when the worker builds them)."""
    if not isinstance(clip, dict):
        raise ValueError("a clip job is not a map")
    data = clip.get("data")
    if not isinstance(data, bytes) or not data:
        raise ValueError("a clip job without its file")
    if len(data) > CLIP_MAX_BYTES:
        raise ValueError(f"a clip of {len(data)} bytes is over {CLIP_MAX_BYTES}")
    limits = clip.get("limits")
    if not isinstance(limits, dict) or set(limits) != set(_CLIP_LIMIT_KEYS):
        raise ValueError("a clip job without its limits")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in limits.values()):
        raise ValueError("a clip job's limits are not numbers")
    weight, iterations = clip.get("temporal_weight"), clip.get("frame_iterations")
    if not (isinstance(weight, float) and _is_int(iterations)):
        raise ValueError("a clip job without its temporal weight and frame iterations")
    if clip.get("format") not in _CLIP_FORMATS:
        raise ValueError(f"unknown clip format {str(clip.get('format'))[:20]!r}")


def unpack_clip_job(clip: Any) -> tuple[bytes, ClipLimits, ClipParams, ClipFormat]:
    """The file, limits, parameters and output format of a checked clip job; the engine's
    ParameterError for values it refuses."""
    check_clip_job(clip)
    from nst_engine.clips import ClipLimits, ClipParams

    limits = ClipLimits(**clip["limits"])
    params = ClipParams(temporal_weight=clip["temporal_weight"], frame_iterations=clip["frame_iterations"])
    return clip["data"], limits, params, clip["format"]


# ---------------------------------------------------------------------------- progress events
_PROGRESS_FIELDS = (
    "step", "total", "level", "levels", "width", "height",
    "content_loss", "style_loss", "tv_loss", "total_loss", "elapsed", "eta", "time_fraction",
    "frame", "frames",
)  # fmt: skip
#: Fields newer than the others: a worker of an older version leaves them out.
_NEWER_PROGRESS_FIELDS = ("time_fraction", "frame", "frames")
_INT_PROGRESS_FIELDS = ("step", "total", "level", "levels", "width", "height", "frame", "frames")


def progress_event(progress: Progress) -> dict[str, bytes | str]:
    fields: dict[str, bytes | str] = {"kind": "progress"}
    for name in _PROGRESS_FIELDS:
        value = getattr(progress, name)
        fields[name] = "" if value is None else repr(value)
    if progress.preview is not None:
        fields["preview"] = encode_png(progress.preview)
    return fields


def start_event(job_try: int, worker: str) -> dict[str, bytes | str]:
    return {"kind": "start", "try": str(job_try), "worker": worker}


def read_event(fields: dict[bytes, bytes]) -> tuple[str, Any]:
    """``("start", try)`` or ``("progress", Progress)`` from a stream entry.

    ValueError for an entry this version cannot read (a mismatched or planted writer): the follower
    skips it. A preview is decoded only when it is no larger than a result may be.
    """
    try:
        return _read_event(fields)
    except Exception as error:  # whatever a malformed entry makes the parsers raise
        raise ValueError(f"malformed {type(error).__name__}: {error}"[:200]) from None


def _read_event(fields: dict[bytes, bytes]) -> tuple[str, Any]:
    text = {key.decode(): value for key, value in fields.items()}
    kind = text.get("kind", b"").decode()
    if kind == "start":
        return kind, int(text.get("try", b"1"))
    if kind == "progress":
        values: dict[str, Any] = {}
        for name in _PROGRESS_FIELDS:
            raw = (text.get(name, b"") if name in _NEWER_PROGRESS_FIELDS else text[name]).decode()
            if raw == "":
                if name not in ("frame", "frames"):  # those keep their default: frame 1 of 1
                    values[name] = None
            elif name in _INT_PROGRESS_FIELDS:
                values[name] = int(raw)
            else:
                values[name] = float(raw)
        if not 1 <= values.get("frame", 1) <= values.get("frames", 1) <= CLIP_MAX_FRAMES:
            raise ValueError("impossible frame numbers")
        preview = text.get("preview")
        if preview is not None and len(preview) > RESULT_MAX_BYTES:
            raise ValueError(f"a preview of {len(preview)} bytes")
        return kind, Progress(**values, preview=decode_png(preview) if preview else None)
    return kind, None


# ---------------------------------------------------------------------------- outcomes
def success(image: dict[str, Any], stats: RunStats, clip: EncodedClip | None = None) -> dict[str, Any]:
    """A finished job: the painting packed by :func:`pack_image` (or a file that fits) and its stats.

    An animation's ``image`` is its first frame, its ``stats`` the whole clip's (iterations and
    seconds), and ``clip`` the painted clip as a file (:func:`nst_engine.encode_clip`).
    """
    outcome: dict[str, Any] = {"ok": True, "image": image, "stats": stats.to_dict()}
    if clip is not None:
        outcome["clip"] = {"format": clip.extension, "data": clip.data, "frames": clip.frames}
    return outcome


def failure(error: BaseException) -> dict[str, Any]:
    """An error as plain data (exceptions never travel: records are data only)."""
    import asyncio

    if isinstance(error, (Cancelled, asyncio.CancelledError)):  # the latter: arq's abort
        kind = "cancelled"
    elif isinstance(error, InvalidImage):
        kind = "invalid_image"
    elif isinstance(error, NSTError):
        kind = "engine"
    elif is_out_of_memory(error):
        kind = "out_of_memory"
    else:
        kind = "internal"
    message = str(error) if kind in ("invalid_image", "engine") else type(error).__name__
    return {"ok": False, "kind": kind, "message": message}


def refused(reason: str) -> dict[str, Any]:
    """The outcome of a job whose record (the job, or its result) was refused unread: a failure."""
    return {"ok": False, "kind": "refused", "message": reason}


_STATS_FIELDS = frozenset(RunStats.__dataclass_fields__)


def check_outcome(outcome: Any) -> None:
    """ValueError unless ``outcome`` is a :func:`success` or a failure as this module writes them."""
    if not isinstance(outcome, dict) or not isinstance(outcome.get("ok"), bool):
        raise ValueError("the outcome is not a result of this queue")
    if not outcome["ok"]:
        if not isinstance(outcome.get("kind"), str) or not isinstance(outcome.get("message"), str):
            raise ValueError("a failure without a kind and a message")
        return
    check_packed_image(outcome.get("image"))
    stats = outcome.get("stats")
    if not isinstance(stats, dict) or set(stats) != _STATS_FIELDS:
        raise ValueError("a success without the engine's stats")
    if not all(isinstance(value, (int, float, str)) for value in stats.values()):
        raise ValueError("the stats are not plain values")
    if "clip" in outcome:
        clip = outcome["clip"]
        if not isinstance(clip, dict) or clip.get("format") not in _CLIP_FORMATS:
            raise ValueError("a painted clip without its format")
        data, frames = clip.get("data"), clip.get("frames")
        if not isinstance(data, bytes) or not data or len(data) > RESULT_MAX_BYTES:
            raise ValueError("a painted clip without its file, or too large a one")
        if not (_is_int(frames) and 1 <= frames <= CLIP_MAX_FRAMES):
            raise ValueError(f"a painted clip of {frames!r} frames")


@dataclass(frozen=True)
class PaintedClip:
    """An animation job's result as the workers sent it: the file and how many frames it has."""

    data: bytes
    clip_format: ClipFormat
    frames: int


def outcome_clip(outcome: Any) -> PaintedClip | None:
    """The painted clip of a checked successful outcome (:func:`outcome_to_result`), or None."""
    clip = outcome.get("clip") if isinstance(outcome, dict) else None
    if clip is None:
        return None
    return PaintedClip(clip["data"], clip["format"], clip["frames"])


class RemoteFailure(Exception):
    """A job failed on the workers for a reason that is not the user's (logged, told generically)."""


class JobLost(RemoteFailure):
    """Redis no longer has the job, nor its result (it restarted without persistence)."""


def outcome_to_result(outcome: Any) -> Result:
    """A job's result as :class:`nst_engine.Result`, or the matching exception raised."""
    try:
        check_outcome(outcome)
    except ValueError as error:
        raise RemoteFailure(f"unexpected result: {error}") from None
    if outcome["ok"]:
        try:
            image = unpack_image(outcome["image"])
        except Exception as error:  # a picture file Pillow cannot read, or too large a one
            raise RemoteFailure(f"the painting cannot be read: {error}") from None
        return Result(image=image, stats=RunStats(**outcome["stats"]))
    kind, message = outcome["kind"], outcome["message"]
    if kind == "cancelled":
        raise Cancelled()
    if kind == "invalid_image":
        raise InvalidImage(message)
    if kind == "engine":
        raise NSTError(message)
    if kind == "out_of_memory":
        raise MemoryError("the worker ran out of memory")
    if kind == "refused":
        raise RemoteFailure(f"a record of the job was refused unread: {message}")
    raise RemoteFailure(f"the worker failed: {message}")
