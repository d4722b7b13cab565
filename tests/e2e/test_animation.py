"""Animated /stylize through the real bot and the fake Discord: a GIF in, an animation out with the
same frames and timing; a clip over the limits refused privately before anything is painted;
Stronger re-runs it as an animation; Cancel stops it mid-clip. (On the workers: test_scale.py.)"""

from __future__ import annotations

from collections.abc import Callable

from bot.core.records import JobStatus
from bot.core.settings import Settings
from tests.e2e.conftest import painting, result_file, results, started
from tests.e2e.harness import frames_and_durations
from tests.fakediscord import FakeAttachment, FakeDiscord
from tests.helpers.images import moving_square_gif


def gif_attachment(fake: FakeDiscord, data: bytes) -> FakeAttachment:
    return fake.make_attachment(data, "clip.gif", content_type="image/gif")


async def test_a_gif_is_painted_as_an_animation_and_stronger_repaints_it(
    fake_discord: FakeDiscord, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(animation_frame_iterations=2)
    async with started(settings, fake_discord) as bot:
        interaction = await fake_discord.slash_command(
            "stylize",
            {"content": gif_attachment(fake_discord, moving_square_gif()), "style": painting(fake_discord)},
        )
        [result] = await fake_discord.wait_for(lambda: results(fake_discord), timeout=90)

        progress = fake_discord.original(interaction)
        assert progress is not None
        shown = [r.content for r in progress.revisions if r.content]
        assert shown[0].startswith("Animation: 3 frames to paint, about "), shown
        assert any("frame 3 of 3" in text for text in shown), shown
        assert any(a.filename.startswith("preview-") for r in progress.revisions for a in r.attachments)
        posted = result_file(result)
        assert posted.filename.endswith(".webp")  # the default animation_format
        assert result.embeds[0]["image"]["url"] == f"attachment://{posted.filename}", "it plays in the embed"
        frames, durations = frames_and_durations(posted.data)
        assert frames == 3 and durations == [120, 120, 120], (frames, durations)
        assert {b["label"] for b in result.buttons()} == {"Stronger", "Weaker", "Re-roll", "Delete"}
        record = bot.store.by_result_message(result.id)
        assert record is not None and record.params["kind"] == "animate"
        assert record.content_path is not None and record.content_path.endswith(".gif")

        await fake_discord.click(result, "Stronger")
        await fake_discord.wait_for(lambda: len(results(fake_discord)) == 2, timeout=90)
        again = results(fake_discord)[-1]
        assert frames_and_durations(result_file(again).data)[0] == 3, "a re-run paints the animation again"


async def test_a_clip_over_the_length_limit_is_refused_privately_before_painting(
    fake_discord: FakeDiscord, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(animation_max_seconds=1.0)
    async with started(settings, fake_discord) as bot:
        too_long = gif_attachment(fake_discord, moving_square_gif(frames=4, duration_ms=500))
        await fake_discord.slash_command(
            "stylize", {"content": too_long, "style": painting(fake_discord)}, user=fake_discord.bob
        )
        [told] = await fake_discord.wait_for(
            lambda: fake_discord.find_messages("can't use", user=fake_discord.bob)
        )
        assert told.visible_to == fake_discord.bob.id
        assert "the limit of 1 seconds" in told.text(), told.text()
        assert results(fake_discord) == []
        assert bot.store.with_status(*JobStatus) == [], "nothing was stored or painted"


async def test_cancel_stops_an_animation_mid_clip(
    fake_discord: FakeDiscord, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(animation_frame_iterations=5000, progress_interval=0.05)
    async with started(settings, fake_discord) as bot:
        interaction = await fake_discord.slash_command(
            "stylize",
            {"content": gif_attachment(fake_discord, moving_square_gif()), "style": painting(fake_discord)},
        )
        progress = await fake_discord.wait_for(
            lambda: (m := fake_discord.original(interaction)) and "frame 2 of 3" in m.content and m,
            timeout=60,
        )
        await fake_discord.click(progress, "Cancel")
        await fake_discord.wait_for(lambda: "Cancelled" in progress.content, timeout=30)
        await fake_discord.wait_for(lambda: bot.queue.running == 0, timeout=30)
        assert results(fake_discord) == []
        assert [r.status for r in bot.store.with_status(*JobStatus)] == [JobStatus.CANCELLED]
