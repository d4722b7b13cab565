"""Upscale through the real bot and the fake Discord: a result painted again at twice its size,
continuing from its picture, replying to it; the server's limit; Cancel. On ``nst-worker``:
``tests/e2e/test_scale.py`` (its workers are already running there).

Pictures are tiny (40 px results, 80 px upscales) and runs a few iterations, except the upscale
that must be caught running to be cancelled.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.core import texts
from bot.core.records import JobStatus
from bot.core.settings import Settings
from tests.e2e.conftest import painting, photo, result_file, results, started
from tests.e2e.harness import decode
from tests.fakediscord import FakeDiscord, FakeMessage

#: The operator's largest upscale in these tests: twice the default 40 px result.
LARGEST = 80


def field(message: FakeMessage, name: str) -> str:
    """The value of the result embed's field ``name``."""
    [embed] = message.embeds
    return next(str(f["value"]) for f in embed.get("fields", []) if f.get("name") == name)


async def first_result(fake: FakeDiscord) -> FakeMessage:
    await fake.slash_command("stylize", {"content": photo(fake), "style": painting(fake)}, user=fake.alice)
    [result] = await fake.wait_for(lambda: results(fake), timeout=60)
    return result


async def upscaled(fake: FakeDiscord, first: FakeMessage) -> FakeMessage:
    """Alice presses Upscale on ``first``; the picture that replies to it."""
    before = len(results(fake))
    await fake.click(first, "Upscale", user=fake.alice)
    await fake.wait_for(lambda: len(results(fake)) > before, timeout=120)
    return results(fake)[-1]


async def test_upscale_paints_twice_the_size_and_the_server_limit_refuses_privately(
    fake_discord: FakeDiscord, make_settings: Callable[..., Settings]
) -> None:
    fake = fake_discord
    async with started(make_settings(max_upscale_side=LARGEST), fake) as bot:
        first = await first_result(fake)
        assert decode(result_file(first)).size == (40, 33)
        assert "Upscale" in {b["label"] for b in first.buttons()}
        await fake.wait_for(lambda: not bot.queue.jobs(), timeout=30)

        second = await upscaled(fake, first)
        image = decode(result_file(second))
        assert image.size == (80, 67), "twice the result's size"
        assert second.reply_to == first.id, "the upscale replies to the result it enlarges"
        assert field(second, "Size") == "80\u00d767" and " s on " in field(second, "Time")
        assert field(second, "File") == "PNG (lossless)" and result_file(second).filename.endswith(".png")
        assert second.embeds[0]["title"] == texts.RESULT_TITLE_UPSCALED
        labels = {b["label"] for b in second.buttons()}
        assert labels == {"Stronger", "Weaker", "Re-roll", "Delete"}, "at the largest size: no Upscale"
        [upscale] = await fake_discord.wait_for(  # its record is written just after the post
            lambda: [r for r in bot.store.with_status(JobStatus.DONE) if r.start_path], timeout=10
        )
        assert upscale.start_path == bot.store.by_result_message(first.id).result_path  # type: ignore[union-attr]
        assert continued(upscale.stats), "painted on from the result, not from scratch"

        # The server lowers its largest upscale to the result's own size: a press is refused
        # privately, with the limit; above the operator's limit the setting itself is refused.
        too_high = await fake.slash_command("nst-admin max-upscale", {"side": LARGEST + 1}, user=fake.admin)
        answer = await fake.wait_for(lambda: fake.original(too_high), timeout=30)
        assert answer.ephemeral and answer.content == texts.upscale_over_operator(LARGEST)
        lowered = await fake.slash_command("nst-admin max-upscale", {"side": 40}, user=fake.admin)
        answer = await fake.wait_for(lambda: fake.original(lowered), timeout=30)
        assert "Largest upscale: 40 px" in answer.content, answer.content
        press = await fake.click(first, "Upscale", user=fake.alice)
        refusal = await fake.wait_for(lambda: fake.original(press), timeout=30)
        assert refusal.ephemeral and refusal.content == texts.upscale_at_limit(40)
        assert len(results(fake)) == 2 and not bot.queue.jobs()
        raised = await fake.slash_command("nst-admin max-upscale", {"side": LARGEST}, user=fake.admin)
        await fake.wait_for(lambda: fake.original(raised), timeout=30)

    # An upscale that paints until cancelled shows its progress, and Cancel stops it.
    async with started(make_settings(max_upscale_side=LARGEST, iterations=100_000), fake) as bot:
        await cancel_an_upscale(fake, first)
        assert not bot.queue.jobs() and len(results(fake)) == 2


def continued(stats: object) -> bool:
    """Whether a run's stats are those of a run continued from an earlier result: it paints fewer
    iterations than the settings' 4 from scratch (``nst_engine.engine.continued_iterations``)."""
    return isinstance(stats, dict) and 0 < stats["iterations"] < 4


async def cancel_an_upscale(fake: FakeDiscord, result: FakeMessage) -> None:
    press = await fake.click(result, "Upscale", user=fake.alice)
    progress = await fake.wait_for(
        lambda: (m := fake.original(press)) and "%)" in m.content and m, timeout=60
    )
    await fake.click(progress, "Cancel", user=fake.alice)
    await fake.wait_for(lambda: "Cancelled" in progress.content, timeout=30)
