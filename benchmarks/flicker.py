#!/usr/bin/env python3
"""Flicker, look and cost of painted clips: temporal (Ruder et al.) against every frame on its own.

Two clips, each painted twice in this one run (the machine may be shared: compare within a run):

* a camera pan across a photo (frames cropped from it, moving by a whole number of pixels, so
  the true warp and the pixels that entered the picture are known exactly);
* a real clip (an excerpt of a video: camera motion, occlusions, a moving character), decoded as
  a user's would be (``ClipLimits()``: a 5.3 s, 25 fps clip is thinned to 48 frames, about 9 a
  second), where the warp is the photo frames' optical flow (DIS) and the pixels it cannot trust
  are left out.

Flicker = the mean absolute change (0-255) between consecutive painted frames after moving the
earlier one along the photo's motion, over the pixels that motion is trusted for; the photo frames'
own flicker is the floor (resampling, lighting, noise). Temporal must be at most half of independent.

Look: each temporal frame's terms from the independent judge (``--judge``, neural-style's content
and style losses) against those of the still painted from the same frame (the independent run).

Cost: seconds per frame of temporal clips at ``--cost-sizes``: the first frame (a still's plan,
``--cost-first-iterations``) and the later frames.

    python benchmarks/flicker.py --pan-photo ../shared/images/tubingen.jpg \\
        --video ../shared/images/bigbuckbunny.mp4 --style ../shared/images/starry_night.jpg \\
        --judge ../shared/quality/judge.py --save-dir /tmp/flicker --figure docs/images/clip-flicker.jpg
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nst_engine import StyleParams  # noqa: E402 - after the path set-up above
from nst_engine.animation import ClipResult, stylize_clip  # noqa: E402
from nst_engine.clips import Clip, ClipLimits, ClipParams, decode_clip  # noqa: E402
from nst_engine.flow import flicker  # noqa: E402
from nst_engine.tensors import image_to_tensor  # noqa: E402

CPU = torch.device("cpu")


def pan_clip(photo: Image.Image, size: int, frames: int, step: tuple[int, int]) -> Clip:
    """Crops of ``photo`` (scaled to 1.5x ``size`` wide) moving by ``step`` pixels a frame."""
    width = round(size * 1.5)
    scaled = photo.resize((width, round(photo.height * width / photo.width)), Image.Resampling.LANCZOS)
    height = round(size * 0.75)
    dx, dy = step
    crops = tuple(scaled.crop((k * dx, k * dy, k * dx + size, k * dy + height)) for k in range(frames))
    return Clip(crops, (80,) * frames)


def true_pan_motion(size: tuple[int, int], step: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact backward flow of a pan (frame k's pixel p was at p + step in frame k-1) and the
    pixels whose source lies inside the previous frame."""
    width, height = size
    dx, dy = step
    backward = torch.zeros(1, 2, height, width)
    backward[:, 0], backward[:, 1] = dx, dy
    mask = torch.zeros(1, 1, height, width)
    mask[..., : height - dy, : width - dx] = 1.0
    return backward, mask


def pan_flicker(frames: tuple[Image.Image, ...], step: tuple[int, int]) -> float:
    backward, mask = true_pan_motion(frames[0].size, step)
    tensors = [image_to_tensor(frame.convert("RGB"), CPU) for frame in frames]
    return flicker(tensors, [backward] * (len(frames) - 1), [mask] * (len(frames) - 1))


def judge_terms(judge: Path, content: Image.Image, style: Path, output: Image.Image) -> tuple[float, float]:
    """(content, style) from the independent judge, run as its README says."""
    with tempfile.TemporaryDirectory() as folder:
        content_path, output_path = Path(folder) / "content.png", Path(folder) / "output.png"
        content.save(content_path)
        output.save(output_path)
        done = subprocess.run(
            [sys.executable, str(judge), str(content_path), str(style), str(output_path)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    match = re.search(r"content=(\S+) style=(\S+)", done.stdout)
    assert match, done.stdout + done.stderr
    return float(match.group(1)), float(match.group(2))


def paint(clip: Clip, style: Image.Image, params: StyleParams, clip_params: ClipParams) -> ClipResult:
    started = time.perf_counter()
    result = stylize_clip(clip, [style], params, clip_params)
    print(f"  painted {len(result.clip.frames)} frames in {time.perf_counter() - started:.0f} s", flush=True)
    return result


def side_by_side(independent: Clip, temporal: Clip, frames: int, path: Path) -> None:
    """Rows: independent, temporal; columns: consecutive frames. A small JPEG for the docs."""
    width, height = independent.size
    label = 14
    figure = Image.new("RGB", (width * frames, (height + label) * 2), (255, 255, 255))
    draw = ImageDraw.Draw(figure)
    for row, (name, clip) in enumerate((("independent", independent), ("temporal", temporal))):
        top = row * (height + label)
        draw.text((4, top + 1), f"{name}: frames 1-{frames}", fill=(0, 0, 0))
        for column in range(frames):
            figure.paste(clip.frames[column], (column * width, top + label))
    for quality in (85, 75, 65, 55):
        figure.save(path, quality=quality, optimize=True)
        if path.stat().st_size < 150_000:
            break


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pan-photo", type=Path, required=True)
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--style", type=Path, required=True)
    parser.add_argument("--judge", type=Path, required=True)
    parser.add_argument("--size", type=int, default=128, help="longest side of the flicker runs")
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument(
        "--iterations", type=int, default=80, help="a still's plan (first frame, independent)"
    )
    parser.add_argument("--frame-iterations", type=int, default=ClipParams().frame_iterations)
    parser.add_argument("--temporal-weight", type=float, default=ClipParams().temporal_weight)
    parser.add_argument("--video-start", type=int, default=40, help="first frame of the excerpt")
    parser.add_argument("--look-frames", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--cost-sizes", type=int, nargs="*", default=[256, 384])
    parser.add_argument("--cost-frames", type=int, default=3)
    parser.add_argument("--cost-first-iterations", type=int, default=StyleParams().iterations)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--figure", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}", flush=True)

    style = Image.open(args.style).convert("RGB")
    params = StyleParams(size=args.size, iterations=args.iterations)
    temporal = ClipParams(temporal_weight=args.temporal_weight, frame_iterations=args.frame_iterations)
    independent = ClipParams(temporal_weight=0)
    step = (2, 1)
    pan = pan_clip(Image.open(args.pan_photo).convert("RGB"), args.size, args.frames, step)
    source = decode_clip(args.video, ClipLimits(), max_side=args.size)
    video = Clip(
        source.frames[args.video_start : args.video_start + args.frames],
        source.durations_ms[args.video_start : args.video_start + args.frames],
    )

    rows = []
    looks = []
    for name, clip in (("camera pan (true warp)", pan), ("Big Buck Bunny excerpt (DIS flow)", video)):
        print(name, flush=True)
        held = paint(clip, style, params, temporal)
        free = paint(clip, style, params, independent)
        if clip is pan:
            values = [pan_flicker(c.frames, step) for c in (held.clip, free.clip, clip)]
        else:
            values = [held.stats.flicker, free.stats.flicker, held.stats.photo_flicker]
        rows.append((name, *values, held.stats.seconds, free.stats.seconds))
        for k in args.look_frames:
            if k < len(clip.frames):
                ours = judge_terms(args.judge, clip.frames[k], args.style, held.clip.frames[k])
                still = judge_terms(args.judge, clip.frames[k], args.style, free.clip.frames[k])
                looks.append((name, k + 1, ours[0] / still[0], ours[1] / still[1]))
        if clip is video and args.figure is not None:
            side_by_side(free.clip, held.clip, min(4, len(clip.frames)), args.figure)

    print(
        f"\n| clip ({args.size} px, {args.frames} frames) | temporal | independent | photo frames (floor) "
        "| temporal / independent | seconds temporal | seconds independent |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, held_value, free_value, floor, held_seconds, free_seconds in rows:
        print(
            f"| {name} | {held_value:.2f} | {free_value:.2f} | {floor:.2f} | {held_value / free_value:.2f} "
            f"| {held_seconds:.0f} | {free_seconds:.0f} |"
        )
    print("\n| clip | frame | content: temporal / still | style: temporal / still |")
    print("|---|---|---|---|")
    for name, frame, content_ratio, style_ratio in looks:
        print(f"| {name} | {frame} | {content_ratio:.2f} | {style_ratio:.2f} |")

    if args.cost_sizes:
        print(
            f"\n| size | first frame (s, {args.cost_first_iterations} iterations) "
            f"| later frame (s, {args.frame_iterations} iterations) | 24 frames (estimate, s) |"
        )
        print("|---|---|---|---|")
    for size in args.cost_sizes:
        clip = pan_clip(Image.open(args.pan_photo).convert("RGB"), size, args.cost_frames, step)
        result = paint(clip, style, StyleParams(size=size, iterations=args.cost_first_iterations), temporal)
        first, *later = result.stats.frame_seconds
        per_later = sum(later) / len(later)
        print(f"| {size} | {first:.1f} | {per_later:.1f} | {first + 23 * per_later:.0f} |", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
