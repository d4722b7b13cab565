import itertools
import threading

import pytest
import torch
from PIL import Image

from nst_engine import (
    Cancelled,
    InvalidImage,
    ParameterError,
    StyleImage,
    StyleParams,
    StyleTargetCache,
    engine,
    losses,
    stylize,
    tensors,
    vgg,
)
from tests.helpers.images import content_image, dots_style, stripes_style


def image_tensor(image: Image.Image) -> torch.Tensor:
    return tensors.image_to_tensor(image, torch.device("cpu"))


# ------------------------------------------------------------------------ losses
def test_gram_is_symmetric_positive_semidefinite_and_size_independent():
    features = torch.rand(1, 8, 6, 5)
    gram = losses.gram_matrix(features)
    assert torch.allclose(gram, gram.transpose(1, 2))
    assert torch.linalg.eigvalsh(gram[0]).min() > -1e-5
    tiled = features.repeat(1, 1, 2, 3)  # the same texture over a larger area
    assert torch.allclose(losses.gram_matrix(tiled), gram, atol=1e-6)
    shuffled = features.flatten(2)[:, :, torch.randperm(30)].view(1, 8, 6, 5)
    assert torch.allclose(losses.gram_matrix(shuffled), gram, atol=1e-6)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_gram_gradient_matches_autograd_of_the_plain_product(layout):
    assert torch.autograd.gradcheck(
        losses._Gram.apply, (torch.randn(2, 12, 5, dtype=torch.float64, requires_grad=True),)
    )
    features = torch.randn(1, 8, 5, 6).contiguous(memory_format=layout).requires_grad_(True)
    weights = torch.randn(1, 8, 8)
    (losses.gram_matrix(features) * weights).sum().backward()
    ours = features.grad.clone()
    features.grad = None
    flat = features.reshape(1, 8, 30)
    ((flat @ flat.transpose(1, 2)) / (8 * 30) * weights).sum().backward()
    assert torch.allclose(ours, features.grad, atol=1e-5)


def test_losses_have_neural_styles_scaling():
    """Gram = F·Fᵀ/(C·H·W); content = feature MSE; style = per-layer Gram MSE, summed; the feature
    scale enters squared (content) and to the fourth power (style)."""
    generator = torch.Generator().manual_seed(0)
    a = {"x": torch.rand(1, 4, 3, 5, generator=generator), "y": torch.rand(1, 6, 2, 2, generator=generator)}
    b = {"x": torch.rand(1, 4, 3, 5, generator=generator), "y": torch.rand(1, 6, 2, 2, generator=generator)}
    flat = a["x"].reshape(4, 15)
    assert torch.allclose(losses.gram_matrix(a["x"])[0], flat @ flat.T / (4 * 15), atol=1e-6)
    targets = {name: losses.gram_matrix(f) for name, f in b.items()}
    expected = sum(float((losses.gram_matrix(a[n]) - targets[n]).pow(2).mean()) for n in a)
    assert float(losses.style_loss(a, targets)) == pytest.approx(expected, rel=1e-5)
    assert float(losses.style_loss(a, targets, 3.0)) == pytest.approx(81 * expected, rel=1e-5)
    mse = float((a["x"] - b["x"]).pow(2).mean())
    assert float(losses.content_loss(a["x"], b["x"])) == pytest.approx(mse, rel=1e-6)
    assert float(losses.content_loss(a["x"], b["x"], 3.0)) == pytest.approx(9 * mse, rel=1e-6)


def test_loss_gradients_match_finite_differences():
    generator = torch.Generator().manual_seed(1)
    features = {
        "a": torch.rand(1, 3, 4, 5, dtype=torch.float64, generator=generator),
        "b": torch.rand(1, 5, 2, 3, dtype=torch.float64, generator=generator),
    }
    targets = {n: losses.gram_matrix(torch.rand_like(f)).double() for n, f in features.items()}

    def style_of(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return losses.style_loss({"a": a, "b": b}, targets, 2.0)

    inputs = tuple(f.clone().requires_grad_(True) for f in features.values())
    assert torch.autograd.gradcheck(style_of, inputs)
    target = torch.rand(1, 3, 4, 5, dtype=torch.float64, generator=generator)
    assert torch.autograd.gradcheck(lambda f: losses.content_loss(f, target, 2.0), (inputs[0],))
    image = (torch.rand(1, 3, 6, 7, dtype=torch.float64, generator=generator) * 255).requires_grad_(True)
    assert torch.autograd.gradcheck(losses.tv_loss, (image,))


def test_tv_loss_is_a_mean_so_its_weight_means_the_same_at_any_size():
    """The same seamless texture over nine times the area has the same TV; a sum would be 9x."""
    ramp = torch.arange(32, dtype=torch.float32) * (2 * torch.pi / 32)
    waves = 128 + 60 * torch.sin(3 * ramp).view(1, 32) + 60 * torch.cos(2 * ramp).view(32, 1)
    texture = torch.stack([waves, waves.T, 255 - waves]).unsqueeze(0)
    assert float(losses.tv_loss(texture.repeat(1, 1, 3, 3))) == pytest.approx(
        float(losses.tv_loss(texture)), rel=0.05
    )


def test_feature_scale_keeps_the_balance_of_content_and_style_under_imagenet_preprocessing():
    """The same weights behind ImageNet normalisation see input about 58x smaller; scaled back,
    style (fourth power of the features) and content (second power) keep their balance, which
    unscaled would tip about 58² = 3300x towards content."""
    weights = vgg.load_caffe_weights()
    caffe = vgg.VGGFeatures(weights)
    imagenet = vgg.VGGFeatures(vgg.LoadedWeights(weights.state_dict, "imagenet", "test"))
    assert caffe.feature_scale == 1.0 and 50 < imagenet.feature_scale < 65
    photo, painting = image_tensor(content_image(96, 72)), image_tensor(stripes_style(96, 72))
    balances = []
    for model in (caffe, imagenet):
        with torch.no_grad():
            ours, theirs = model(photo), model(painting)
        targets = {n: losses.gram_matrix(theirs[n]) for n in vgg.STYLE_LAYERS}
        style = losses.style_loss(ours, targets, model.feature_scale)
        content = losses.content_loss(ours["relu4_2"], theirs["relu4_2"], model.feature_scale)
        balances.append(float(style) / float(content))
    assert 0.5 < balances[1] / balances[0] < 2, balances


def test_tv_loss_is_zero_for_flat_images_and_grows_with_noise():
    flat = torch.full((1, 3, 16, 16), 100.0)
    assert losses.tv_loss(flat) == 0
    smooth = torch.linspace(0, 255, 16).view(1, 1, 1, 16).expand(1, 3, 16, 16)
    noisy = torch.rand(1, 3, 16, 16) * 255
    assert 0 < losses.tv_loss(smooth) < losses.tv_loss(noisy)


def tile(image: Image.Image, times: int) -> Image.Image:
    out = Image.new("RGB", (image.width * times, image.height * times))
    for y in range(times):
        for x in range(times):
            out.paste(image, (x * image.width, y * image.height))
    return out


def noise_tile(seed: int) -> Image.Image:
    """Smooth colour noise: a texture that excites every VGG layer, unlike flat test shapes."""
    generator = torch.Generator().manual_seed(seed)
    cells = (torch.rand(8, 8, 3, generator=generator) * 255).to(torch.uint8)
    return Image.fromarray(cells.numpy()).resize((32, 32), Image.Resampling.BICUBIC)


def test_losses_are_normalised_so_the_same_weights_mean_the_same_at_any_size():
    """The same textures over four times the area give the same losses: the weights need no
    re-tuning when the output size changes. (Unnormalised sums would differ by about 4x.)"""
    model = vgg.get_model("caffe", "max", torch.device("cpu"))
    photo, painting, other = noise_tile(1), noise_tile(2), noise_tile(3)
    style_losses, content_losses = [], []
    for times in (4, 8):
        with torch.no_grad():
            c = model(image_tensor(tile(photo, times)))
            s = model(image_tensor(tile(painting, times)))
            o = model(image_tensor(tile(other, times)))
        targets = {n: losses.gram_matrix(s[n]) for n in vgg.STYLE_LAYERS}
        style_losses.append(float(losses.style_loss(c, targets)))
        content_losses.append(float(losses.content_loss(o["relu4_2"], c["relu4_2"])))
    assert 0.75 < style_losses[0] / style_losses[1] < 1.33, style_losses
    assert 0.75 < content_losses[0] / content_losses[1] < 1.33, content_losses


def test_style_loss_of_an_image_against_itself_is_zero():
    model = vgg.get_model("caffe", "max", torch.device("cpu"))
    with torch.no_grad():
        features = model(image_tensor(stripes_style(48, 48)))
    targets = {n: losses.gram_matrix(features[n]) for n in vgg.STYLE_LAYERS}
    assert float(losses.style_loss(features, targets)) < 1e-6


# ------------------------------------------------------------------------ runs
def test_a_run_lowers_the_loss_and_returns_stats(tiny_params):
    reports = []
    params = tiny_params.replace(iterations=8)
    result = stylize(content_image(), [stripes_style()], params, progress=reports.append)
    assert result.image.mode == "RGB"
    assert max(result.image.size) == params.size
    assert reports[-1].total_loss < reports[0].total_loss
    stats = result.stats
    assert stats.iterations == 8
    assert stats.evaluations >= 8
    assert stats.device == "cpu"
    assert stats.precision in ("fp32", "bf16")
    assert stats.seconds > 0 and stats.peak_memory_bytes > 0
    assert stats.style_loss > 0 and stats.content_loss >= 0
    assert set(stats.to_dict()) >= {"seconds", "iterations", "evaluations", "content_loss", "style_loss"}


def test_the_result_differs_from_the_content(tiny_params):
    photo = content_image()
    result = stylize(photo, [stripes_style()], tiny_params)
    ours = image_tensor(result.image)
    theirs = image_tensor(photo.resize(result.image.size))
    assert (ours - theirs).abs().mean() > 2


def test_the_same_seed_gives_the_same_image_and_another_seed_another(tiny_params):
    params = tiny_params.replace(init_noise=0.3, seed=7)
    first = stylize(content_image(), [stripes_style()], params).image
    again = stylize(content_image(), [stripes_style()], params).image
    other = stylize(content_image(), [stripes_style()], params.replace(seed=8)).image
    assert first.tobytes() == again.tobytes()
    assert first.tobytes() != other.tobytes()


@pytest.mark.parametrize("init", ["noise", "style"])
def test_other_initialisations_run(tiny_params, init):
    result = stylize(content_image(), [stripes_style()], tiny_params.replace(init=init))
    assert result.image.size == (48, 36)


def test_adam_lowers_the_loss(tiny_params):
    reports = []
    params = tiny_params.replace(optimizer="adam", iterations=10, adam_lr=4.0)
    stylize(content_image(), [stripes_style()], params, progress=reports.append)
    assert reports[-1].total_loss < reports[0].total_loss
    assert [r.step for r in reports] == list(range(1, 11))


def test_cancel_stops_within_one_evaluation(tiny_params):
    cancel = threading.Event()
    evaluations_at_cancel = []
    original_loss = engine._Run._loss
    calls = []

    def counting_loss(self, image, level):
        calls.append(1)
        return original_loss(self, image, level)

    def on_progress(progress):
        if progress.step == 2:
            cancel.set()
            evaluations_at_cancel.append(len(calls))

    engine._Run._loss = counting_loss
    try:
        with pytest.raises(Cancelled):
            stylize(
                content_image(),
                [stripes_style()],
                tiny_params.replace(iterations=50),
                progress=on_progress,
                cancel=cancel,
            )
    finally:
        engine._Run._loss = original_loss
    # The evaluation that reported step 2 may finish; no further evaluation starts.
    assert len(calls) <= evaluations_at_cancel[0] + 1


def test_cancel_from_another_thread_while_running(tiny_params):
    cancel = threading.Event()
    started = threading.Event()
    outcome = []

    def run():
        try:
            stylize(
                content_image(),
                [stripes_style()],
                tiny_params.replace(iterations=500),
                progress=lambda p: started.set(),
                cancel=cancel,
            )
            outcome.append("finished")
        except Cancelled:
            outcome.append("cancelled")

    worker = threading.Thread(target=run)
    worker.start()
    assert started.wait(30)
    cancel.set()
    worker.join(30)
    assert outcome == ["cancelled"]


def test_progress_cadence_and_previews(tiny_params):
    reports = []
    params = tiny_params.replace(iterations=7)
    stylize(
        content_image(), [stripes_style()], params, progress=reports.append, preview_every=3, preview_size=20
    )
    assert [r.step for r in reports] == list(range(1, 8))
    assert all(r.total == 7 and r.levels == 1 and r.level == 1 for r in reports)
    with_preview = [r.step for r in reports if r.preview is not None]
    assert with_preview == [3, 6, 7]  # every 3 steps and at the end of the level
    assert max(reports[2].preview.size) == 20
    assert all(r.elapsed >= 0 for r in reports)
    assert reports[-1].fraction == 1.0
    assert reports[-1].eta == 0


def test_pyramid_levels_and_eta():
    reports = []
    params = StyleParams(size=256, iterations=6, scales=3)  # 64 px level is skipped: too coarse
    result = stylize(content_image(64, 48), [stripes_style()], params, progress=reports.append)
    assert result.stats.levels == 2
    assert next((r.width, r.height) for r in reports if r.level == 1) == (128, 96)
    assert next((r.width, r.height) for r in reports if r.level == 2) == (256, 192)
    assert sum(1 for r in reports if r.level == 1) > sum(1 for r in reports if r.level == 2)
    assert all(r.eta is None or r.eta >= 0 for r in reports)
    assert result.image.size == (256, 192)


def test_split_iterations_favours_coarse_levels():
    assert engine.split_iterations(300, 1) == [300]
    counts = engine.split_iterations(300, 3)
    assert sum(counts) == 300 and counts[0] > counts[1] > counts[2] >= 1
    assert counts[-1] == round(300 * engine.TOP_LEVEL_SHARE)
    assert engine.split_iterations(3, 3) == [1, 1, 1]
    for total in range(4, 40):
        for levels in (2, 3, 4):
            counts = engine.split_iterations(total, levels)
            assert sum(counts) == total and min(counts) >= 1, (total, levels, counts)


def test_a_finer_level_starts_from_the_photo_detail_not_a_blur():
    photo = tensors.image_to_tensor(content_image(64, 48), torch.device("cpu"))
    coarse_copy = torch.nn.functional.interpolate(photo, size=(24, 32), mode="area")
    start = engine.upsample_with_detail(coarse_copy, photo)
    # a coarse level that reproduced the photo starts the next level at the photo itself
    assert torch.allclose(start, photo.clamp(0, 255), atol=1e-3)
    painted = torch.full_like(coarse_copy, 200.0)
    start = engine.upsample_with_detail(painted, photo)
    # otherwise: the painting's colours, with the photo's fine detail on top
    assert abs(float(start.mean()) - 200.0) < 2.0
    assert float(start.std()) > 5.0


def test_preserve_color_keeps_the_content_chroma(tiny_params):
    photo = content_image()
    painting = stripes_style(colours=((10, 200, 20), (200, 10, 200)))  # colours the photo lacks

    def chroma_error(result_image):
        ours = tensors._color_transform(image_tensor(result_image), tensors._RGB_TO_YIQ)[:, 1:]
        theirs = tensors._color_transform(
            image_tensor(photo.resize(result_image.size, Image.Resampling.LANCZOS)), tensors._RGB_TO_YIQ
        )[:, 1:]
        return float((ours - theirs).abs().mean())

    params = tiny_params.replace(iterations=10, style_strength=4.0)
    kept = stylize(photo, [painting], params.replace(preserve_color=True)).image
    changed = stylize(photo, [painting], params).image
    assert chroma_error(kept) < 2.0
    assert chroma_error(changed) > 3 * chroma_error(kept)


def test_blending_two_styles(tiny_params):
    photo = content_image()
    blue = stripes_style(colours=((20, 40, 220), (20, 40, 220)))
    red = dots_style(background=(230, 30, 30), dot=(230, 30, 30))
    params = tiny_params.replace(iterations=12, style_strength=4.0)

    def red_minus_blue(blend):
        image = image_tensor(stylize(photo, [blue, red], params.replace(style_blend=blend)).image)
        return float(image[0, 0].mean() - image[0, 2].mean())

    only_blue, half, only_red = red_minus_blue((1, 0)), red_minus_blue((1, 1)), red_minus_blue((0, 1))
    assert only_blue < half < only_red


def test_a_style_weight_of_zero_in_the_blend_is_the_same_as_leaving_it_out(tiny_params):
    photo, a, b = content_image(), stripes_style(), dots_style()
    alone = stylize(photo, [a], tiny_params).image
    blended = stylize(
        photo, [StyleImage(a, "a"), StyleImage(b, "b")], tiny_params.replace(style_blend=(1, 0))
    ).image
    assert alone.tobytes() == blended.tobytes()


def test_style_targets_are_cached_on_disk(tiny_params, tmp_path):
    cache = StyleTargetCache(tmp_path)
    first = stylize(content_image(), [stripes_style()], tiny_params, style_cache=cache)
    second = stylize(content_image(), [stripes_style()], tiny_params, style_cache=cache)
    other_size = stylize(content_image(), [stripes_style()], tiny_params.replace(size=64), style_cache=cache)
    assert first.stats.style_targets_cached == 0
    assert second.stats.style_targets_cached == 1
    assert other_size.stats.style_targets_cached == 0
    assert len(cache) == 2
    assert first.image.tobytes() == second.image.tobytes()


def test_a_corrupt_cache_entry_is_recomputed(tiny_params, tmp_path):
    cache = StyleTargetCache(tmp_path)
    stylize(content_image(), [stripes_style()], tiny_params, style_cache=cache)
    for entry in tmp_path.glob("*.pt"):
        entry.write_bytes(b"garbage")
    result = stylize(content_image(), [stripes_style()], tiny_params, style_cache=cache)
    assert result.stats.style_targets_cached == 0


def test_no_styles_is_a_parameter_error(tiny_params):
    with pytest.raises(ParameterError) as caught:
        stylize(content_image(), [], tiny_params)
    assert caught.value.parameter == "styles"


def test_blend_weights_must_match_the_style_count(tiny_params):
    with pytest.raises(ParameterError) as caught:
        stylize(content_image(), [stripes_style()], tiny_params.replace(style_blend=(1, 2)))
    assert caught.value.parameter == "style_blend"


def test_a_picture_too_thin_at_the_working_size_is_refused(tiny_params):
    banner = Image.new("RGB", (400, 20), "white")
    with pytest.raises(InvalidImage, match="too thin"):
        stylize(banner, [stripes_style()], tiny_params.replace(size=64))


def test_a_level_stalled_by_reduced_precision_goes_on_in_fp32(tiny_params, monkeypatch):
    passes: list[tuple[str, int]] = []

    def stalls_once_in_bf16(self, z, level, unit, iterations, offset, on_iteration):
        passes.append((self.loss_setup.precision, iterations))
        finished = iterations // 2 if self.loss_setup.precision == "bf16" else iterations
        on_iteration(offset + finished)
        return finished

    monkeypatch.setattr(engine._Run, "_lbfgs_pass", stalls_once_in_bf16)
    reports = []
    result = stylize(
        content_image(),
        [stripes_style()],
        tiny_params.replace(iterations=10, precision="bf16"),
        progress=reports.append,
    )
    assert passes == [("bf16", 10), ("fp32", 5)]
    assert result.stats.precision == "bf16" and reports[-1].step == 10


def test_a_level_that_even_fp32_cannot_improve_ends_early_and_counts_as_done(tiny_params, monkeypatch):
    passes: list[str] = []

    def converged(self, z, level, unit, iterations, offset, on_iteration):
        passes.append(self.loss_setup.precision)
        return 3 if len(passes) == 1 else 0

    monkeypatch.setattr(engine._Run, "_lbfgs_pass", converged)
    reports = []
    stylize(
        content_image(),
        [stripes_style()],
        tiny_params.replace(iterations=10, precision="fp32"),
        progress=reports.append,
    )
    assert passes == ["fp32", "fp32"] and reports[-1].step == 10


def test_lbfgs_history_is_bounded_by_memory_not_by_image_size():
    assert engine.lbfgs_history(3 * 512 * 384) == 50  # the default sizes keep the full history
    big = 3 * 4096 * 3072
    history = engine.lbfgs_history(big)
    assert history == 5  # 37.7 M values: even 5 steps exceed the budget, and 5 is the floor
    middle = 3 * 2048 * 1536
    assert engine.lbfgs_history(middle) * 2 * 4 * middle <= engine.LBFGS_HISTORY_BYTES
    assert (engine.lbfgs_history(middle) + 1) * 2 * 4 * middle > engine.LBFGS_HISTORY_BYTES


def test_each_strength_step_lowers_the_style_loss_and_raises_the_content_loss():
    """The bot's steps (subtle, normal, strong, extreme) double the style weight each time; with
    absolute losses each step must buy a clearly lower style loss, paid for in content.

    On these flat synthetic images at 64 px the style term outweighs the content term about 10^4 to
    1 at the default weights (on photos at 512 px the two are of one size); scaling it would then
    scale nearly the whole loss, to which L-BFGS is blind. A content weight that balances the two
    here, as the defaults balance them on photos, tests what strength does to the trade-off."""
    photo, painting = content_image(64, 48), dots_style(64, 64, background=(30, 60, 160), dot=(250, 220, 40))
    params = StyleParams(size=64, iterations=40, scales=1, content_weight=5000.0)
    style_losses, content_losses = [], []
    for strength in (0.5, 1.0, 2.0, 4.0):
        stats = stylize(photo, [painting], params.replace(style_strength=strength)).stats
        style_losses.append(stats.style_loss / (params.style_weight * strength))
        content_losses.append(stats.content_loss / params.content_weight)
    for weaker, stronger in itertools.pairwise(style_losses):
        assert stronger < 0.85 * weaker, style_losses
    assert content_losses == sorted(content_losses), content_losses


# ------------------------------------------------------------------------ continuing an earlier result
def test_a_continued_run_paints_only_the_new_level_starting_from_the_earlier_result(monkeypatch):
    monkeypatch.setattr(engine, "PYRAMID_MIN_SIDE", 16)
    photo = content_image(64, 48)
    earlier = Image.new("RGB", (32, 24), (200, 30, 30))  # an "earlier result" nothing else would paint
    params = StyleParams(size=64, iterations=12, scales=3, precision="fp32")
    reports = []
    continued = stylize(photo, [stripes_style()], params, start_from=earlier, progress=reports.append)
    assert continued.image.size == (64, 48)
    assert {(r.width, r.height) for r in reports} == {(64, 48)}  # the 16 and 32 px levels are skipped
    assert continued.stats.levels == 1
    assert continued.stats.iterations == engine.continued_iterations(engine.split_iterations(12, 3)[-1:])[0]
    scratch = stylize(photo, [stripes_style()], params)
    red = torch.tensor([200.0, 30.0, 30.0]).view(1, 3, 1, 1)
    distance = {
        name: float((image_tensor(result.image) - red).abs().mean())
        for name, result in (("continued", continued), ("scratch", scratch))
    }
    assert distance["continued"] < distance["scratch"] - 20


def test_a_continued_run_at_the_same_size_refines_and_keeps_colours(tiny_params):
    earlier = stylize(content_image(), [stripes_style()], tiny_params)
    again = stylize(
        content_image(), [stripes_style()], tiny_params.replace(preserve_color=True), start_from=earlier.image
    )
    assert again.image.size == earlier.image.size


@pytest.mark.parametrize(
    ("size", "fragment"),
    [((40, 40), "same aspect ratio"), ((30, 48), "same aspect ratio"), ((96, 72), "larger than the size")],
)
def test_start_from_of_another_shape_or_larger_is_refused_in_one_line(tiny_params, size, fragment):
    with pytest.raises(ParameterError, match=fragment) as error:
        stylize(content_image(64, 48), [stripes_style()], tiny_params, start_from=Image.new("RGB", size))
    assert error.value.parameter == "start_from"
    assert "\n" not in str(error.value)


def test_start_from_within_a_pixel_of_the_photos_shape_is_accepted():
    engine.check_start_from((1000, 333), Image.new("RGB", (512, 171)), 1024)  # 170.5 rounds either way
    engine.check_start_from((1000, 333), Image.new("RGB", (512, 170)), 1024)
