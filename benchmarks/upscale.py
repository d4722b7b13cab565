"""Bigger pictures: a 2x upscale against a bicubic resize and a run from scratch, peak memory with
and without a memory budget, and the time-budget frontier; prints tables for docs/benchmarks.md.

Every figure of the judge's comes from ``../shared/quality/judge.py`` (run as a separate process:
it shares no code with the project), on the saved pictures.

- upscale: a default 512 px painting, then (a) resized to 1024 px bicubically, (b) continued to
  1024 px (``stylize(start_from=...)``), with the judge's terms after every ``--step`` iterations
  of the new level (one run; the trajectory up to N iterations is the run with N), and (c) painted
  from scratch at 1024 px with the defaults. Seconds are the engine's own (model load excluded).
- memory: each size in its own child process (its own peak RSS), a few iterations at full size,
  with the default budget and with ``--budget`` GiB.
- frontier: 512 px with ``time_budget`` of 30, 60 and 90 s, against neural-style's reference.

    python benchmarks/upscale.py --parts upscale frontier memory --save-dir /tmp/upscale
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent.parent / "shared" if (REPO.parent.parent / "shared").is_dir() else REPO.parent / "shared"
sys.path.insert(0, str(REPO))

from PIL import Image  # noqa: E402

from nst_engine import Progress, StyleParams, stylize  # noqa: E402
from nst_engine.engine import split_iterations  # noqa: E402

JUDGE_LINE = re.compile(r"^(\S+) (\d+)x(\d+) content=(\S+) style=(\S+) objective=(\S+)(.*)$")


def judge(
    content: Path, style: Path, outputs: list[Path], reference: Path | None = None
) -> dict[str, dict[str, float]]:
    command = [
        sys.executable,
        str(SHARED / "quality" / "judge.py"),
        str(content),
        str(style),
        *map(str, outputs),
    ]
    if reference is not None:
        command += ["--reference", str(reference)]
    text = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    results = {}
    for line in text.splitlines():
        match = JUDGE_LINE.match(line)
        if match:
            results[match[1]] = {
                "content": float(match[4]),
                "style": float(match[5]),
                "objective": float(match[6]),
            }
    return results


def upscale(args: argparse.Namespace) -> None:
    out = args.save_dir
    photo, painting = Image.open(args.content), Image.open(args.style)
    started = time.perf_counter()
    small = stylize(photo, [painting], StyleParams(size=args.size))
    print(f"# {args.size} px painting: {small.stats.seconds:.1f} s ({small.stats.precision})", flush=True)
    small.image.save(out / "painted-small.png")
    width, height = small.image.width * 2, small.image.height * 2
    small.image.resize((width, height), Image.Resampling.BICUBIC).save(out / "bicubic-1024.png")

    steps: dict[int, float] = {}

    def on_progress(progress: Progress) -> None:
        if progress.preview is not None:
            progress.preview.save(out / f"continued-1024-{progress.step:03d}.png")
            steps[progress.step] = progress.elapsed

    import nst_engine.engine as engine

    # The longest continuation measured; the trajectory up to N iterations is the run with N.
    engine.CONTINUE_SHARE = args.most / split_iterations(150, 3)[-1]
    continued = stylize(
        photo,
        [painting],
        StyleParams(size=2 * args.size),
        start_from=small.image,
        progress=on_progress,
        preview_every=args.step,
        preview_size=4096,
    )
    print(
        f"# continued: {continued.stats.iterations} iterations, {continued.stats.seconds:.1f} s", flush=True
    )
    scratch = stylize(photo, [painting], StyleParams(size=2 * args.size))
    scratch.image.save(out / "scratch-1024.png")
    print(
        f"# from scratch: {scratch.stats.seconds:.1f} s; all three in {time.perf_counter() - started:.0f} s"
    )

    names = ["bicubic-1024.png", *[f"continued-1024-{s:03d}.png" for s in sorted(steps)], "scratch-1024.png"]
    scores = judge(args.content, args.style, [out / n for n in names])
    bicubic = scores[str(out / "bicubic-1024.png")]
    print(
        f"\n| {width}x{height} from | iterations at {width} px | judge's content | judge's style"
        " | style vs bicubic | seconds | vs from scratch |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in names:
        s = scores[str(out / name)]
        if name.startswith("bicubic"):
            label, iterations, seconds = f"bicubic resize of the {args.size} px painting", "0", 0.0
        elif name.startswith("scratch"):
            label, iterations, seconds = (
                "from scratch (defaults)",
                f"{scratch.stats.iterations} (3 levels)",
                scratch.stats.seconds,
            )
        else:
            step = int(name[-7:-4])
            label, iterations, seconds = f"continued from the {args.size} px painting", str(step), steps[step]
        print(
            f"| {label} | {iterations} | {s['content']:.4g} | {s['style']:.4g}"
            f" | {s['style'] / bicubic['style']:.2f} | {seconds:.1f}"
            f" | {seconds / scratch.stats.seconds:.2f} |"
        )


def tiled(args: argparse.Namespace) -> None:
    """The continuation of the upscale part again, with a memory budget that forces tiles."""
    from nst_engine import preload, tiling
    from nst_engine.engine import lbfgs_history

    out = args.save_dir
    photo, painting = Image.open(args.content), Image.open(args.style)
    small = Image.open(out / "painted-small.png").convert("RGB")
    import nst_engine.engine as engine

    engine.CONTINUE_SHARE = args.most / split_iterations(150, 3)[-1]
    params = StyleParams(size=2 * args.size)
    preload(params)
    width, height = small.width * 2, small.height * 2
    state = tiling.level_state_bytes(width, height, lbfgs_history(3 * width * height))
    wanted = tiling.memory_in_use(__import__("torch").device("cpu")) + state
    wanted += tiling.evaluation_bytes(width, height, "fp32") * args.tile_share
    budget = wanted / (1 - tiling.BUDGET_HEADROOM) / (1 << 30)
    result = stylize(photo, [painting], params.replace(memory_budget=budget), start_from=small)
    result.image.save(out / "continued-tiled.png")
    untiled = out / f"continued-1024-{args.most:03d}.png"
    scores = judge(args.content, args.style, [untiled, out / "continued-tiled.png"])
    a, b = scores[str(untiled)], scores[str(out / "continued-tiled.png")]
    print(
        f"\n| {width}x{height} continued | budget GiB | judge's content | judge's style"
        " | objective | vs untiled |"
    )
    print("|---|---|---|---|---|---|")
    print(f"| whole | default | {a['content']:.4g} | {a['style']:.4g} | {a['objective']:.4g} | 1.00 |")
    print(
        f"| tiles | {budget:.2f} | {b['content']:.4g} | {b['style']:.4g} | {b['objective']:.4g}"
        f" | {b['objective'] / a['objective']:.3f} |"
    )


def pictures(args: argparse.Namespace) -> None:
    """Side-by-side crops for docs/images (JPEG under 150 KB): bicubic | continued | from scratch,
    and the tiled continuation's middle (where its tiles meet) against the untiled one."""
    out, target = args.save_dir, args.images
    target.mkdir(parents=True, exist_ok=True)

    def side_by_side(names: list[str], box: tuple[int, int, int, int], file: str) -> None:
        crops = [Image.open(out / name).convert("RGB").crop(box) for name in names]
        sheet = Image.new(
            "RGB", (sum(c.width for c in crops) + 8 * (len(crops) - 1), crops[0].height), "white"
        )
        x = 0
        for crop in crops:
            sheet.paste(crop, (x, 0))
            x += crop.width + 8
        for quality in (88, 80, 72, 64, 56):
            sheet.save(target / file, quality=quality, optimize=True)
            if (target / file).stat().st_size < 150_000:
                break
        print(f"{target / file}: {', '.join(names)} {box}, {(target / file).stat().st_size // 1024} KB")

    with Image.open(out / "bicubic-1024.png") as big:
        width, height = big.size
    side = min(width, height) // 2
    left, top = width // 2 - side // 2, height // 2 - side // 2
    box = (left, top, left + side, top + side)
    default = f"continued-1024-{args.most:03d}.png"
    side_by_side(
        ["bicubic-1024.png", default, "scratch-1024.png"], box, "upscale-bicubic-continued-scratch.jpg"
    )
    if (out / "continued-tiled.png").exists():
        side_by_side([default, "continued-tiled.png"], box, "upscale-untiled-tiled.jpg")


def memory_child(size: int, budget: float | None, iterations: int) -> None:
    """One size in this process: print a JSON line with its peak RSS and tiling."""
    import logging

    from tests.helpers.images import content_image

    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logging.getLogger("nst_engine.engine").addHandler(Keep())
    logging.getLogger("nst_engine.engine").setLevel(logging.INFO)
    photo = (
        Image.open(SHARED / "images" / "tubingen.jpg")
        if (SHARED / "images").is_dir()
        else content_image(1024, 768)
    )
    painting = Image.open(SHARED / "images" / "starry_night.jpg")
    params = StyleParams(size=size, iterations=iterations, scales=1, memory_budget=budget)
    result = stylize(photo, [painting], params)
    tiles = next((m.split(" tiles")[0].rsplit(" ", 1)[-1] for m in records if "tiles to fit" in m), "1")
    print(
        json.dumps(
            {
                "size": f"{result.stats.width}x{result.stats.height}",
                "budget": budget,
                "tiles": int(tiles),
                "peak_gib": result.stats.peak_memory_bytes / (1 << 30),
                "seconds": result.stats.seconds,
                "evaluations": result.stats.evaluations,
                "precision": result.stats.precision,
            }
        )
    )


def memory(args: argparse.Namespace) -> None:
    print("\n| size | budget | tiles | peak RSS GiB | seconds | evaluations |")
    print("|---|---|---|---|---|---|")
    for run in args.runs:
        size_text, _, budget_text = run.partition(":")
        size, budget = int(size_text), None if budget_text in ("", "default") else float(budget_text)
        for _ in (1,):
            command = [
                sys.executable,
                __file__,
                "--memory-child",
                str(size),
                "--iterations",
                str(args.iterations),
            ]
            if budget is not None:
                command += ["--budget", str(budget)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                print(
                    f"| {size} | {budget or 'default'} | failed: {done.stderr.strip().splitlines()[-1:]} |",
                    flush=True,
                )
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            label = "default" if budget is None else f"{budget:g} GiB"
            print(
                f"| {row['size']} | {label} | {row['tiles']} | {row['peak_gib']:.2f} | {row['seconds']:.0f} |"
                f" {row['evaluations']} |",
                flush=True,
            )


def frontier(args: argparse.Namespace) -> None:
    out = args.save_dir
    photo, painting = Image.open(args.content), Image.open(args.style)
    names, seconds = [], {}
    for budget in args.budgets:
        result = stylize(photo, [painting], StyleParams(size=args.size, time_budget=budget))
        name = out / f"budget-{budget:g}.png"
        result.image.save(name)
        names.append(name)
        seconds[str(name)] = (budget, result.stats.seconds, result.stats.iterations)
    scores = judge(args.content, args.style, names, reference=args.reference)
    reference = judge(args.content, args.style, [args.reference])[str(args.reference)]
    print("\n| time budget s | seconds taken | iterations | judge's objective | vs neural-style |")
    print("|---|---|---|---|---|")
    for name in names:
        budget, taken, iterations = seconds[str(name)]
        objective = scores[str(name)]["objective"]
        print(
            f"| {budget:g} | {taken:.1f} | {iterations} | {objective:.4g}"
            f" | {objective / reference['objective']:.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", nargs="+", default=["upscale", "frontier", "memory"])
    parser.add_argument("--content", type=Path, default=SHARED / "images" / "tubingen.jpg")
    parser.add_argument("--style", type=Path, default=SHARED / "images" / "starry_night.jpg")
    parser.add_argument(
        "--reference", type=Path, default=SHARED / "quality" / "reference" / "tubingen_starry.png"
    )
    parser.add_argument("--save-dir", type=Path, default=Path("/tmp/upscale"))
    parser.add_argument("--step", type=int, default=11, help="judge the continuation every N iterations")
    parser.add_argument("--most", type=int, default=33, help="iterations of the longest continuation")
    parser.add_argument(
        "--size", type=int, default=512, help="the painting to upscale, and the frontier's size"
    )
    parser.add_argument(
        "--runs",
        nargs="+",
        default=["1024:default", "1024:2", "2048:default", "2048:3", "4096:8", "4096:default"],
        help="SIZE:BUDGET (GiB, or default) of the memory part's child processes",
    )
    parser.add_argument("--budget", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--iterations", type=int, default=1, help="iterations of the memory part's runs")
    parser.add_argument("--budgets", type=float, nargs="+", default=[30, 60, 90])
    parser.add_argument(
        "--tile-share",
        type=float,
        default=0.45,
        help="tiled part: the budget fits this share of one evaluation",
    )
    parser.add_argument(
        "--images", type=Path, default=REPO / "docs" / "images", help="pictures part: where to write"
    )
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.budget, args.iterations)
        return
    args.save_dir.mkdir(parents=True, exist_ok=True)
    for part in args.parts:
        {"upscale": upscale, "memory": memory, "frontier": frontier, "tiled": tiled, "pictures": pictures}[
            part
        ](args)


if __name__ == "__main__":
    main()
