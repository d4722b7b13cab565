"""The job payload and result format: lossless both ways, and a malformed image is refused."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nst_engine import RunStats
from nst_queue import protocol


def noisy(width: int, height: int, mode: str = "RGB") -> Image.Image:
    pixels = np.random.default_rng(width * height).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB").convert(mode)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_small_images_travel_raw_and_exactly(mode: str) -> None:
    image = noisy(37, 23, mode)
    packed = protocol.pack_image(image)
    assert packed["format"] == "raw"
    assert len(packed["data"]) == 37 * 23 * 3
    assert protocol.unpack_image(packed).tobytes() == image.convert("RGB").tobytes()


def test_images_over_the_raw_limit_travel_as_lossless_png(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol, "RAW_MAX_BYTES", 100)
    image = noisy(20, 10)
    packed = protocol.pack_image(image)
    assert packed["format"] == "file"
    assert packed["data"].startswith(b"\x89PNG")
    assert protocol.unpack_image(packed).tobytes() == image.tobytes()


@pytest.mark.parametrize(
    "packed",
    [
        {"format": "raw", "width": 4, "height": 4, "data": b"\0" * 47},
        {"format": "raw", "width": 0, "height": 4, "data": b""},
        {"format": "gif", "data": b"GIF89a"},
        {"format": "raw", "width": 1, "height": 1},
    ],
)
def test_a_malformed_image_is_refused(packed: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        protocol.unpack_image(packed)


def test_payload_inputs_are_shrunk_to_the_job_size() -> None:
    payload = protocol.job_payload(noisy(200, 100), [noisy(50, 80), noisy(30, 20)], {"size": 64})
    content = protocol.unpack_image(payload["content"])
    styles = [protocol.unpack_image(packed) for packed in payload["styles"]]
    assert content.size == (64, 32)
    assert [style.size for style in styles] == [(40, 64), (30, 20)], "shrunk, never enlarged"


def test_a_success_becomes_the_engines_result() -> None:
    image = noisy(16, 12)
    stats = RunStats(
        iterations=3, evaluations=4, seconds=1.0, content_loss=1.0, style_loss=2.0, tv_loss=0.5,
        total_loss=3.5, device="cpu", precision="fp32", peak_memory_bytes=0, width=16, height=12,
        levels=1, seed=0, style_targets_cached=0,
    )  # fmt: skip
    result = protocol.outcome_to_result(protocol.success(protocol.pack_image(image), stats))
    assert result.image.tobytes() == image.tobytes()
    assert result.stats == stats
