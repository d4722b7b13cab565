"""30 requests from 10 users at once through the real bot: limits held, nothing lost or doubled."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import threading
from collections import Counter
from pathlib import Path

import pytest

from bot.core.settings import Settings
from tests.e2e.conftest import painting, photo, results, started
from tests.e2e.harness import files_under
from tests.fakediscord import FakeDiscord

USERS = 10
REQUESTS_PER_USER = 3
QUEUED = re.compile(r"Queued: (\d+) jobs? ahead")
STATM = Path("/proc/self/statm")
LINUX_MEMORY = STATM.exists()  # resident memory is measured where /proc shows it (CI runs Linux)


class ResidentMemory:
    """This process's resident memory (Linux), sampled every 10 ms in a thread from ``start`` to ``stop``.

    The growth is measured from its own start. The process's lifetime peak (``ru_maxrss``) cannot
    show it: earlier tests in the same process may have set that peak higher.
    """

    def __init__(self) -> None:
        self.baseline = self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)

    @staticmethod
    def current() -> int:
        return int(STATM.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.current())

    def start(self) -> None:
        self.baseline = self.peak = self.current()
        self._thread.start()

    def stop(self) -> float:
        """Stop sampling; returns the growth of the peak over the baseline, in MiB."""
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.current())
        return (self.peak - self.baseline) / (1024 * 1024)


@pytest.mark.skipif(not LINUX_MEMORY, reason="reads /proc/self/statm (Linux)")
def test_resident_memory_sees_an_allocation_made_and_freed_between_start_and_stop() -> None:
    memory = ResidentMemory()
    memory.start()
    block = b"\x01" * (200 * 1024 * 1024)  # written, so every page is resident
    threading.Event().wait(0.1)
    del block
    assert memory.stop() > 150


async def test_thirty_requests_from_ten_users(
    fake_discord: FakeDiscord, make_settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # any temp file the bot makes lands here
    settings: Settings = make_settings(iterations=2, progress_interval=0.1)
    users = [fake_discord.add_member(f"user{i}") for i in range(USERS)]
    in_flight_peaks: Counter[int] = Counter()
    memory = ResidentMemory() if LINUX_MEMORY else None
    if memory is not None:
        memory.start()

    async with started(settings, fake_discord) as bot:

        def sample() -> None:
            for user_id, count in Counter(job.user_id for job in bot.queue.jobs()).items():
                in_flight_peaks[user_id] = max(in_flight_peaks[user_id], count)

        interactions = await asyncio.gather(
            *(
                fake_discord.slash_command(
                    "stylize", {"content": photo(fake_discord), "style": painting(fake_discord)}, user=user
                )
                for _ in range(REQUESTS_PER_USER)
                for user in users
            )
        )

        def settled() -> bool:
            sample()
            refused = [m for m in fake_discord.messages.values() if "already have" in m.text()]
            if len(results(fake_discord)) + len(refused) < len(interactions):
                return False
            return not bot.queue.jobs() and not bot.runner.active

        await fake_discord.wait_for(settled, timeout=150)
        await asyncio.sleep(0.3)
        done = results(fake_discord)
    growth_mib = memory.stop() if memory is not None else 0.0

    assert all(i.response_type == 5 or fake_discord.original(i) for i in interactions)
    # Every accepted job is delivered exactly once and every other request is told why. How many a
    # user gets accepted depends on timing (a 2-iteration job can finish before that user's next
    # request is handled), but never two of one user's jobs at the same time (limit 1 in flight).
    owners = Counter(int(re.search(r"<@(\d+)>", m.content).group(1)) for m in done)
    assert set(owners) == {u.id for u in users}
    assert max(in_flight_peaks.values()) <= settings.per_user_limit
    job_ids = [a.filename for m in done for a in m.attachments if a.filename.startswith("stylized-")]
    assert len(job_ids) == len(set(job_ids)) == sum(owners.values())
    refused = [m for m in fake_discord.messages.values() if "already have" in m.text()]
    assert len(refused) + len(done) == USERS * REQUESTS_PER_USER
    assert sum(owners.values()) < USERS * REQUESTS_PER_USER, "the per-user limit never refused anyone"
    told = Counter(m.visible_to for m in refused)
    assert all(told[u.id] == REQUESTS_PER_USER - owners[u.id] for u in users)
    # queue positions only ever move forward, and never exceed the jobs that can be ahead
    for interaction in interactions:
        progress = fake_discord.original(interaction)
        if progress is None:
            continue
        positions = [int(match.group(1)) for r in progress.revisions if (match := QUEUED.search(r.content))]
        assert positions == sorted(positions, reverse=True), positions
        assert all(0 < p < USERS for p in positions)
    assert files_under(scratch) == set(), "temporary files were left behind"
    assert growth_mib < 1024, f"resident memory grew by {growth_mib:.0f} MiB during the load"


async def test_discord_rate_limits_slow_but_do_not_lose_jobs(
    fake_discord: FakeDiscord, make_settings
) -> None:
    fake_discord.enforce_rate_limits(requests=3, seconds=1.0)
    users = [fake_discord.add_member(f"limited{i}") for i in range(4)]
    async with started(make_settings(iterations=20, progress_interval=0.05), fake_discord) as bot:
        await asyncio.gather(
            *(
                fake_discord.slash_command(
                    "stylize", {"content": photo(fake_discord), "style": painting(fake_discord)}, user=user
                )
                for user in users
            )
        )
        await fake_discord.wait_for(lambda: len(results(fake_discord)) == len(users), timeout=120)
        await fake_discord.wait_for(lambda: not bot.queue.jobs())
    owners = Counter(int(re.search(r"<@(\d+)>", m.content).group(1)) for m in results(fake_discord))
    assert set(owners) == {u.id for u in users} and set(owners.values()) == {1}
    assert fake_discord.buckets_exhausted > 0, "the limits must actually have bitten"
