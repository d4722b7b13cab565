"""Peak memory of the bot while 20 phone photos (12 MP JPEGs, generated) wait in its queue.

The measurement runs in a fresh child process (the real bot against the fake Discord, the model
loaded, one worker kept busy by a long first job), never in a test process whose lifetime peak
says nothing about this; its resident memory is sampled every 10 ms from the moment the requests
are sent until every one is answered. 20 users send a photo and
a small painting at once; when all 20 jobs are admitted (one painting, 19 waiting) the child
reports its memory and stops. Runs offline; nothing is installed.

    python benchmarks/queued_memory.py            # prints a table
    python benchmarks/queued_memory.py --jobs 5   # fewer jobs
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # the fake Discord lives under tests/, importable from the root
    sys.path.insert(0, str(REPO_ROOT))

MIB = 1024 * 1024


def _refused(fake: Any, interactions: list[Any]) -> int:
    """Requests answered with a refusal or an error instead of a place in the queue."""
    return sum(1 for i in interactions if any(m.ephemeral and not m.loading for m in fake.messages_for(i)))


def _rss_now() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


class _Sampler:
    """The process's resident memory, sampled every 10 ms in a thread between start and stop."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, _rss_now())

    def __enter__(self) -> _Sampler:
        self.peak = _rss_now()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_now())


async def _measure(jobs: int, photo: bytes) -> dict[str, float]:
    from bot.chat.app import NSTBot
    from bot.core.settings import Settings
    from tests.e2e.harness import running_bot
    from tests.fakediscord import FakeDiscord
    from tests.helpers.images import png_bytes, stripes_style

    style = png_bytes(stripes_style(256, 256))
    with tempfile.TemporaryDirectory() as scratch:
        async with FakeDiscord() as fake:
            with fake.patched_discord():
                settings = Settings(
                    data_dir=Path(scratch) / "data",
                    cache_dir=Path(scratch) / "cache",
                    config_dir=Path(scratch) / "config",
                    concurrency=1,
                    queue_cap=jobs + 10,
                    per_user_limit=1,
                    cooldown_seconds=0.0,
                    progress_interval=5.0,
                    preview_count=0,
                    sizes={"small": 32, "medium": 512, "large": 768},  # paint tiny, keep 768 px
                    iterations=100_000,  # the first job keeps the worker busy: the rest wait
                    scales=1,
                    device="cpu",
                    precision="fp32",
                    token=fake.token,
                )
                people = [fake.add_member(f"phone{i}") for i in range(jobs)]
                bot = NSTBot(settings, guild_ready_timeout=0.05)
                async with running_bot(bot, fake):
                    await fake.wait_for(lambda: bot.model_ready.is_set(), timeout=300)
                    baseline = _rss_now()
                    with _Sampler() as sampler:
                        started = time.perf_counter()
                        interactions = await asyncio.gather(
                            *(
                                fake.slash_command(
                                    "stylize",
                                    {
                                        "content": fake.make_attachment(
                                            photo, "IMG.jpg", content_type="image/jpeg"
                                        ),
                                        "style": fake.make_attachment(
                                            style, "style.png", content_type="image/png"
                                        ),
                                        "size": "small",
                                    },
                                    user=person,
                                )
                                for person in people
                            )
                        )
                        assert bot.queue is not None
                        queue = bot.queue

                        def settled() -> bool:  # every request admitted, or answered why not
                            answered = all(
                                any(not m.loading for m in fake.messages_for(i)) for i in interactions
                            )
                            return answered and len(queue.jobs()) + _refused(fake, interactions) >= jobs

                        await fake.wait_for(settled, timeout=1800)
                        admitted = time.perf_counter() - started
                    queued = _rss_now()
                    accepted = len(queue.jobs())
                    stored = sum(p.stat().st_size for p in settings.inputs_dir.iterdir())
                    for job in list(queue.jobs()):
                        queue.cancel(job.job_id)
    return {
        "jobs": jobs,
        "accepted": accepted,
        "baseline_mib": baseline / MIB,
        "queued_mib": queued / MIB,
        "peak_mib": sampler.peak / MIB,
        "lifetime_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "admitted_s": admitted,
        "stored_mib": stored / MIB,
        "photo_mib": len(photo) / MIB,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        photo = args.child.read_bytes()  # made by the parent: its making is no part of the peak
        print(json.dumps(asyncio.run(_measure(args.jobs, photo))))
        return 0
    from tests.helpers.images import phone_photo_jpeg

    with tempfile.TemporaryDirectory() as scratch:
        photo_path = Path(scratch) / "photo.jpg"
        photo_path.write_bytes(phone_photo_jpeg())
        child = subprocess.run(
            [sys.executable, __file__, "--child", str(photo_path), "--jobs", str(args.jobs)],
            capture_output=True,
            text=True,
            check=False,
        )
    if child.returncode != 0:
        print(child.stderr[-3000:], file=sys.stderr)
        return 1
    report = json.loads(child.stdout.strip().splitlines()[-1])
    jobs = report["jobs"]
    if report["accepted"] < jobs:
        print(
            f"  only {report['accepted']} of {jobs} requests were admitted; the others were refused or failed"
        )
    rows = [
        ("RSS, model loaded, before the requests", f"{report['baseline_mib']:.0f} MiB"),
        (
            f"RSS with {report['accepted']} jobs admitted (1 painting, the rest waiting)",
            f"{report['queued_mib']:.0f} MiB",
        ),
        ("peak RSS from the requests until all were answered", f"{report['peak_mib']:.0f} MiB"),
        ("that peak over the baseline", f"{report['peak_mib'] - report['baseline_mib']:.0f} MiB"),
        (
            "peak RSS of the whole child (ru_maxrss, model loading included)",
            f"{report['lifetime_peak_mib']:.0f} MiB",
        ),
        (
            "stored inputs on disk",
            f"{report['stored_mib']:.1f} MiB ({jobs} photos of {report['photo_mib']:.1f} MiB)",
        ),
        ("time until every request was answered", f"{report['admitted_s']:.1f} s"),
    ]
    print(f"queued memory: {jobs} phone photos (12 MP JPEG) queued at once")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
