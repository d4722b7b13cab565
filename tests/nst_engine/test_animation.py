import threading

import numpy as np
import pytest
from PIL import Image, ImageFilter

from nst_engine import Cancelled, ParameterError, StyleParams, stylize
from nst_engine.animation import stylize_clip
from nst_engine.clips import Clip, ClipParams
from tests.helpers.images import content_image, stripes_style

#: Tiny runs: one scale at 48 px, a handful of iterations.
PARAMS = StyleParams(size=48, iterations=8, scales=1)


def textured(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    noise = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    return noise.filter(ImageFilter.GaussianBlur(2))


def moving_square_clip(frames: int = 4, step: int = 2) -> Clip:
    """A textured square sliding right over a still textured background: 48×32 px."""
    background = textured(48, 32, seed=1)
    square = textured(16, 16, seed=2)
    pictures = []
    for k in range(frames):
        frame = background.copy()
        frame.paste(square, (6 + step * k, 8))
        pictures.append(frame)
    return Clip(tuple(pictures), tuple(80 + 10 * k for k in range(frames)), plays=3)


def test_temporal_loss_lowers_flicker():
    clip = moving_square_clip()
    style = [stripes_style()]
    temporal = stylize_clip(clip, style, PARAMS, ClipParams(temporal_weight=2000, frame_iterations=8))
    independent = stylize_clip(clip, style, PARAMS, ClipParams(temporal_weight=0))
    assert temporal.stats.flicker < 0.7 * independent.stats.flicker
    assert temporal.stats.photo_flicker == pytest.approx(independent.stats.photo_flicker)
    assert temporal.stats.photo_flicker < temporal.stats.flicker  # the photo is the floor


def test_a_painted_clip_keeps_frame_count_timing_loop_and_size():
    clip = moving_square_clip(frames=3)
    result = stylize_clip(clip, [stripes_style()], PARAMS, ClipParams(frame_iterations=3))
    assert len(result.clip.frames) == 3
    assert result.clip.durations_ms == clip.durations_ms
    assert result.clip.plays == 3
    assert result.clip.size == (48, 32)
    assert result.stats.iterations == 8 + 2 * 3
    assert len(result.stats.frame_seconds) == 3


def test_repeated_frames_are_painted_once_and_keep_their_time():
    clip = moving_square_clip(frames=2)
    a, b = clip.frames
    repeated = Clip((a, a.copy(), a.copy(), b, b.copy()), (100, 100, 100, 50, 50))
    frames_seen: set[tuple[int, int]] = set()
    result = stylize_clip(
        repeated,
        [stripes_style()],
        PARAMS,
        ClipParams(frame_iterations=3),
        progress=lambda p: frames_seen.add((p.frame, p.frames)),
    )
    assert len(result.clip.frames) == 2
    assert result.clip.durations_ms == (300, 100)
    assert result.stats.source_frames == 5 and result.stats.frames == 2
    assert frames_seen == {(1, 2), (2, 2)}


def test_progress_counts_frames_and_steps_over_the_whole_clip():
    reports = []
    stylize_clip(
        moving_square_clip(frames=3),
        [stripes_style()],
        PARAMS,
        ClipParams(frame_iterations=4),
        progress=reports.append,
        preview_every=4,
        preview_size=24,
    )
    total = 8 + 2 * 4
    assert {r.total for r in reports} == {total}
    steps = [r.step for r in reports]
    assert steps == sorted(steps) and steps[-1] == total
    fractions = [r.fraction for r in reports]  # by time over the whole clip: it never restarts
    assert fractions == sorted(fractions) and 0 < fractions[-1] <= 1
    assert [r.frame for r in reports] == sorted(r.frame for r in reports)
    assert {r.frame for r in reports} == {1, 2, 3} and {r.frames for r in reports} == {3}
    assert any(r.eta is not None for r in reports)
    later = [r.eta for r in reports if r.frame == 2 and r.eta is not None]
    assert later and later[0] > 0
    previews = [r.preview for r in reports if r.preview is not None]
    assert previews and max(previews[0].size) <= 24


def test_a_still_reports_frame_one_of_one():
    reports = []
    stylize(
        content_image(),
        [stripes_style()],
        StyleParams(size=32, iterations=2, scales=1),
        progress=reports.append,
    )
    assert reports and {(r.frame, r.frames) for r in reports} == {(1, 1)}


def test_cancel_stops_the_clip_in_the_middle_of_a_frame():
    cancel = threading.Event()
    frames_seen = []

    def on_progress(report):
        frames_seen.append(report.frame)
        if report.frame == 2:
            cancel.set()

    with pytest.raises(Cancelled):
        stylize_clip(
            moving_square_clip(frames=4),
            [stripes_style()],
            PARAMS,
            ClipParams(frame_iterations=6),
            progress=on_progress,
            cancel=cancel,
        )
    assert max(frames_seen) == 2
    assert frames_seen.count(2) == 1  # the next evaluation saw the event


def test_a_heavy_temporal_weight_holds_the_previous_painting_where_the_flow_is_trusted():
    """With a huge weight the second frame is the first one moved along the flow (where trusted)."""
    clip = moving_square_clip(frames=2)
    held = stylize_clip(clip, [stripes_style()], PARAMS, ClipParams(temporal_weight=1e7, frame_iterations=5))
    free = stylize_clip(clip, [stripes_style()], PARAMS, ClipParams(temporal_weight=0))
    assert held.stats.flicker < 1.0
    assert free.stats.flicker > 3 * held.stats.flicker


@pytest.mark.parametrize(
    ("changes", "parameter"),
    [({"temporal_weight": -1}, "temporal_weight"), ({"frame_iterations": 0}, "frame_iterations")],
)
def test_bad_clip_params_name_the_field(changes, parameter):
    with pytest.raises(ParameterError) as caught:
        ClipParams(**changes)
    assert caught.value.parameter == parameter
