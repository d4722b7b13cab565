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
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from nst_engine import Progress, Result, RunStats
from nst_engine.errors import Cancelled, InvalidImage, NSTError, is_out_of_memory

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
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.convert("RGB")


def pack_image(image: Image.Image) -> dict[str, Any]:
    """An RGB picture as plain data, losslessly: raw pixels up to RAW_MAX_BYTES, a PNG file above."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    if rgb.width * rgb.height * 3 <= RAW_MAX_BYTES:
        return {"format": "raw", "width": rgb.width, "height": rgb.height, "data": rgb.tobytes()}
    return {"format": "file", "data": encode_png(rgb)}


def unpack_image(packed: dict[str, Any]) -> Image.Image:
    """The picture :func:`pack_image` made; ValueError for anything else (a mismatched sender)."""
    kind, data = packed.get("format"), packed.get("data")
    if not isinstance(data, bytes):
        raise ValueError("packed image without data")
    if kind == "file":  # any image file Pillow reads
        return decode_png(data)
    if kind == "raw":
        width, height = int(packed["width"]), int(packed["height"])
        if width <= 0 or height <= 0 or len(data) != width * height * 3:
            raise ValueError(f"raw image of {len(data)} bytes does not fit {width}x{height} RGB")
        return Image.frombytes("RGB", (width, height), data)
    raise ValueError(f"unknown image format {kind!r}")


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
) -> dict[str, Any]:
    """The one argument of a paint job. Inputs are shrunk to the job's size and packed losslessly."""
    size = int(params["size"])
    return {
        "content": pack_image(shrink_to(content, size)),
        "styles": [pack_image(shrink_to(style, size)) for style in styles],
        "params": params,
        "preview_every": preview_every,
        "preview_size": preview_size,
    }


# ---------------------------------------------------------------------------- progress events
_PROGRESS_FIELDS = (
    "step", "total", "level", "levels", "width", "height",
    "content_loss", "style_loss", "tv_loss", "total_loss", "elapsed", "eta",
)  # fmt: skip


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
    """``("start", try)`` or ``("progress", Progress)`` from a stream entry."""
    text = {key.decode(): value for key, value in fields.items()}
    kind = text.get("kind", b"").decode()
    if kind == "start":
        return kind, int(text.get("try", b"1"))
    if kind == "progress":
        values: dict[str, Any] = {}
        for name in _PROGRESS_FIELDS:
            raw = text[name].decode()
            if raw == "":
                values[name] = None
            elif name in ("step", "total", "level", "levels", "width", "height"):
                values[name] = int(raw)
            else:
                values[name] = float(raw)
        preview = text.get("preview")
        return kind, Progress(**values, preview=decode_png(preview) if preview else None)
    return kind, None


# ---------------------------------------------------------------------------- outcomes
def success(image: dict[str, Any], stats: RunStats) -> dict[str, Any]:
    """A finished job: the painting packed by :func:`pack_image` (or a file that fits) and its stats."""
    return {"ok": True, "image": image, "stats": stats.to_dict()}


def failure(error: BaseException) -> dict[str, Any]:
    """An engine error as plain data (exceptions are not pickled across machines)."""
    if isinstance(error, Cancelled):
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


class RemoteFailure(Exception):
    """A job failed on the workers for a reason that is not the user's (logged, told generically)."""


class JobLost(RemoteFailure):
    """Redis no longer has the job, nor its result (it restarted without persistence)."""


def outcome_to_result(outcome: Any) -> Result:
    """A job's result as :class:`nst_engine.Result`, or the matching exception raised."""
    if isinstance(outcome, dict) and outcome.get("ok"):
        return Result(image=unpack_image(outcome["image"]), stats=RunStats(**outcome["stats"]))
    if isinstance(outcome, dict):
        kind, message = outcome.get("kind"), str(outcome.get("message", ""))
        if kind == "cancelled":
            raise Cancelled()
        if kind == "invalid_image":
            raise InvalidImage(message)
        if kind == "engine":
            raise NSTError(message)
        if kind == "out_of_memory":
            raise MemoryError("the worker ran out of memory")
        raise RemoteFailure(f"the worker failed: {message}")
    if isinstance(outcome, BaseException):
        import asyncio

        if isinstance(outcome, asyncio.CancelledError):
            raise Cancelled()
        raise RemoteFailure(f"the job failed on the workers: {outcome}")
    raise RemoteFailure(f"unexpected result {type(outcome).__name__}")
