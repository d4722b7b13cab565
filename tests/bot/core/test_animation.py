"""Animations in the bot's core: the request's mapping, the clip checked while it downloads, what is
kept of it, the file posted under the upload limit, and the estimate of the acknowledgement."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image

from bot.core.animation import AnimatedResult, Pace, fit_animation
from bot.core.clip_inputs import early_refusal, is_animation, load_clip, prepare_clip_input, without_metadata
from bot.core.requests import JobKind, JobRequest, clip_params, style_params
from bot.core.settings import Settings
from nst_engine.clips import Clip, ClipLimits, ClipParams, encode_clip
from nst_engine.engine import RunStats
from tests.helpers.images import content_image, moving_square_gif, png_bytes


def test_an_animation_request_is_kept_with_its_kind_and_painted_no_larger_than_animation_size() -> None:
    settings = Settings(sizes={"small": 64, "medium": 128, "large": 512}, animation_size=96)
    request = JobRequest(size="large", kind=JobKind.ANIMATE)
    assert JobRequest.from_dict(request.to_dict()) == request
    assert style_params(settings, request).size == 96
    assert style_params(settings, JobRequest(size="small", kind=JobKind.ANIMATE)).size == 64
    assert style_params(settings, JobRequest(size="large")).size == 512, "a still is not clamped"
    assert clip_params(Settings(animation_frame_iterations=7)).frame_iterations == 7


def test_a_clip_over_the_limits_is_refused_from_the_first_bytes_that_show_it() -> None:
    data = moving_square_gif(frames=40, duration_ms=200)  # 8 s
    limits = ClipLimits(max_seconds=2.0)
    prefix = data[: len(data) // 3]
    refusal = early_refusal(prefix, limits)
    assert refusal == "The clip is longer than the limit of 2 seconds.", refusal
    assert early_refusal(data[:200], limits) is None, "too little to tell: never refused for bytes unsent"
    assert early_refusal(moving_square_gif(frames=3), limits) is None
    assert early_refusal(png_bytes(content_image(48, 40)), ClipLimits(max_pixels=32 * 32)) is None, "a still"
    too_many = early_refusal(moving_square_gif(frames=12), ClipLimits(max_source_frames=5))
    assert too_many is not None and "the limit is 5" in too_many


def test_a_one_frame_gif_is_a_still_and_a_moving_one_an_animation() -> None:
    assert is_animation(moving_square_gif(frames=2))
    assert not is_animation(moving_square_gif(frames=1))
    assert not is_animation(png_bytes(content_image(48, 40)))


def _gif_with_metadata() -> bytes:
    gif = moving_square_gif(frames=3)
    comment = b"\x21\xfe" + bytes([13]) + b"GPS 48.1,11.5" + b"\x00"
    xmp = b"\x21\xff\x0bXMP DataXMP" + bytes([9]) + b"<x:xmpmet" + b"\x00"
    body_start = gif.index(b"\x21\xf9")  # the first frame's graphic control block
    return gif[:body_start] + comment + xmp + gif[body_start:]


def test_an_animation_is_kept_as_sent_without_its_metadata_blocks() -> None:
    sent = _gif_with_metadata()
    kept = without_metadata(sent, "gif")
    assert kept is not None and b"GPS" not in kept and b"XMP" not in kept
    assert b"NETSCAPE2.0" in kept, "the loop count stays"
    assert _pixels(kept) == _pixels(sent)

    frames = [content_image(40, 32), content_image(40, 32).transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    buffer = io.BytesIO()
    frames[0].save(
        buffer, "WEBP", save_all=True, append_images=frames[1:], duration=100, exif=b"Exif\x00\x00GPS!"
    )
    webp = without_metadata(buffer.getvalue(), "webp")
    assert webp is not None and b"GPS!" not in webp and _pixels(webp) == _pixels(buffer.getvalue())
    assert struct.unpack("<I", webp[4:8])[0] == len(webp) - 8


def _pixels(data: bytes) -> list[bytes]:
    with Image.open(io.BytesIO(data)) as image:
        out = []
        for index in range(image.n_frames):
            image.seek(index)
            out.append(image.convert("RGB").tobytes())
        return out


def test_a_video_is_kept_as_the_frames_painted_and_read_back_for_a_rerun(tmp_path) -> None:  # type: ignore[no-untyped-def]
    frames = tuple(content_image(64, 48).rotate(angle) for angle in (0, 5, 10))
    video = encode_clip(Clip(frames, (100, 100, 100)), "mp4").data
    limits = ClipLimits()
    kept = prepare_clip_input(video, limits=limits, max_side=32, max_bytes=10**7)
    assert kept.extension == "mp4" and kept.clip is not None and max(kept.clip.size) <= 32
    assert kept.image is kept.clip.frames[0]
    path = tmp_path / "kept.mp4"
    assert kept.data is not None
    path.write_bytes(kept.data)
    again = load_clip(str(path), limits=limits, max_side=32)
    assert again is not None and len(again.frames) == 3
    assert load_clip(str(tmp_path / "gone.mp4"), limits=limits, max_side=32) is None


def _result(frames: int = 3, *, file: bytes | None = None, file_format: str | None = None) -> AnimatedResult:
    clip = Clip(tuple(content_image(48, 40).rotate(5 * k) for k in range(frames)), (100,) * frames)
    stats = RunStats(
        iterations=9, evaluations=9, seconds=1.0, content_loss=0, style_loss=0, tv_loss=0, total_loss=0,
        device="cpu", precision="fp32", peak_memory_bytes=0, width=48, height=40, levels=1, seed=0,
        style_targets_cached=0,
    )  # fmt: skip
    return AnimatedResult(
        image=clip.frames[0],
        stats=stats,
        frames=frames,
        clip=None if file else clip,
        file=file,
        file_format=file_format,  # type: ignore[arg-type]
    )


def test_the_posted_file_keeps_the_workers_file_or_fits_the_upload_limit_and_says_how() -> None:
    webp = encode_clip(_result().clip, "webp").data  # type: ignore[arg-type]
    as_sent = fit_animation(_result(file=webp, file_format="webp"), "webp", max_bytes=10**6)
    assert as_sent.data == webp and as_sent.note is None
    recoded = fit_animation(_result(file=webp, file_format="webp"), "gif", max_bytes=10**6)
    assert recoded.extension == "gif" and recoded.data.startswith(b"GIF")
    full = len(encode_clip(_result().clip, "webp").data)  # type: ignore[arg-type]
    shrunk = fit_animation(_result(), "webp", max_bytes=full // 3)
    assert shrunk.extension == "webp" and len(shrunk.data) <= full // 3
    assert shrunk.note is not None and "upload limit" in shrunk.note
    with pytest.raises(ValueError):
        fit_animation(_result(), "webp", max_bytes=10)


def test_the_estimate_grows_with_frames_and_learns_from_a_painted_clip() -> None:
    params = Settings(iterations=100, scales=2).base_params().replace(size=128)
    pace = Pace()
    few, many = (pace.estimate(n, (256, 192), params, ClipParams()) for n in (2, 20))
    assert 0 < few < many
    pace.learn(many * 2, 20, (256, 192), params, ClipParams())  # twice as slow as thought
    assert pace.estimate(20, (256, 192), params, ClipParams()) == pytest.approx(many * 1.5)
