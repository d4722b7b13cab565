import io
import struct
import time

import av
import numpy as np
import pytest
from PIL import Image, ImageDraw

from nst_engine import InvalidImage
from nst_engine.clips import (
    Clip,
    ClipLimits,
    check_limits,
    clip_format_for,
    decode_clip,
    encode_clip,
    is_clip,
    probe_clip,
    thin_evenly,
)


def square_frame(offset: int, size: tuple[int, int] = (48, 32)) -> Image.Image:
    """A red square on a blue-grey field, its left edge at 4 + offset."""
    image = Image.new("RGB", size, (70, 90, 130))
    draw = ImageDraw.Draw(image)
    draw.rectangle([4 + offset, 8, 18 + offset, 22], fill=(220, 50, 40))
    return image


def square_clip(frames: int = 4, durations: tuple[int, ...] | None = None, plays: int = 0) -> Clip:
    durations = durations or tuple(60 + 40 * k for k in range(frames))
    return Clip(tuple(square_frame(3 * k) for k in range(frames)), durations, plays)


def save_animation(clip: Clip, pillow_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    first, *rest = clip.frames
    first.save(
        buffer, pillow_format, save_all=True, append_images=rest, duration=list(clip.durations_ms), **options
    )
    return buffer.getvalue()


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)).mean())


# ------------------------------------------------------------------ timing and loops, each format
@pytest.mark.parametrize("clip_format", ["gif", "webp", "mp4"])
def test_frame_timing_and_pictures_survive_each_output_format(clip_format):
    clip = square_clip(durations=(60, 100, 140, 300))
    encoded = encode_clip(clip, clip_format)
    back = decode_clip(encoded.data)
    assert len(back.frames) == 4
    assert back.durations_ms == (60, 100, 140, 300)
    for original, decoded in zip(clip.frames, back.frames, strict=True):
        assert mean_difference(original, decoded) < 6
    assert back.size == (48, 32)


@pytest.mark.parametrize(
    ("clip_format", "plays"), [("gif", 0), ("gif", 1), ("gif", 3), ("webp", 0), ("webp", 2)]
)
def test_the_loop_count_survives(clip_format, plays):
    back = decode_clip(encode_clip(square_clip(plays=plays), clip_format).data)
    assert back.plays == plays


def test_mp4_is_h264_yuv420p_with_even_sides_and_the_index_first():
    frames = tuple(square_frame(k, size=(47, 33)) for k in range(3))
    encoded = encode_clip(Clip(frames, (100, 100, 100)), "mp4")
    assert (encoded.width, encoded.height) == (46, 32)
    assert encoded.data.find(b"moov") < encoded.data.find(b"mdat")  # faststart
    with av.open(io.BytesIO(encoded.data)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"


def test_gif_uses_one_palette_so_an_unchanged_area_keeps_its_colour():
    clip = square_clip(frames=3)
    back = decode_clip(encode_clip(clip, "gif").data)
    corners = {frame.getpixel((46, 30)) for frame in back.frames}
    assert len(corners) == 1


def test_apng_input_keeps_timing_and_plays():
    clip = square_clip(durations=(50, 120, 70, 200), plays=2)
    back = decode_clip(save_animation(clip, "PNG", loop=2))
    assert back.durations_ms == (50, 120, 70, 200) and back.plays == 2


def test_a_gif_frame_of_zero_delay_shows_for_100_ms_as_browsers_show_it():
    frames = [square_frame(3 * k) for k in range(4)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=[0, 0, 100, 10], loop=0)
    data = buffer.getvalue()
    assert decode_clip(data).durations_ms == (100, 100, 100, 100)
    assert probe_clip(data).seconds == pytest.approx(0.4)


def test_transparent_gif_frames_are_composited_on_white():
    frames = [Image.new("RGBA", (32, 32), (0, 0, 0, 0)) for _ in range(2)]
    ImageDraw.Draw(frames[1]).rectangle([0, 0, 15, 31], fill=(0, 0, 255, 255))
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0, disposal=2)
    back = decode_clip(buffer.getvalue())
    assert back.frames[0].getpixel((20, 20)) == (255, 255, 255)
    assert back.frames[1].getpixel((5, 5)) == (0, 0, 255)


# ------------------------------------------------------------------ probing
def test_probe_reads_size_frames_and_length_of_each_kind():
    clip = square_clip(durations=(100, 200, 300, 400))
    for data, kind in [
        (save_animation(clip, "GIF", loop=0), "gif"),
        (save_animation(clip, "WEBP", loop=0), "webp"),
        (save_animation(clip, "PNG", loop=0), "png"),
        (encode_clip(clip, "mp4").data, "video"),
    ]:
        info = probe_clip(data)
        assert (info.kind, info.width, info.height, info.frames) == (kind, 48, 32, 4)
        assert info.seconds == pytest.approx(1.0, abs=0.01)


def test_a_still_is_no_clip():
    buffer = io.BytesIO()
    square_frame(0).save(buffer, "PNG")
    assert not is_clip(buffer.getvalue())
    assert not is_clip(b"not an image at all")
    assert is_clip(save_animation(square_clip(), "GIF", loop=0))


def test_a_too_long_clip_is_refused_from_the_header_with_the_limit():
    data = save_animation(square_clip(durations=(4000, 4000, 4000, 4000)), "WEBP", loop=0)
    with pytest.raises(InvalidImage, match=r"^The clip is 16\.0 seconds long; the limit is 10 seconds\.$"):
        check_limits(probe_clip(data), ClipLimits())
    with pytest.raises(InvalidImage, match="limit is 10 seconds"):
        decode_clip(data)


# ------------------------------------------------------------------ repeats and thinning
def test_repeated_frames_become_one_frame_with_their_total_time():
    a, b = square_frame(0), square_frame(5)
    clip = Clip((a, a.copy(), b, b.copy(), b.copy(), a), (100, 50, 80, 80, 40, 100))
    merged = clip.without_repeats()
    assert len(merged.frames) == 3
    assert merged.durations_ms == (150, 200, 100)


def test_a_clip_over_the_frame_limit_is_thinned_evenly_keeping_its_length():
    frames = [square_frame(k % 20) for k in range(30)]
    kept, durations = thin_evenly(frames, [33] * 30, 10)
    assert len(kept) == 10 and sum(durations) == 990
    assert kept[1] is frames[3] and kept[9] is frames[27]


def test_decode_thins_a_video_to_the_frame_limit():
    clip = Clip(tuple(square_frame(k) for k in range(12)), (40,) * 12)
    back = decode_clip(encode_clip(clip, "mp4").data, ClipLimits(max_frames=6))
    assert len(back.frames) == 6 and sum(back.durations_ms) == 480


def test_max_side_shrinks_frames_while_decoding():
    back = decode_clip(save_animation(square_clip(), "GIF", loop=0), max_side=24)
    assert back.size == (24, 16)


# ------------------------------------------------------------------ hostile files
def gif_with_frames(count: int) -> bytes:
    """A valid GIF of ``count`` 16 px frames of 0 ms: Pillow writes two, and the second frame's
    blocks (control extension, descriptor, pixels) are repeated, as a hostile file could."""
    buffer = io.BytesIO()
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((0, 0, 0), (255, 255, 255))]
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=0, loop=0)
    data = buffer.getvalue()
    second = data.rindex(b"\x21\xf9\x04")
    assert data.endswith(b"\x3b")
    return data[:second] + data[second:-1] * (count - 1) + b"\x3b"


def test_a_huge_frame_count_is_refused_quickly():
    data = gif_with_frames(200_000)
    started = time.perf_counter()
    with pytest.raises(InvalidImage, match=r"^The clip has more than 600 frames; the limit is 600\.$"):
        decode_clip(data)
    assert time.perf_counter() - started < 5


def test_zero_delay_frames_cannot_sneak_past_the_length_limit():
    with pytest.raises(InvalidImage, match="seconds"):
        decode_clip(gif_with_frames(150))  # 0 ms each counts as 100 ms: 15 seconds


def test_huge_dimensions_are_refused_from_the_header():
    header = bytearray(save_animation(square_clip(), "GIF", loop=0))
    header[6:10] = struct.pack("<HH", 60000, 60000)
    started = time.perf_counter()
    with pytest.raises(
        InvalidImage, match=r"^The image is 60000×60000 pixels \(3600 megapixels\); the limit"
    ):
        decode_clip(bytes(header))
    assert time.perf_counter() - started < 2


def test_a_video_over_the_pixel_limit_is_refused_before_decoding():
    clip = Clip(tuple(square_frame(k, size=(96, 64)) for k in range(3)), (100, 100, 100))
    data = encode_clip(clip, "mp4").data
    with pytest.raises(InvalidImage, match="megapixels"):
        decode_clip(data, ClipLimits(max_pixels=64 * 64))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"hello, this is text", "not an animation or video"),
        (b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64, "not an animation or video"),
    ],
)
def test_junk_is_refused_with_one_sentence(data, message):
    with pytest.raises(InvalidImage, match=message) as caught:
        decode_clip(data)
    assert "\n" not in str(caught.value)


def test_a_cut_off_clip_is_refused_as_damaged():
    data = save_animation(square_clip(), "GIF", loop=0)
    with pytest.raises(InvalidImage, match="damaged or incomplete"):
        decode_clip(data[: len(data) // 2])


def test_a_file_over_the_byte_limit_is_refused_unread():
    with pytest.raises(InvalidImage, match="the limit is 100 bytes"):
        decode_clip(save_animation(square_clip(), "GIF", loop=0), max_bytes=100)


# ------------------------------------------------------------------ encoding under a byte limit
def test_encoding_under_a_byte_limit_lowers_quality_then_size():
    rng = np.random.default_rng(0)
    frames = tuple(Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)) for _ in range(4))
    clip = Clip(frames, (100,) * 4)
    full = encode_clip(clip, "webp")
    limited = encode_clip(clip, "webp", max_bytes=len(full.data) // 4)
    assert len(limited.data) <= len(full.data) // 4 and limited.frames == 4
    assert decode_clip(limited.data).durations_ms == (100,) * 4


def test_extensions_choose_the_output_format():
    assert clip_format_for("out.MP4") == "mp4"
    assert clip_format_for("a/b.gif") == "gif"
    assert clip_format_for("x.webp") == "webp"
    assert clip_format_for("x.png") is None


@pytest.mark.parametrize(("container", "codec"), [("webm", "libvpx-vp9"), ("mov", "libx264")])
def test_webm_and_mov_clips_are_read(tmp_path, container, codec):
    path = tmp_path / f"clip.{container}"
    with av.open(str(path), mode="w", format=container) as output:
        stream = output.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        for k in range(5):
            frame = av.VideoFrame.from_ndarray(np.asarray(square_frame(2 * k)), format="rgb24")
            frame.pts = k
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    info = probe_clip(path)
    assert (info.kind, info.width, info.height) == ("video", 48, 32)
    clip = decode_clip(path)
    assert len(clip.frames) == 5 and clip.size == (48, 32)
    assert clip.durations_ms == (100,) * 5
    assert mean_difference(clip.frames[4], square_frame(8)) < 8
