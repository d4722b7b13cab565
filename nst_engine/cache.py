"""A disk cache of style targets (Gram matrices), so a repeated style skips its VGG pass.

Keys are content hashes of the exact pixels that went into the network plus everything else that
changes the targets (weights, pooling, precision, layers), so a swapped preset file or another size
can never be served a stale entry. Entries are small (about 2.4 MB each for VGG19's five style
layers), written atomically, and the oldest are evicted past ``max_bytes``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path

import torch

from .files import write_atomically

log = logging.getLogger(__name__)

#: The style-target cache's folder under the engine's cache root (``--cache-dir``, ``cache_dir``).
STYLE_TARGETS_DIR = "style-targets"

CACHE_FORMAT = 1


class StyleTargetCache:
    def __init__(self, directory: str | os.PathLike[str], *, max_bytes: int = 256 * 1024**2) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    @classmethod
    def under(cls, cache_root: str | os.PathLike[str]) -> StyleTargetCache:
        """The style-target cache under an engine cache root (``nst --cache-dir``, the bot's
        ``cache_dir``, ``nst-worker --cache-dir``): the one folder all of them share."""
        return cls(Path(cache_root) / STYLE_TARGETS_DIR)

    @staticmethod
    def key(pixels: bytes, *, parts: Iterable[object]) -> str:
        digest = hashlib.sha256()
        digest.update(f"v{CACHE_FORMAT}|".encode())
        for part in parts:
            digest.update(repr(part).encode())
            digest.update(b"|")
        digest.update(pixels)
        return digest.hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.pt"

    def load(self, key: str) -> dict[str, torch.Tensor] | None:
        path = self._path(key)
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            return None
        except Exception as error:  # a truncated or foreign file: drop it and recompute
            log.warning("ignoring unreadable style-target cache entry %s: %s", path.name, error)
            path.unlink(missing_ok=True)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # mark as recently used for eviction
        return data if isinstance(data, dict) else None

    def store(self, key: str, targets: dict[str, torch.Tensor]) -> None:
        with self._lock:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                buffer = io.BytesIO()
                torch.save({k: v.detach().float().cpu() for k, v in targets.items()}, buffer)
                write_atomically(self._path(key), buffer.getvalue())
                self._evict()
            except OSError as error:  # a full or read-only disk must not fail the run
                log.warning("could not write style-target cache entry: %s", error)

    def _evict(self) -> None:
        entries = sorted(self.directory.glob("*.pt"), key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in entries)
        while entries and total > self.max_bytes:
            oldest = entries.pop(0)
            total -= oldest.stat().st_size
            oldest.unlink(missing_ok=True)

    def __len__(self) -> int:
        return len(list(self.directory.glob("*.pt"))) if self.directory.is_dir() else 0
