"""Upscale in the painting core: the request and its engine parameters, the server's and the
operator's limits, the settings, and the kept result picture's storage and expiry."""

from __future__ import annotations

import io
import os
import sqlite3
from pathlib import Path

import pytest

from bot.core import texts
from bot.core.errors import RerunRefused
from bot.core.guild_settings import GuildSettings, GuildSettingsStore
from bot.core.inputs import InputImage
from bot.core.records import JobRecord, JobStatus, new_job_id
from bot.core.requests import JobKind, JobRequest, style_params, upscale_side
from bot.core.settings import Settings, SettingsError, load_settings
from bot.core.store import JobStore
from tests.helpers.images import content_image, png_bytes


def test_an_upscale_doubles_up_to_the_limit_and_maps_to_the_engines_size() -> None:
    assert upscale_side(512, 1024) == 1024
    assert upscale_side(768, 1024) == 1024, "capped at the limit"
    assert upscale_side(1024, 1024) is None and upscale_side(40, 0) is None
    settings = Settings(max_upscale_side=2048, memory_budget=3.5, time_budget=90.0)
    request = JobRequest(strength="strong", kind=JobKind.UPSCALE, side=1024, reply_to=77)
    assert JobRequest.from_dict(request.to_dict()) == request
    assert JobRequest.from_dict({"size": "small"}).side is None, "an older record"
    params = style_params(settings, request)
    assert (params.size, params.memory_budget, params.time_budget) == (1024, 3.5, 90.0)
    assert style_params(Settings(), JobRequest()).memory_budget is None, "unset: the engine's own share"
    assert style_params(Settings(), JobRequest()).time_budget is None, "unset: no limit"
    assert settings.largest_side == 2048, "inputs are kept large enough for an upscale"


def test_the_upscale_settings_are_checked_and_read_from_the_environment(tmp_path: Path) -> None:
    for bad in ({"max_upscale_side": 8}, {"max_upscale_side": 5000}, {"time_budget": 0.5}):
        with pytest.raises(SettingsError, match=next(iter(bad))):
            Settings(**bad)  # type: ignore[arg-type]
    environ = {"NST_BOT_MAX_UPSCALE_SIDE": "2048", "NST_BOT_MEMORY_BUDGET": "6", "NST_BOT_TIME_BUDGET": "60"}
    settings = load_settings(environ, config_dir=tmp_path)
    assert (settings.max_upscale_side, settings.memory_budget, settings.time_budget) == (2048, 6.0, 60.0)


def test_a_servers_largest_upscale_is_kept_and_never_above_the_operators(tmp_path: Path) -> None:
    path = tmp_path / "guilds.sqlite3"
    old = sqlite3.connect(path)  # a database from before max_upscale
    old.execute(
        "CREATE TABLE guild_settings (guild_id INTEGER PRIMARY KEY, channels TEXT NOT NULL DEFAULT '[]',"
        " max_size TEXT, reruns TEXT NOT NULL DEFAULT 'requester', spoilers INTEGER NOT NULL DEFAULT 0,"
        " updated_at REAL NOT NULL, updated_by INTEGER)"
    )
    old.execute("INSERT INTO guild_settings (guild_id, updated_at) VALUES (5, 0)")
    old.commit()
    old.close()
    store = GuildSettingsStore(path)
    assert store.get(5).upscale_limit(1024) == 1024
    store.save(5, by=1, changed=GuildSettings(max_upscale=600))
    store.close()
    reopened = GuildSettingsStore(path)
    assert reopened.get(5).upscale_limit(1024) == 600
    assert reopened.get(5).upscale_limit(512) == 512, "the operator's limit bounds every server"
    reopened.close()


def webp(side: int) -> bytes:
    buffer = io.BytesIO()
    content_image(side, side).save(buffer, format="WEBP", lossless=True)
    return buffer.getvalue()


def painted(
    store: JobStore, *, start_path: str | None = None, width: int = 40, kind: JobKind = JobKind.PAINT
) -> JobRecord:
    """A delivered job, its content stored and its result kept."""
    record = JobRecord(
        job_id=new_job_id(),
        user_id=42,
        guild_id=1,
        channel_id=2,
        params={"preset": "stripes", "kind": kind.value},
        start_path=start_path,
    )
    photo = InputImage(content_image(), data=png_bytes(content_image()), extension="png")
    store.add_with_inputs(record, photo, None)
    record.result_path = store.keep_result(record.job_id, webp(width))
    store.update(
        record.job_id,
        status=JobStatus.DONE,
        result_path=record.result_path,
        stats={"width": width, "height": width * 3 // 4},
        result_message_id=900,
    )
    return record


def test_a_kept_result_is_shared_by_its_upscale_and_goes_with_delete(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    store = JobStore(settings.database_path, settings.inputs_dir, results_dir=settings.results_dir)
    original = painted(store)
    assert Path(original.result_path or "").parent == settings.results_dir
    assert store.stored_bytes() >= len(webp(40)), "kept results count in the inputs' byte cap"
    upscale = painted(store, start_path=original.result_path, width=80)
    upscaled_picture = Path(upscale.result_path or "")
    store.discard_inputs(upscale)  # the upscale expired: the result it started from stays
    assert Path(original.result_path or "").is_file() and not upscaled_picture.exists()

    again = painted(store, start_path=original.result_path, width=80)
    kept = Path(original.result_path or "")
    store.discard_inputs(original, everywhere=True)  # Delete on the original result
    assert not kept.exists()
    assert store.get(again.job_id).expired  # type: ignore[union-attr]
    store.close()


async def test_plan_upscale_follows_the_servers_limit(make_bot) -> None:
    bot = await make_bot(max_upscale_side=80)
    record = painted(bot.store)
    record = bot.store.get(record.job_id)
    request = bot.runner.plan_upscale(record, reply_to=123)
    assert (request.kind, request.side, request.reply_to) == (JobKind.UPSCALE, 80, 123)
    bot.guild_settings.save(1, by=7, changed=GuildSettings(max_upscale=40))
    with pytest.raises(RerunRefused, match="40 px") as refused:
        bot.runner.plan_upscale(record)
    assert str(refused.value) == texts.upscale_at_limit(40)
    bot.guild_settings.save(1, by=7, changed=GuildSettings())
    os.unlink(record.result_path or "")
    with pytest.raises(RerunRefused, match="expired"):
        bot.runner.plan_upscale(record)


async def test_an_animation_is_not_upscaled(make_bot) -> None:
    """The engine continues stills only: an animation's result gets no Upscale, and a press that
    reaches the runner anyway (an old message, a crafted id) is refused with a sentence."""
    bot = await make_bot(max_upscale_side=80)
    record = painted(bot.store, kind=JobKind.ANIMATE)
    with pytest.raises(RerunRefused) as refused:
        bot.runner.plan_upscale(bot.store.get(record.job_id))  # type: ignore[arg-type]
    assert str(refused.value) == texts.UPSCALE_NOT_FOR_ANIMATIONS


def test_the_time_limit_is_a_default_paintings_scaled_by_pixels() -> None:
    settings = Settings(max_upscale_side=1024)
    medium = style_params(settings, JobRequest())
    assert medium.time_limit == 90.0 and medium.time_budget is None, "a cap by default, not a budget"
    upscale = style_params(settings, JobRequest(kind=JobKind.UPSCALE, side=2 * medium.size))
    assert upscale.time_limit == pytest.approx(4 * 90.0)
    assert style_params(settings, JobRequest(kind=JobKind.ANIMATE)).time_limit is None
    assert style_params(Settings(time_limit=0), JobRequest()).time_limit is None
