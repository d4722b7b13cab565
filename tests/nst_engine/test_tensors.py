"""The engine's resize helpers: the working size of each pyramid level and the resampling to it."""

from __future__ import annotations

import pytest
from PIL import Image

from nst_engine.tensors import resize, scaled_dimensions


@pytest.mark.parametrize(
    ("size", "longest", "expected"),
    [((64, 32), 128, (128, 64)), ((64, 32), 16, (16, 8)), ((400, 20), 10, (10, 1)), ((30, 30), 30, (30, 30))],
)
def test_scaled_dimensions_keep_the_shape_up_or_down(
    size: tuple[int, int], longest: int, expected: tuple[int, int]
) -> None:
    assert scaled_dimensions(*size, longest) == expected
    assert resize(Image.new("RGB", size), expected).size == expected


def test_resize_returns_the_same_image_when_the_size_already_fits() -> None:
    image = Image.new("RGB", (30, 20))
    assert resize(image, (30, 20)) is image
    assert resize(image, (15, 10)) is not image
