"""The preset path: the menu from the catalogue, the handler re-check, a local preset painted."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from discord import app_commands

from bot.chat.app import NSTBot
from bot.core.records import JobStatus
from nst_engine import presets
from tests.bot.conftest import (
    cog_of,
    controls_of,
    decode_file,
    make_attachment,
    make_interaction,
    presets_cog_of,
    sent_files,
    texts,
    tiny_settings,
    wait_for,
)
from tests.fakediscord import limits
from tests.helpers.images import content_image, png_bytes, stripes_style
from tests.helpers.preset_http import PresetHTTPServer, Route


def local_catalog(tmp_path: Path, count: int, remote: int = 0):
    stripes_style().save(tmp_path / "stripes.png")
    entries = [
        {
            "name": f"stripes-{i}",
            "title": f"Stripes {i}",
            "artist": "Tester",
            "year": "2024",
            "licence": "CC0",
            "source": "file:stripes.png",
        }
        for i in range(count)
    ]
    entries += [
        {
            "name": f"remote-{i}",
            "title": f"Remote {i}",
            "artist": "Painter",
            "year": "1889",
            "licence": "public domain",
            "source": f"https://commons.wikimedia.org/x{i}.jpg",
        }
        for i in range(remote)
    ]
    return presets.PresetCatalog.from_mapping({"preset": entries}, base_dir=tmp_path)


async def build(tmp_path: Path, count: int, remote: int = 0) -> NSTBot:
    catalog = local_catalog(tmp_path, count, remote)
    bot = NSTBot(
        tiny_settings(tmp_path), catalog=catalog, resolver=presets.PresetResolver(catalog, tmp_path / "cache")
    )
    await bot.load_commands()
    return bot


async def test_small_catalogue_is_a_choice_menu_and_a_preset_paints(tmp_path: Path) -> None:
    bot = await build(tmp_path, 3)
    try:
        parameter = next(p for p in cog_of(bot).stylize_command.parameters if p.name == "preset")
        assert [c.value for c in parameter.choices] == ["stripes-0", "stripes-1", "stripes-2"]
        interaction = make_interaction()
        await cog_of(bot).handle_stylize(
            interaction, make_attachment(png_bytes(content_image())), preset="stripes-1"
        )
        files = sent_files(interaction.followup.send)
        assert len(files) == 1 and decode_file(files[0]).size[0] == 48
        embed = interaction.followup.send.call_args.kwargs["embeds"][0]
        assert "stripes-1" in embed.description
        unknown = make_interaction()
        await cog_of(bot).handle_stylize(
            unknown, make_attachment(png_bytes(content_image())), preset="strpes-1"
        )
        assert "no preset called" in unknown.response.send_message.call_args.args[0]
    finally:
        await bot.queue.shutdown()
        bot.store.close()


async def test_large_catalogue_uses_autocomplete(tmp_path: Path) -> None:
    bot = await build(tmp_path, 30)
    try:
        parameter = next(p for p in cog_of(bot).stylize_command.parameters if p.name == "preset")
        assert not parameter.choices and parameter.autocomplete
        found = cog_of(bot).preset_suggestions("stripes-2")
        assert all(isinstance(c, app_commands.Choice) for c in found)
        assert {c.value for c in found} >= {"stripes-2", "stripes-20", "stripes-29"} and len(found) <= 25
    finally:
        await bot.queue.shutdown()
        bot.store.close()


async def test_presets_lists_every_painting_with_thumbnails_of_those_on_disk(tmp_path: Path) -> None:
    bot = await build(tmp_path, 11, remote=2)  # 13 presets: two messages of at most ten embeds
    try:
        interaction = make_interaction()
        await presets_cog_of(bot).handle_presets(interaction)
        assert interaction.response.defer.call_args.kwargs["ephemeral"] is True
        pages = [call.kwargs for call in interaction.followup.send.call_args_list]
        assert [len(page["embeds"]) for page in pages] == [10, 3]
        # the first page answers the private "thinking…" original (its files become attachments);
        # the next ones are ephemeral followups
        assert "ephemeral" not in pages[0] and all(page["ephemeral"] for page in pages[1:])
        pages[0]["files"] = pages[0].pop("attachments")
        embeds = [embed for page in pages for embed in page["embeds"]]
        assert [e.title for e in embeds] == [f"Stripes {i}" for i in range(11)] + ["Remote 0", "Remote 1"]
        files = {f.filename: f for page in pages for f in page["files"]}
        for embed in embeds[:11]:  # local files are on disk: each gets its thumbnail
            name = embed.thumbnail.url.removeprefix("attachment://")
            assert max(decode_file(files[name]).size) <= 160
        assert all(e.thumbnail.url is None for e in embeds[11:]), "nothing is downloaded just to list it"
        assert len(files) == 11
    finally:
        await bot.queue.shutdown()
        bot.store.close()


async def test_presets_thumbnails_are_made_once_per_file_version(tmp_path: Path, monkeypatch) -> None:
    from bot.chat.cogs import presets as cog_module

    decoded: list[Path] = []
    real_decode = cog_module.decode_image
    monkeypatch.setattr(cog_module, "decode_image", lambda path: decoded.append(path) or real_decode(path))
    bot = await build(tmp_path, 2)  # both presets use the same local file
    try:
        for _ in range(2):
            await presets_cog_of(bot).handle_presets(make_interaction())
        assert len(decoded) == 1, "the same file, unchanged, is decoded once"
        stripes_style().rotate(90).save(tmp_path / "stripes.png")  # the operator replaces the file
        os.utime(tmp_path / "stripes.png", ns=(0, 10**18))
        interaction = make_interaction()
        await presets_cog_of(bot).handle_presets(interaction)
        assert len(decoded) == 2
        [page] = [call.kwargs for call in interaction.followup.send.call_args_list]
        assert len(page["attachments"]) == 2
    finally:
        await bot.queue.shutdown()
        bot.store.close()


async def test_presets_lists_a_painting_whose_thumbnail_fits_no_byte_budget(
    tmp_path: Path, monkeypatch
) -> None:
    """encode_image raises ValueError when no encoding fits; /presets caught only the engine's
    NSTError there, so the whole command failed. Now the painting is listed without a picture."""
    from bot.chat.cogs import presets as cog_module

    monkeypatch.setattr(cog_module, "PRESET_THUMBNAIL_BYTES", 1)
    bot = await build(tmp_path, 1)
    try:
        interaction = make_interaction()
        await presets_cog_of(bot).handle_presets(interaction)
        [page] = [call.kwargs for call in interaction.followup.send.call_args_list]
        [embed] = page["embeds"]
        assert embed.title == "Stripes 0" and embed.thumbnail.url is None
        assert "attachments" not in page, "no thumbnail file is sent"
    finally:
        await bot.queue.shutdown()
        bot.store.close()


async def test_presets_pages_keep_within_discords_embed_limits(tmp_path: Path) -> None:
    stripes_style().save(tmp_path / "stripes.png")
    entries = [
        {
            "name": f"long-{i}",
            "title": "T" * 300,
            "artist": "A" * 5000,
            "year": "2024",
            "licence": "L" * 3000,
            "source": "file:stripes.png",
        }
        for i in range(12)
    ]
    catalog = presets.PresetCatalog.from_mapping({"preset": entries}, base_dir=tmp_path)
    bot = NSTBot(
        tiny_settings(tmp_path), catalog=catalog, resolver=presets.PresetResolver(catalog, tmp_path / "cache")
    )
    await bot.load_commands()
    try:
        interaction = make_interaction()
        await presets_cog_of(bot).handle_presets(interaction)
        pages = [call.kwargs for call in interaction.followup.send.call_args_list]
        assert sum(len(page["embeds"]) for page in pages) == 12
        for page in pages:
            body = {"embeds": [embed.to_dict() for embed in page["embeds"]]}
            assert limits.check_message(body) == [], "Discord would refuse this page"
    finally:
        await bot.queue.shutdown()
        bot.store.close()


async def test_a_failed_preset_never_shows_a_server_path(tmp_path: Path, caplog) -> None:
    """The engine's message says where to put the file ("Put the image at /root/.cache/..."): it is
    for the operator's log. The user, in a public message, only learns that the preset failed."""
    with PresetHTTPServer() as server:  # answers 404 to everything
        sources = {"gone": "file:missing.png", "remote": server.url("/starry.jpg")}
        entries = [
            {"name": n, "title": n, "artist": "P", "year": "1889", "licence": "PD", "source": source}
            for n, source in sources.items()
        ]
        catalog = presets.PresetCatalog.from_mapping({"preset": entries}, base_dir=tmp_path)
        resolver = presets.PresetResolver(
            catalog, tmp_path / "cache", allowed_hosts=("127.0.0.1",), allow_loopback_http=True
        )
        bot = NSTBot(tiny_settings(tmp_path), catalog=catalog, resolver=resolver)
        await bot.load_commands()
        try:
            for name in ("gone", "remote"):
                interaction = make_interaction()
                with caplog.at_level("ERROR"):
                    await cog_of(bot).handle_stylize(
                        interaction, make_attachment(png_bytes(content_image())), preset=name
                    )
                shown = texts(interaction.followup.send, interaction.response.send_message)
                shown += [
                    call.kwargs.get("content") or ""
                    for message in interaction.sent_messages
                    for call in message.edit.call_args_list
                ]
                failure = [text for text in shown if "preset" in text.lower()]
                assert failure, shown
                assert all(str(tmp_path) not in text and "/" not in text for text in failure), failure
                assert name in failure[-1]
                assert str(tmp_path) in caplog.text, "the operator still gets the path"
                caplog.clear()
        finally:
            await bot.queue.shutdown()
            bot.store.close()


async def test_cancel_and_shutdown_stop_a_trickling_preset_download(tmp_path: Path) -> None:
    """A server sending a byte every 50 ms held the only worker: Cancel waited for the download."""
    with PresetHTTPServer() as server:
        server.routes["/slow.png"] = Route(body=b"x" * 100_000, trickle=0.05)
        entry = {"title": "Slow", "artist": "P", "year": "1889", "licence": "PD"}
        catalog = presets.PresetCatalog.from_mapping(
            {"preset": [{"name": "slow", "source": server.url("/slow.png"), **entry}]}, base_dir=tmp_path
        )
        resolver = presets.PresetResolver(
            catalog, tmp_path / "cache", allowed_hosts=("127.0.0.1",), allow_loopback_http=True
        )
        bot = NSTBot(tiny_settings(tmp_path), catalog=catalog, resolver=resolver)
        await bot.load_commands()
        try:
            for round_ in (1, 2):
                interaction = make_interaction()
                task = asyncio.create_task(
                    cog_of(bot).handle_stylize(
                        interaction, make_attachment(png_bytes(content_image())), preset="slow"
                    )
                )
                await wait_for(
                    lambda r=round_, i=interaction: (
                        server.requests["/slow.png"] == r and bool(i.sent_messages)
                    )
                )
                await asyncio.sleep(0.3)  # well into the body
                started = time.monotonic()
                if round_ == 1:
                    [record] = bot.store.with_status(JobStatus.RUNNING)
                    await controls_of(bot).cancel_pressed(make_interaction(), record.job_id)
                    await asyncio.wait_for(task, 5)
                    final = interaction.sent_messages[0].edit.call_args_list[-1].kwargs["content"]
                    assert final == "Cancelled."
                    assert bot.store.get(record.job_id).status is JobStatus.CANCELLED
                else:
                    await bot.queue.shutdown(timeout=30)  # what NSTBot.close does first
                    await asyncio.wait_for(task, 5)
                assert time.monotonic() - started < 3.0
                assert not resolver.is_cached("slow")
        finally:
            await bot.queue.shutdown()
            bot.store.close()
