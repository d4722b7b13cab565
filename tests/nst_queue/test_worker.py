"""nst-worker's state: where it keeps style targets."""

from pathlib import Path

import torch

from nst_engine.cache import StyleTargetCache
from nst_queue.worker import Painter


def test_the_worker_reads_the_style_targets_the_cli_and_the_bot_store(tmp_path: Path) -> None:
    """`nst --cache-dir`, the bot's `cache_dir` and `nst-worker --cache-dir` share one folder."""
    StyleTargetCache.under(tmp_path).store("gram", {"relu1_1": torch.ones(2, 2)})
    worker_cache = Painter("cpu", "worker-1", tmp_path).style_cache
    assert worker_cache is not None
    loaded = worker_cache.load("gram")
    assert loaded is not None and torch.equal(loaded["relu1_1"], torch.ones(2, 2))


def test_a_worker_without_a_cache_dir_keeps_no_style_targets() -> None:
    assert Painter("cpu", "worker-1", None).style_cache is None
