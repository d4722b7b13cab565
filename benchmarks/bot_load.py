"""Drive the real bot through the fake Discord with N users x M requests; print throughput,
latency percentiles and peak RSS.

Each simulated user sends M ``/stylize`` requests one after another (the bot allows one job in
flight per user), all users at once. Latency is measured as a user feels it: from the command to
the result message appearing. Runs offline; nothing is installed.

    python benchmarks/bot_load.py --users 10 --requests 3 --size 48 --iterations 3
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # the fake Discord lives under tests/, importable from the root
    sys.path.insert(0, str(REPO_ROOT))

from bot.chat.app import NSTBot  # noqa: E402
from bot.core.settings import Settings  # noqa: E402
from tests.e2e.harness import running_bot  # noqa: E402
from tests.fakediscord import FakeDiscord, FakeInteraction, FakeUser  # noqa: E402
from tests.helpers.images import content_image, png_bytes, stripes_style  # noqa: E402


@dataclass(frozen=True)
class LoadReport:
    jobs: int
    failed: int
    seconds: float
    latencies: list[float]
    peak_rss_mib: float

    @property
    def throughput(self) -> float:
        return self.jobs / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]

    def lines(self) -> list[str]:
        return [
            f"jobs delivered   {self.jobs} ({self.failed} failed or refused)",
            f"wall time        {self.seconds:.2f} s",
            f"throughput       {self.throughput:.2f} jobs/s",
            f"latency p50      {self.percentile(0.5):.2f} s",
            f"latency p95      {self.percentile(0.95):.2f} s",
            f"latency max      {max(self.latencies, default=float('nan')):.2f} s",
            f"latency mean     {statistics.fmean(self.latencies) if self.latencies else float('nan'):.2f} s",
            f"peak RSS         {self.peak_rss_mib:.0f} MiB",
        ]


def _result_count(fake: FakeDiscord, user: FakeUser) -> int:
    return sum(
        1
        for m in fake.messages.values()
        if user.mention in m.content and any(a.filename.startswith("stylized-") for a in m.attachments)
    )


async def _one_user(
    fake: FakeDiscord,
    user: FakeUser,
    requests: int,
    content: bytes,
    style: bytes,
    latencies: list[float],
    timeout: float,
) -> int:
    """Send ``requests`` commands one after another; returns how many did not deliver."""
    failures = 0
    for _ in range(requests):
        before = _result_count(fake, user)
        started = time.perf_counter()
        interaction = await fake.slash_command(
            "stylize",
            {
                "content": fake.make_attachment(content, "photo.png", content_type="image/png"),
                "style": fake.make_attachment(style, "style.png", content_type="image/png"),
            },
            user=user,
        )

        def finished(interaction: FakeInteraction = interaction, before: int = before) -> bool:
            refused = any(
                "already have" in m.text() or "Please wait" in m.text()
                for m in fake.messages_for(interaction)
            )
            return _result_count(fake, user) > before or refused

        await fake.wait_for(finished, timeout=timeout)
        if _result_count(fake, user) > before:
            latencies.append(time.perf_counter() - started)
        else:
            failures += 1
    return failures


async def run_load(users: int, requests: int, size: int, iterations: int, timeout: float) -> LoadReport:
    content = png_bytes(content_image(size, max(16, size * 3 // 4)))
    style = png_bytes(stripes_style(size, size))
    with tempfile.TemporaryDirectory() as scratch:
        async with FakeDiscord() as fake:
            with fake.patched_discord():
                settings = Settings(
                    data_dir=Path(scratch) / "data",
                    cache_dir=Path(scratch) / "cache",
                    config_dir=Path(scratch) / "config",
                    concurrency=1,
                    queue_cap=max(20, users * 2),
                    per_user_limit=1,
                    cooldown_seconds=0.0,
                    progress_interval=1.0,
                    preview_count=0,
                    sizes={"small": size, "medium": size, "large": size},
                    iterations=iterations,
                    scales=1,
                    device="cpu",
                    token=fake.token,
                )
                people = [fake.add_member(f"load{i}") for i in range(users)]
                bot = NSTBot(settings, guild_ready_timeout=0.05)
                async with running_bot(bot, fake):
                    await fake.wait_for(lambda: bot.model_ready.is_set(), timeout=120)
                    latencies: list[float] = []
                    started = time.perf_counter()
                    failures = await asyncio.gather(
                        *(
                            _one_user(fake, person, requests, content, style, latencies, timeout)
                            for person in people
                        )
                    )
                    seconds = time.perf_counter() - started
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return LoadReport(
        jobs=len(latencies),
        failed=sum(failures),
        seconds=seconds,
        latencies=latencies,
        peak_rss_mib=peak_rss_mib,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--requests", type=int, default=3, help="requests per user, sent one after another")
    parser.add_argument("--size", type=int, default=48, help="output size in px (16-4096)")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for one result")
    args = parser.parse_args(argv)
    report = asyncio.run(run_load(args.users, args.requests, args.size, args.iterations, args.timeout))
    print(
        f"bot load: {args.users} users x {args.requests} requests, {args.size} px, "
        f"{args.iterations} iterations"
    )
    for line in report.lines():
        print("  " + line)
    return 0 if report.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
