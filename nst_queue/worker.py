"""``nst-worker``: paint the jobs waiting in Redis, one at a time, on one device.

    nst-worker --queue redis://:PASSWORD@redis-host:6379/0 --device cuda:1

Run one process per GPU. The model is loaded before the first job is taken. A job whose worker
dies is taken up again by another worker within :data:`~nst_queue.protocol.IN_PROGRESS_SECONDS`
(this worker renews the job's arq "in progress" key every few seconds while it paints), at most
:data:`~nst_queue.protocol.MAX_TRIES` times in all. On SIGTERM or SIGINT the worker takes no new
job, finishes the one in hand (for up to ``--grace`` seconds, then hands it back to the queue) and
exits 0. The Discord token is never needed here.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from arq.connections import RedisSettings
from arq.constants import in_progress_key_prefix
from arq.worker import Worker
from PIL import Image
from redis.exceptions import RedisError

from nst_engine import Progress, StyleParams, preload, stylize, stylize_clip
from nst_engine.cache import StyleTargetCache
from nst_engine.clips import decode_clip, encode_clip
from nst_engine.imaging import encode_image

from . import protocol, wire

log = logging.getLogger("nst_queue.worker")

#: At most this many progress events a second reach Redis (previews and the last step always do).
EVENTS_PER_SECOND = 10.0
#: Longest wait, after a job, for its last progress events to reach Redis (a Redis outage must not
#: hold the job's outcome back for long).
RELAY_DRAIN_SECONDS = 5.0
QUEUE_ENV = "NST_QUEUE_URL"
RECONNECT_SECONDS = 2.0
#: How often an idle worker looks for a job (arq polls; a look is one cheap sorted-set read). Half
#: of it is added to a job's wait on average; an idle worker spends ~3% of a core looking.
POLL_SECONDS = 0.02


class Painter:
    """The job function's state: this worker's device, name and (optional) style-target cache."""

    def __init__(self, device: str, name: str, cache_dir: Path | None) -> None:
        self.device = device
        self.name = name
        self.style_cache = StyleTargetCache.under(cache_dir) if cache_dir is not None else None

    async def paint(self, ctx: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        """arq's job function: one painting, with events on the job's stream."""
        redis = ctx["redis"]
        job_id: str = ctx["job_id"]
        stream = protocol.events_key(job_id)
        loop = asyncio.get_running_loop()
        await self._event(
            redis,
            stream,
            protocol.start_event(ctx["job_try"], self.name),
            log_start_of=job_id,
            job_try=ctx["job_try"],
        )
        heartbeat = asyncio.create_task(self._heartbeat(redis, job_id))
        cancel = threading.Event()
        #: Progress events for Redis, in order; None after the last one.
        events: asyncio.Queue[dict[str, bytes | str] | None] = asyncio.Queue()
        last_sent = [0.0]

        def report(progress: Progress) -> None:  # the engine's thread
            now = loop.time()
            final = progress.step >= progress.total
            if progress.preview is None and not final and now - last_sent[0] < 1 / EVENTS_PER_SECOND:
                return
            last_sent[0] = now
            loop.call_soon_threadsafe(events.put_nowait, protocol.progress_event(progress))

        async def relay() -> None:
            while (fields := await events.get()) is not None:
                await self._event(redis, stream, fields)

        relay_task = asyncio.create_task(relay())
        work = loop.run_in_executor(None, self._run, payload, report, cancel)
        try:
            outcome = await asyncio.shield(work)
        except asyncio.CancelledError:  # aborted by the user, or the worker is stopping
            cancel.set()
            await asyncio.wait([work], timeout=30)
            raise
        finally:
            heartbeat.cancel()
            # The relay sends every event queued before the outcome, the one it may be sending
            # now included (cancelling it there would lose the final progress), then ends.
            events.put_nowait(None)
            await asyncio.wait([relay_task], timeout=RELAY_DRAIN_SECONDS)
            relay_task.cancel()
        return outcome

    async def ended(self, ctx: dict[str, Any]) -> None:
        """arq's ``after_job_end``: the outcome is recorded; wake whoever follows the job now."""
        await self._event(ctx["redis"], protocol.events_key(ctx["job_id"]), {"kind": "end"})

    def _run(self, payload: dict[str, Any], report: Any, cancel: threading.Event) -> dict[str, Any]:
        """Runs in a thread: decode, paint, encode; engine errors become plain data."""
        try:
            params = StyleParams.from_dict({**payload["params"], "device": self.device})
            content = protocol.unpack_image(payload["content"])
            styles = [protocol.unpack_image(packed) for packed in payload["styles"]]
            if "clip" in payload:
                return self._run_clip(payload, params, styles, report, cancel)
            packed_start = payload.get("start_from")
            start_from = None if packed_start is None else protocol.unpack_image(packed_start)
            result = stylize(
                content,
                styles,
                params,
                progress=report,
                cancel=cancel,
                preview_every=int(payload.get("preview_every", 0)),
                preview_size=int(payload.get("preview_size", 256)),
                style_cache=self.style_cache,
                start_from=start_from,
            )
            packed = protocol.pack_image(result.image)
            if len(packed["data"]) > protocol.RESULT_MAX_BYTES:  # a huge painting: the best file that fits
                fitting = encode_image(result.image, max_bytes=protocol.RESULT_MAX_BYTES)
                packed = {"format": "file", "data": fitting.data}
            return protocol.success(packed, result.stats)
        except Exception as error:
            if not cancel.is_set():
                log.exception("job failed")
            return protocol.failure(error)

    def _run_clip(
        self,
        payload: dict[str, Any],
        params: StyleParams,
        styles: list[Image.Image],
        report: Any,
        cancel: threading.Event,
    ) -> dict[str, Any]:
        """An animation: the clip's file decoded as the bot decoded it, painted frame by frame, and
        sent back encoded in the job's format (its first frame packed as the job's image)."""
        data, limits, clip_params, clip_format = protocol.unpack_clip_job(payload["clip"])
        clip = decode_clip(data, limits, max_side=params.size)
        painted = stylize_clip(
            clip,
            styles,
            params,
            clip_params,
            progress=report,
            cancel=cancel,
            preview_every=int(payload.get("preview_every", 0)),
            preview_size=int(payload.get("preview_size", 256)),
            style_cache=self.style_cache,
        )
        first = protocol.pack_image(painted.clip.frames[0])
        room = protocol.RESULT_MAX_BYTES - len(first["data"])
        encoded = encode_clip(painted.clip, clip_format, max_bytes=room)
        stats = painted.stats
        run = dataclasses.replace(stats.first_frame, iterations=stats.iterations, seconds=stats.seconds)
        return protocol.success(first, run, clip=encoded)

    async def _event(
        self,
        redis: Any,
        stream: str,
        fields: dict[str, bytes | str],
        *,
        log_start_of: str | None = None,
        job_try: int = 0,
    ) -> None:
        try:
            async with redis.pipeline(transaction=False) as pipe:
                pipe.xadd(stream, fields, maxlen=protocol.EVENTS_MAXLEN, approximate=True)
                pipe.expire(stream, protocol.EVENTS_TTL_SECONDS)
                if log_start_of is not None:
                    starts = protocol.starts_key(log_start_of)
                    pipe.rpush(starts, f"{job_try}:{self.name}")
                    pipe.expire(starts, protocol.EVENTS_TTL_SECONDS)
                await pipe.execute()
        except Exception as error:  # progress is best effort; the result is what matters
            log.warning("could not publish an event: %s", error)

    async def _heartbeat(self, redis: Any, job_id: str) -> None:
        key = in_progress_key_prefix + job_id
        while True:
            await asyncio.sleep(protocol.HEARTBEAT_SECONDS)
            try:
                await redis.pexpire(key, int(protocol.IN_PROGRESS_SECONDS * 1000))
            except Exception as error:
                log.warning("could not renew job %s: %s", job_id, error)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="nst-worker",
        description="Paint the style-transfer jobs waiting in Redis, one at a time, on one device.",
    )
    parser.add_argument(
        "--queue",
        metavar="URL",
        default=os.environ.get(QUEUE_ENV),
        help=f"Redis URL, redis://[:password@]host:port/db or rediss://... (default: ${QUEUE_ENV})",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    parser.add_argument("--weights", default="caffe", help="VGG19 weights to preload (default: caffe)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="style-target cache directory")
    parser.add_argument("--name", default=None, help="this worker's name in logs (default: host:pid)")
    parser.add_argument(
        "--grace",
        type=float,
        default=600.0,
        metavar="S",
        help="on SIGTERM, seconds to finish the job in hand before handing it back (default: 600)",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    return parser.parse_args(argv)


class _RefusedJobLog(logging.Filter):
    """arq logs a job it cannot deserialize with a traceback; a refused record is one line instead.

    arq's record is ``logger.exception("deserializing job %s failed", job_id)`` with its
    ``DeserializationError`` raised from our :class:`~nst_queue.wire.RefusedRecord`; it is replaced
    by one warning naming the job and the reason. arq then fails the job: nothing of it runs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        reason = wire.refusal_reason(record.exc_info[1] if record.exc_info else None)
        if reason is None:
            return True
        job_id = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        log.warning("refused job %s: %s; it was not run", job_id, reason)
        return False


def _log_refused_jobs_in_one_line() -> None:
    arq_log = logging.getLogger("arq.worker")
    if not any(isinstance(existing, _RefusedJobLog) for existing in arq_log.filters):
        arq_log.addFilter(_RefusedJobLog())


def make_worker(url: str, painter: Painter, *, grace: float, poll_delay: float = POLL_SECONDS) -> Worker:
    """An arq worker for the paint queue: one job at a time, aborts allowed, short in-progress keys.

    Jobs are read and results written as msgpack (:mod:`nst_queue.wire`): a job record that is a
    pickle, malformed or oversized is failed unread, with one log line.
    """
    _log_refused_jobs_in_one_line()
    worker = Worker(
        functions=[_named(painter.paint)],
        queue_name=protocol.QUEUE_NAME,
        redis_settings=RedisSettings.from_dsn(url),
        max_jobs=1,
        max_tries=protocol.MAX_TRIES,
        job_timeout=protocol.JOB_TIMEOUT_SECONDS,
        keep_result=protocol.RESULT_TTL_SECONDS,
        allow_abort_jobs=True,
        poll_delay=poll_delay,
        health_check_interval=10,
        health_check_key=protocol.WORKER_KEY_PREFIX + painter.name,
        job_completion_wait=max(1, int(grace)),
        log_results=False,
        after_job_end=painter.ended,
        job_serializer=wire.dump,
        job_deserializer=wire.load_job,
    )
    # arq keeps a job's "in progress" key for its whole timeout (+10 s), so a dead worker's job
    # would wait hours; the heartbeat in Painter.paint keeps it alive instead.
    worker.in_progress_timeout_s = protocol.IN_PROGRESS_SECONDS
    return worker


def _named(function: Any) -> Any:
    from arq.worker import func

    return func(function, name=protocol.PAINT_FUNCTION)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not args.queue:
        print(f"nst-worker: give --queue URL (or set {QUEUE_ENV})", file=sys.stderr)
        return 2
    name = args.name or f"{socket.gethostname()}:{os.getpid()}"
    painter = Painter(args.device, name, args.cache_dir)
    try:
        preload(StyleParams(device=args.device, weights=args.weights))
    except Exception as error:
        print(f"nst-worker: cannot load the model: {error}", file=sys.stderr)
        return 1
    log.info("worker %s ready on %s", name, args.device)
    asyncio.set_event_loop(asyncio.new_event_loop())
    while True:
        worker = make_worker(args.queue, painter, grace=args.grace)
        try:
            worker.run()  # returns when a signal stopped it
            return 0
        except (RedisError, OSError) as error:  # Redis went away: connect again, a job is retried
            log.warning("lost Redis (%s); reconnecting in %.0f s", error, RECONNECT_SECONDS)
            time.sleep(RECONNECT_SECONDS)


if __name__ == "__main__":
    sys.exit(main())
