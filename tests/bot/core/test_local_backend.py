"""On a host with several GPUs the local backend runs one job per GPU: worker i paints on cuda:i."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch

import bot.core.local_backend as backends_module
from bot.core.backend import PaintJob
from bot.core.local_backend import LocalBackend
from bot.core.requests import JobRequest, style_params
from tests.bot.conftest import tiny_settings
from tests.helpers.images import content_image, stripes_style


class Observer:
    async def on_position(self, position: int) -> None:
        pass

    def on_start(self) -> None:
        pass

    async def on_progress(self, progress: Any) -> None:
        pass


async def paint_four_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gpus: int, **settings: Any
) -> Counter[str]:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    devices: list[str] = []

    def fake_stylize(content: Any, styles: Any, params: Any, **kwargs: Any) -> str:
        devices.append(params.device)
        together.wait()
        return params.device

    monkeypatch.setattr(backends_module, "engine_stylize", fake_stylize)
    values: dict[str, Any] = {"concurrency": 0, "device": "auto", **settings}
    config = tiny_settings(tmp_path, **values)
    together = threading.Barrier(min(config.worker_threads, 2), timeout=10)  # jobs run in pairs, at once
    backend = LocalBackend(config, resolver=None, style_cache=None)
    try:
        futures = [
            await backend.submit(
                PaintJob(
                    job_id=f"{user:08x}",
                    user_id=user,
                    content=content_image(),
                    style=stripes_style(),
                    preset=None,
                    params=style_params(config, JobRequest()),
                    preview_every=0,
                    preview_size=32,
                ),
                Observer(),
            )
            for user in range(1, 5)
        ]
        results = await asyncio.wait_for(asyncio.gather(*futures), 20)
    finally:
        await backend.shutdown(timeout=5)
    assert sorted(results) == sorted(devices)
    return Counter(devices)


async def test_two_gpus_two_threads_each_on_its_own_gpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert await paint_four_jobs(tmp_path, monkeypatch, gpus=2) == {"cuda:0": 2, "cuda:1": 2}


async def test_more_threads_than_gpus_are_spread_over_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = await paint_four_jobs(tmp_path, monkeypatch, gpus=2, concurrency=4, device="cuda")
    assert set(found) == {"cuda:0", "cuda:1"}


async def test_one_gpu_or_an_explicit_device_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert await paint_four_jobs(tmp_path, monkeypatch, gpus=1) == {"auto": 4}
    assert await paint_four_jobs(tmp_path, monkeypatch, gpus=2, device="cuda:1") == {"cuda:1": 4}
