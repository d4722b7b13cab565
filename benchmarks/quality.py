#!/usr/bin/env python3
"""How well the engine optimises Gatys et al.'s objective, against a reference result.

For each CONTENT STYLE REFERENCE triple, runs the engine and measures its result and the reference
the same way, as neural-style (jcjohnson/neural-style) defines the objective:

* content = mean squared error of relu4_2 features, output vs the content image resized
  (bilinearly) to the output's size;
* style = mean over relu1_1..relu5_1 of the mean squared error of Gram matrices, each
  F·Fᵀ / (C·H·W), output vs the style image resized to the output's longest side;
* objective = 5 x content + 500 x style (neural-style's default weights: content 5, style 100
  per layer; its total-variation term is left out).

Measured with the engine's own VGG19 (``caffe`` weights) in fp32, on the CPU, whatever the run
used. Prints one row per run: content, style and objective as ratios to the reference's
(below 1 is better), the run's seconds (model load excluded) and how far off its progress ETA
was at worst once a tenth of the run had passed. Cross-checked once against an independent judge
(../shared/quality/judge.py, which shares no code with the engine): see docs/benchmarks.md.

    python benchmarks/quality.py \\
        --triple ../shared/images/tubingen.jpg ../shared/images/the_scream.jpg \\
                 ../shared/quality/reference/tubingen_scream.png \\
        --iterations 150 300 600 --style-strength 0.5 1 2 4 --save-dir /tmp/quality

Runs are sequential and the machine may be shared: compare seconds within one run of this script.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nst_engine import Progress, StyleParams, losses, stylize, tensors, vgg  # noqa: E402
from nst_engine.imaging import decode_image  # noqa: E402

CONTENT_WEIGHT = 5.0  #: neural-style's default content weight
STYLE_WEIGHT_PER_LAYER = 100.0  #: neural-style's default style weight, applied to each layer


@dataclass(frozen=True)
class Losses:
    content: float
    style: float  #: mean over the five style layers, as the judge reports it

    @property
    def objective(self) -> float:
        return CONTENT_WEIGHT * self.content + STYLE_WEIGHT_PER_LAYER * len(vgg.STYLE_LAYERS) * self.style


def _resized(image: Image.Image, dims: tuple[int, int]) -> Image.Image:
    return image if image.size == dims else image.resize(dims, Image.Resampling.BILINEAR)


@torch.no_grad()
def measure(model: vgg.VGGFeatures, content: Image.Image, style: Image.Image, output: Image.Image) -> Losses:
    """neural-style's content and style losses of ``output``, at ``output``'s own size, in fp32."""
    cpu = torch.device("cpu")
    dims = output.size
    style_dims = tensors.scaled_dimensions(*style.size, max(dims))
    ours = model(tensors.image_to_tensor(output.convert("RGB"), cpu))
    photo = model(tensors.image_to_tensor(_resized(content, dims), cpu))
    painting = model(tensors.image_to_tensor(_resized(style, style_dims), cpu))
    layer = vgg.CONTENT_LAYERS[0]
    content_term = float(losses.content_loss(ours[layer], photo[layer].float()))
    targets = {name: losses.gram_matrix(painting[name]) for name in vgg.STYLE_LAYERS}
    style_term = float(losses.style_loss(ours, targets)) / len(vgg.STYLE_LAYERS)
    return Losses(content_term, style_term)


def worst_eta_error(reports: list[Progress], total: float) -> float:
    """The largest relative error of the predicted total time (elapsed + ETA) once a tenth of the
    run has passed: the target is 20%."""
    errors = [
        abs(r.elapsed + r.eta - total) / total
        for r in reports
        if r.eta is not None and r.elapsed >= 0.1 * total
    ]
    return max(errors, default=float("nan"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--triple",
        nargs=3,
        action="append",
        required=True,
        metavar=("CONTENT", "STYLE", "REFERENCE"),
        help="a content image, a style image and a reference result for them (repeatable)",
    )
    parser.add_argument("--size", type=int, default=None, help="output size (default: the reference's)")
    parser.add_argument("--iterations", type=int, nargs="+", default=[StyleParams().iterations])
    parser.add_argument("--style-strength", type=float, nargs="+", default=[1.0])
    parser.add_argument("--scales", type=int, default=StyleParams().scales)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--save-dir", type=Path, help="write each result here as a PNG")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    model = vgg.get_model("caffe", "max", torch.device("cpu"))
    if args.save_dir:
        args.save_dir.mkdir(parents=True, exist_ok=True)
    print(
        "| pair | iterations | strength | content vs ref | style vs ref | objective vs ref | seconds "
        "| worst ETA error after 10% |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for content_path, style_path, reference_path in args.triple:
        content, style = decode_image(content_path), decode_image(style_path)
        reference = decode_image(reference_path)
        ref = measure(model, content, style, reference)
        name = f"{Path(content_path).stem} × {Path(style_path).stem}"
        size = args.size or max(reference.size)
        for iterations in args.iterations:
            for strength in args.style_strength:
                params = StyleParams(
                    size=size,
                    iterations=iterations,
                    style_strength=strength,
                    scales=args.scales,
                    precision=args.precision,
                )
                reports: list[Progress] = []
                started = time.perf_counter()
                result = stylize(content, [style], params, progress=reports.append)
                seconds = time.perf_counter() - started
                ours = measure(model, content, style, result.image)
                if args.save_dir:
                    stem = f"{Path(content_path).stem}_{Path(style_path).stem}_{iterations}_{strength:g}"
                    result.image.save(args.save_dir / f"{stem}.png")
                print(
                    f"| {name} | {iterations} | {strength:g} | {ours.content / ref.content:.3f} "
                    f"| {ours.style / ref.style:.3f} | {ours.objective / ref.objective:.3f} | {seconds:.1f} "
                    f"| {worst_eta_error(reports, result.stats.seconds):.0%} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
