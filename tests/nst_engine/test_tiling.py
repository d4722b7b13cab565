import logging

import pytest
import torch

from nst_engine import ParameterError, StyleParams, losses, stylize, tensors, tiling, vgg
from nst_engine.device import ComputeSetup
from tests.helpers.images import content_image, stripes_style

GIB = 1 << 30


def test_an_evaluation_needs_memory_in_proportion_to_its_pixels():
    small = tiling.evaluation_bytes(1024, 768, "fp32") - tiling.EVAL_FIXED_BYTES
    large = tiling.evaluation_bytes(2048, 1536, "fp32") - tiling.EVAL_FIXED_BYTES
    assert large == 4 * small
    assert tiling.evaluation_bytes(1024, 768, "bf16") < tiling.evaluation_bytes(1024, 768, "fp32")
    # why tiles: 4096 px does not fit this 24 GiB host or a 16 GB GPU in one evaluation
    assert tiling.evaluation_bytes(4096, 3072, "fp32") > 24 * GIB
    assert tiling.evaluation_bytes(4096, 3072, "bf16") > 14 * GIB


def test_4096_px_is_planned_in_tiles_that_fit_a_16_gb_gpu():
    state = tiling.level_state_bytes(4096, 3072, history=5)
    available = tiling.available_for_evaluation(16 * 10**9, in_use=300 << 20, state=state)
    tiles = tiling.plan_tiles(4096, 3072, available, "fp32")
    assert len(tiles) > 1
    for tile in tiles:
        assert tiling.evaluation_bytes(tile.cx1 - tile.cx0, tile.cy1 - tile.cy0, "fp32") <= available
    # a tiled evaluation costs less than twice an untiled one at this size (margins, first pass)
    assert tiling.tiling_overhead(tiles, 4096, 3072) < 2.0


@pytest.mark.parametrize(
    ("width", "height", "columns", "rows"), [(96, 72, 2, 2), (333, 250, 3, 2), (4096, 3072, 5, 4)]
)
def test_tiles_share_out_every_pixel_once_on_the_deepest_layers_grid(width, height, columns, rows):
    tiles = tiling.make_tiles(width, height, columns, rows, margin=32)
    cover = torch.zeros(height, width, dtype=torch.int32)
    for tile in tiles:
        cover[tile.y0 : tile.y1, tile.x0 : tile.x1] += 1
        assert tile.cx0 % tiling.ALIGN == 0 and tile.cy0 % tiling.ALIGN == 0
        assert 0 <= tile.cx0 <= tile.x0 < tile.x1 <= tile.cx1 <= width
        assert 0 <= tile.cy0 <= tile.y0 < tile.y1 <= tile.cy1 <= height
    assert bool((cover == 1).all())


def test_planning_takes_one_tile_when_it_fits_and_refuses_a_budget_too_small():
    assert len(tiling.plan_tiles(512, 384, 10 * GIB, "fp32")) == 1
    tiles = tiling.plan_tiles(2048, 1536, 2 * GIB, "fp32")
    assert len(tiles) > 1
    with pytest.raises(ParameterError, match="memory_budget") as error:
        tiling.plan_tiles(2048, 1536, 1 << 20, "fp32")
    assert "\n" not in str(error.value)


def _whole_and_tiled(tiles, image, content_image_, style_image):
    model = vgg.get_model("caffe", "max", torch.device("cpu"))
    setup = ComputeSetup(torch.device("cpu"), "fp32")

    def features(x):
        with torch.no_grad():
            return model(x)

    content_target = features(content_image_)["relu4_2"]
    style_targets = {
        n: losses.gram_matrix(f) for n, f in features(style_image).items() if n in vgg.STYLE_LAYERS
    }
    whole = image.clone().requires_grad_(True)
    out = model(whole)
    content = losses.content_loss(out["relu4_2"], content_target)
    style = losses.style_loss({n: out[n] for n in vgg.STYLE_LAYERS}, style_targets)
    (5.0 * content + 100.0 * style).backward()
    tiled = tiling.tiled_losses(
        model=model,
        autocast=setup.autocast,
        image=image,
        tiles=tiles,
        content_layer="relu4_2",
        content_target=content_target,
        style_targets=style_targets,
        feature_scale=1.0,
        content_weight=5.0,
        style_weight=100.0,
        check_cancel=lambda: None,
    )
    return (float(content.detach()), float(style.detach()), whole.grad), tiled


def test_tiled_losses_are_the_whole_pictures_losses_and_gradient():
    cpu = torch.device("cpu")
    photo = tensors.image_to_tensor(content_image(96, 64), cpu)
    painting = tensors.image_to_tensor(stripes_style(96, 64), cpu)
    image = (photo + torch.randn(photo.shape, generator=torch.Generator().manual_seed(0)) * 20).clamp(0, 255)
    # margins that reach across the whole picture: every tile sees what the whole picture sees
    exact = tiling.make_tiles(96, 64, 2, 2, margin=96)
    (content, style, gradient), tiled = _whole_and_tiled(exact, image, photo, painting)
    assert float(tiled.content) == pytest.approx(content, rel=1e-4)
    assert float(tiled.style) == pytest.approx(style, rel=1e-4)
    assert torch.allclose(tiled.gradient, gradient, rtol=1e-3, atol=1e-3 * float(gradient.abs().max()))
    # the default margin: the same losses within a few percent on a picture this small
    tiles = tiling.make_tiles(96, 64, 3, 2, margin=32)
    _, near = _whole_and_tiled(tiles, image, photo, painting)
    assert float(near.style) == pytest.approx(style, rel=0.05)
    assert float(near.content) == pytest.approx(content, rel=0.05)


@pytest.fixture
def tiny_memory(monkeypatch):
    """A world where a 96 px picture does not fit in one evaluation: 0.25 GiB holds a few
    thousand pixels per evaluation, and nothing else is in use."""
    monkeypatch.setattr(tiling, "EVAL_BYTES_PER_PIXEL", {"fp32": 48_000, "bf16": 48_000, "fp16": 48_000})
    monkeypatch.setattr(tiling, "EVAL_FIXED_BYTES", 0)
    monkeypatch.setattr(tiling, "TILE_MARGIN", 16)
    monkeypatch.setattr(tiling, "memory_in_use", lambda device: 0)


def test_a_tiny_memory_budget_tiles_and_matches_the_untiled_result(tiny_memory, monkeypatch, caplog):
    params = StyleParams(size=96, iterations=12, scales=1, precision="fp32")
    photo, painting = content_image(96, 72), stripes_style()
    untiled = stylize(photo, [painting], params)
    calls = []
    real = tiling.tiled_losses
    monkeypatch.setattr(tiling, "tiled_losses", lambda **kw: calls.append(len(kw["tiles"])) or real(**kw))
    with caplog.at_level(logging.INFO, logger="nst_engine.engine"):
        tiled = stylize(photo, [painting], params.replace(memory_budget=0.25))
    assert calls and min(calls) > 1, "the level was not painted in tiles"
    assert "tiles to fit the memory budget" in caplog.text
    assert tiled.image.size == untiled.image.size
    assert tiled.stats.total_loss == pytest.approx(untiled.stats.total_loss, rel=0.1)
    a = tensors.image_to_tensor(tiled.image, torch.device("cpu"))
    b = tensors.image_to_tensor(untiled.image, torch.device("cpu"))
    assert float((a - b).abs().mean()) < 12.0  # the same picture, not just the same loss


def test_a_memory_budget_that_cannot_hold_the_picture_is_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(tiling, "memory_in_use", lambda device: 1 * GIB)
    params = StyleParams(size=96, iterations=2, scales=1, memory_budget=0.5)
    with pytest.raises(ParameterError, match="memory_budget") as error:
        stylize(content_image(96, 72), [stripes_style()], params)
    assert "\n" not in str(error.value)


def test_the_default_budget_is_what_is_in_use_plus_a_share_of_what_is_free():
    cpu = torch.device("cpu")
    free = tiling.memory_free(cpu)
    assert free is not None and free > 0
    budget = tiling.memory_budget_bytes(None, cpu)
    assert budget is not None
    assert tiling.memory_in_use(cpu) < budget < tiling.memory_in_use(cpu) + free
    assert tiling.memory_budget_bytes(2.0, cpu) == 2 * GIB
