"""Hostile and unusual uploads through the real bot: a clear message or a correct painting, never
a crash or a queue slot left taken."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.chat.app import NSTBot
from bot.core.settings import Settings
from tests.e2e import inputs
from tests.e2e.conftest import painting, photo, result_file, results
from tests.e2e.harness import decode, files_under
from tests.fakediscord import FakeDiscord, FakeUser
from tests.helpers.images import content_image, png_bytes

REFUSED: dict[str, Callable[[], inputs.Upload]] = {
    "text-named-png": inputs.text_named_png,
    "zero-bytes": inputs.zero_bytes,
    "truncated-jpeg": inputs.truncated_jpeg,
    "decompression-bomb": inputs.decompression_bomb_png,
    "bomb-header-only": inputs.bomb_header_only_png,
    "1x1": inputs.one_pixel,
    "2000x20": inputs.banner_2000x20,
    "svg": inputs.svg,
}

ACCEPTED: dict[str, Callable[[], inputs.Upload]] = {
    "animated-gif": inputs.animated_gif,
    "cmyk-jpeg": inputs.cmyk_jpeg,
    "16-bit-png": inputs.png_16_bit,
    "alpha-png": inputs.alpha_png,
    "greyscale": inputs.greyscale_jpeg,
}


async def still_serves(fake: FakeDiscord, bot: NSTBot, user: FakeUser) -> None:
    """The user's slot is free and the queue works: a good request from them is delivered."""
    before = len(results(fake))
    await fake.slash_command("stylize", {"content": photo(fake), "style": painting(fake)}, user=user)
    await fake.wait_for(lambda: len(results(fake)) == before + 1, timeout=60)
    assert all(bot.queue.position(job.job_id) == 0 for job in bot.queue.jobs())  # none waits


@pytest.mark.parametrize("role", ["content", "style"])
@pytest.mark.parametrize("build", REFUSED.values(), ids=REFUSED.keys())
async def test_refused_with_a_clear_message(
    fake_discord: FakeDiscord, stylebot: NSTBot, build: Callable[[], inputs.Upload], role: str
) -> None:
    upload = build()
    bad = fake_discord.make_attachment(upload.data, upload.filename, content_type=upload.content_type)
    options = (
        {"content": bad, "style": painting(fake_discord)}
        if role == "content"
        else {"content": photo(fake_discord), "style": bad}
    )
    interaction = await fake_discord.slash_command("stylize", options, user=fake_discord.bob)
    [told] = await fake_discord.wait_for(
        lambda: fake_discord.find_messages("can't use", user=fake_discord.bob)
    )
    assert told.visible_to == fake_discord.bob.id
    assert "Traceback" not in told.text() and "Error" not in told.text()
    assert interaction.response_type == 5
    assert results(fake_discord) == []
    await still_serves(fake_discord, stylebot, fake_discord.bob)


@pytest.mark.parametrize("build", ACCEPTED.values(), ids=ACCEPTED.keys())
async def test_unusual_but_valid_images_are_painted(
    fake_discord: FakeDiscord, stylebot: NSTBot, build: Callable[[], inputs.Upload]
) -> None:
    upload = build()
    attachment = fake_discord.make_attachment(upload.data, upload.filename, content_type=upload.content_type)
    await fake_discord.slash_command("stylize", {"content": attachment, "style": painting(fake_discord)})
    [result] = await fake_discord.wait_for(lambda: results(fake_discord), timeout=60)
    assert decode(result_file(result)).mode == "RGB"


async def test_exif_rotated_photo_comes_out_upright(fake_discord: FakeDiscord, stylebot: NSTBot) -> None:
    upload = inputs.exif_rotated_jpeg()
    attachment = fake_discord.make_attachment(upload.data, upload.filename, content_type=upload.content_type)
    await fake_discord.slash_command(
        "stylize", {"content": attachment, "style": painting(fake_discord), "preserve_colors": True}
    )
    [result] = await fake_discord.wait_for(lambda: results(fake_discord), timeout=60)
    image = decode(result_file(result))
    assert image.height > image.width, "orientation 6 must come out portrait"
    top = image.crop((0, 0, image.width, image.height // 3)).resize((1, 1)).getpixel((0, 0))
    bottom = image.crop((0, 2 * image.height // 3, image.width, image.height)).resize((1, 1)).getpixel((0, 0))
    assert top[0] > top[2] and bottom[2] > bottom[0], f"red must be on top, blue below: {top} {bottom}"


async def test_attachment_over_the_cap_is_refused_before_download(
    fake_discord: FakeDiscord, stylebot: NSTBot, settings: Settings
) -> None:
    big = fake_discord.make_attachment(
        png_bytes(content_image()),
        "huge.png",
        content_type="image/png",
        size=settings.max_attachment_bytes + 1,
    )
    await fake_discord.slash_command("stylize", {"content": big, "style": painting(fake_discord)})
    await fake_discord.wait_for(lambda: fake_discord.find_messages("larger than"))
    assert big.downloads == 0, "an oversized attachment must not be downloaded"
    await still_serves(fake_discord, stylebot, fake_discord.alice)


async def test_filename_with_path_characters_never_reaches_the_filesystem(
    fake_discord: FakeDiscord, stylebot: NSTBot, tmp_path: Path
) -> None:
    upload = inputs.path_characters_name(png_bytes(content_image()))
    attachment = fake_discord.make_attachment(upload.data, upload.filename, content_type=upload.content_type)
    await fake_discord.slash_command("stylize", {"content": attachment, "style": painting(fake_discord)})
    await fake_discord.wait_for(lambda: results(fake_discord), timeout=60)
    written = files_under(tmp_path)
    assert not [p for p in written if "passwd" in str(p) or "evil" in str(p) or ".." in p.name]
    assert not (tmp_path.parent / "etc").exists()


async def test_refusal_is_shown_only_to_the_requester(fake_discord: FakeDiscord, stylebot: NSTBot) -> None:
    upload = inputs.text_named_png()
    bad = fake_discord.make_attachment(upload.data, upload.filename, content_type=upload.content_type)
    await fake_discord.slash_command(
        "stylize", {"content": bad, "style": painting(fake_discord)}, user=fake_discord.bob
    )
    [told] = await fake_discord.wait_for(lambda: fake_discord.find_messages("can't use"))
    assert told not in fake_discord.visible_to(fake_discord.alice)
