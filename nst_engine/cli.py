"""The ``nst`` command: paint a photo in the style of one or more images or a preset painting.

    nst CONTENT STYLE [STYLE ...] -o OUT.png
    nst CONTENT --preset NAME -o OUT.png
    nst CLIP STYLE -o OUT.gif|OUT.webp|OUT.mp4
    nst --list-presets

Every :class:`~nst_engine.params.StyleParams` field has a flag. Flags that are not given are not
passed on at all, so the defaults live in one place (the dataclass) and ``--help`` reads them from
there. An animated GIF, WebP or PNG, or an MP4, WebM or MOV video, as CONTENT is painted frame
by frame (:func:`nst_engine.animation.stylize_clip`) into the format OUT's extension names. Errors
a user can fix (a bad image, a missing file, a bad value, an unknown or unreachable
preset) print one line and exit with status 2; Ctrl-C cancels the run cleanly and exits with 130.

Painting somewhere else than in this process (``nst --queue``, on ``nst-worker`` processes) is a
:class:`RemotePainter` that a package above the engine registers under the entry-point group
:data:`PAINTERS_GROUP`: the engine stays the ground floor and imports none of them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from PIL import Image

from .errors import Cancelled, InvalidImage, NSTError, ParameterError, PresetError
from .files import write_atomically
from .params import INITS, OPTIMIZERS, POOLINGS, PRECISIONS, StyleParams

if TYPE_CHECKING:  # imported where used, so `nst --help` starts without loading torch
    from .cache import StyleTargetCache
    from .clips import ClipFormat
    from .engine import Progress, Result
    from .presets import PresetCatalog

PROG = "nst"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
#: How long Ctrl-C waits for the engine to notice its cancel event (it checks at every evaluation).
CANCEL_GRACE_SECONDS = 60.0
#: Resolution of the progress bar, which follows the share of the time done (``Progress.fraction``).
PROGRESS_STEPS = 1000

#: Output formats by extension, with the options that make each one look its best.
OUTPUT_FORMATS: dict[str, tuple[str, dict[str, Any]]] = {
    ".png": ("PNG", {"optimize": True}),
    ".jpg": ("JPEG", {"quality": 95, "subsampling": 0}),
    ".jpeg": ("JPEG", {"quality": 95, "subsampling": 0}),
    ".webp": ("WEBP", {"quality": 95, "method": 4}),
}


#: Clip flags: (dest, flag, help, type, metavar). ``ClipParams`` fields and ``ClipLimits`` fields.
CLIP_FLAGS: tuple[tuple[str, str, str, Callable[[str], Any], str], ...] = (
    ("temporal_weight", "--temporal-weight", "clips: temporal loss weight; 0 = frames alone", float, "W"),
    ("frame_iterations", "--frame-iterations", "clips: iterations of each frame after the first", int, "N"),
    ("max_frames", "--max-frames", "clips: frames painted; longer clips are thinned evenly", int, "N"),
    ("max_seconds", "--max-seconds", "clips: longest clip accepted, in seconds", float, "S"),
)  # fmt: skip

#: The entry-point group of :class:`RemotePainter` factories (``nst_queue`` registers ``--queue``).
PAINTERS_GROUP = "nst.painters"

ProgressCallback = Callable[["Progress"], None]
_Decoded = TypeVar("_Decoded")


class RemotePainter(Protocol):
    """A way to paint elsewhere than in this process, with flags of its own.

    ``add_arguments`` adds its flags; ``wanted`` says whether the parsed command line asks for it;
    ``paint`` returns the engine's Result and reports progress through ``on_progress`` like a local
    run. Its failures are :class:`~nst_engine.errors.NSTError` (their text is shown to the user).
    """

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def wanted(self, args: argparse.Namespace) -> bool: ...

    def paint(
        self,
        args: argparse.Namespace,
        content: Image.Image,
        styles: list[Image.Image],
        params: StyleParams,
        on_progress: ProgressCallback,
    ) -> Result: ...


def installed_painters() -> list[RemotePainter]:
    """The painters that installed packages register under :data:`PAINTERS_GROUP`."""
    return [entry.load()() for entry in entry_points(group=PAINTERS_GROUP)]


class UsageError(Exception):
    """A mistake in how the command was called, found after argparse (exit status 2)."""


class _WriteFailed(NSTError):
    """The painting was made but could not be saved (disk full, permissions...): exit status 1."""


@dataclasses.dataclass(frozen=True)
class ParamFlag:
    """How one StyleParams field is spelled on the command line."""

    field: str
    flag: str
    help: str
    type: Callable[[str], Any] | None = None
    choices: Sequence[str] | None = None
    metavar: str | None = None
    boolean: bool = False


def _float_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.replace(" ", ",").split(",") if part)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None


#: One entry per StyleParams field; a test checks that none is missing.
PARAM_FLAGS: tuple[ParamFlag, ...] = (
    ParamFlag("size", "--size", "longest side of the output in pixels", int, metavar="PX"),
    ParamFlag("iterations", "--iterations", "optimiser iterations over all pyramid levels", int, metavar="N"),
    ParamFlag("content_weight", "--content-weight", "weight of the content loss", float, metavar="W"),
    ParamFlag("style_weight", "--style-weight", "weight of the style loss", float, metavar="W"),
    ParamFlag(
        "tv_weight", "--tv-weight", "weight of the smoothness (total variation) loss", float, metavar="W"
    ),
    ParamFlag(
        "style_strength",
        "--style-strength",
        "multiplier on the style weight: 2 = stronger, 0.5 = subtler",
        float,
        metavar="X",
    ),
    ParamFlag(
        "style_blend",
        "--style-weights",
        "blend weights, one per style image, e.g. 0.7,0.3",
        _float_list,
        metavar="W,W,...",
    ),
    ParamFlag(
        "preserve_color",
        "--preserve-color",
        "keep the content's colours, transfer only the style's luminance",
        boolean=True,
    ),
    ParamFlag("pooling", "--pooling", "VGG19 pooling", choices=POOLINGS),
    ParamFlag("init", "--init", "image the optimisation starts from", choices=INITS),
    ParamFlag(
        "init_noise",
        "--init-noise",
        "share of seeded noise mixed into the start image (0-1)",
        float,
        metavar="X",
    ),
    ParamFlag("optimizer", "--optimizer", "optimiser", choices=OPTIMIZERS),
    ParamFlag("adam_lr", "--adam-lr", "Adam's learning rate, in 0-255 pixel units", float, metavar="LR"),
    ParamFlag("device", "--device", "auto, cpu, cuda, cuda:N or mps", str, metavar="DEV"),
    ParamFlag("precision", "--precision", "arithmetic precision", choices=PRECISIONS),
    ParamFlag(
        "scales", "--scales", "levels of the coarse-to-fine pyramid (1 = full size only)", int, metavar="N"
    ),
    ParamFlag(
        "seed", "--seed", "random seed; the same seed gives the same image on the CPU", int, metavar="N"
    ),
    ParamFlag(
        "weights", "--weights", "VGG19 weights: caffe, torchvision or a state-dict file", str, metavar="W"
    ),
    ParamFlag(
        "memory_budget",
        "--memory-budget",
        "most memory the run may use (peak RSS on a CPU, GPU memory on a GPU); a size that does not "
        "fit is painted in tiles (default: a safe share of the memory free)",
        float,
        metavar="GIB",
    ),
    ParamFlag(
        "time_budget",
        "--time-budget",
        "seconds the run may take; the engine then plans the iterations itself (--iterations is not used)",
        float,
        metavar="SECONDS",
    ),
    ParamFlag(
        "time_limit",
        "--time-limit",
        "most seconds the run may take: --iterations are painted unless the measured pace says they "
        "would end later, then cut to fit (never more iterations)",
        float,
        metavar="SECONDS",
    ),
)


def build_parser(painters: Sequence[RemotePainter] = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Paint a photo in the style of one or more paintings (Gatys et al. neural style transfer)."
        ),
        epilog=(
            "examples:\n"
            "  nst photo.jpg painting.jpg -o painted.png\n"
            "  nst photo.jpg --preset starry-night --style-strength 2 -o painted.png\n"
            "  nst clip.gif painting.jpg --size 256 -o painted.mp4\n"
            "  nst --list-presets\n\n"
            "exit status: 0 done, 1 failed, 2 bad input or arguments, 130 interrupted"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("images", nargs="*", metavar="IMAGE", help="CONTENT, then zero or more STYLE images")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="OUT",
        help="where to write the painting (.png, .jpg or .webp; a clip: .gif, .webp or .mp4)",
    )
    parser.add_argument(
        "-p",
        "--preset",
        action="append",
        default=[],
        metavar="NAME",
        help="use a preset painting as a style (repeatable)",
    )
    parser.add_argument("--list-presets", action="store_true", help="list the preset paintings and exit")
    parser.add_argument(
        "--config-dir",
        type=Path,
        metavar="DIR",
        help="directory of presets.toml (default: $NST_CONFIG_DIR or the checkout's config/)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="cache for presets and style targets (default: $NST_CACHE_DIR or ~/.cache/nst-engine)",
    )
    parser.add_argument("--stats-json", type=Path, metavar="PATH", help="write the run's statistics as JSON")
    parser.add_argument(
        "--from",
        dest="start_from",
        type=Path,
        metavar="PAINTED",
        help="continue an earlier result of this CONTENT (e.g. upscale it: --from painted.png --size 1024): "
        "only the new, larger pyramid levels are painted",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    defaults = {f.name: f.default for f in dataclasses.fields(StyleParams)}
    group = parser.add_argument_group("style parameters (defaults from StyleParams)")
    for spec in PARAM_FLAGS:
        help_text = f"{spec.help} (default: {_show_default(defaults[spec.field])})"
        if spec.boolean:
            group.add_argument(
                spec.flag,
                dest=spec.field,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_text,
            )
        else:
            group.add_argument(
                spec.flag, dest=spec.field, type=spec.type or str, choices=spec.choices, metavar=spec.metavar,
                default=argparse.SUPPRESS, help=help_text,
            )  # fmt: skip
    clip_defaults = _clip_defaults()
    clips = parser.add_argument_group("clips (animated GIF/WebP/PNG, MP4/WebM/MOV as CONTENT)")
    for dest, flag, help_text, kind, metavar in CLIP_FLAGS:
        clips.add_argument(
            flag, dest=dest, type=kind, metavar=metavar, default=argparse.SUPPRESS,
            help=f"{help_text} (default: {clip_defaults[dest]:g})",
        )  # fmt: skip
    for painter in painters:
        painter.add_arguments(parser)
    return parser


def _clip_defaults() -> dict[str, float]:
    """The clip flags' defaults, read from their dataclasses (light modules: no torch)."""
    from .clips import ClipLimits, ClipParams

    values: dict[str, float] = {}
    for source in (ClipParams(), ClipLimits()):
        values.update({f.name: getattr(source, f.name) for f in dataclasses.fields(source)})
    return values


def _show_default(value: Any) -> str:
    if value is None:
        return "equal"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


# ---------------------------------------------------------------------------- entry point
def main(argv: Sequence[str] | None = None, *, painters: Sequence[RemotePainter] | None = None) -> int:
    """Run the command; returns the exit status (the console script passes it to sys.exit).

    ``painters`` defaults to the installed ones (:func:`installed_painters`).
    """
    painters = installed_painters() if painters is None else painters
    parser = build_parser(painters)
    args = parser.parse_args(argv)  # exits 2 on a malformed command line
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(message)s")
    try:
        if args.list_presets:
            return _list_presets(args)
        return _paint(parser, args, painters)
    except BrokenPipeError:  # `nst --list-presets | head`: the reader has seen enough
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the exit-time flush quiet
        return EXIT_OK
    except KeyboardInterrupt:
        _fail("interrupted")
        return EXIT_INTERRUPTED
    except Cancelled:
        _fail("interrupted")
        return EXIT_INTERRUPTED
    except ParameterError as error:
        _fail(_with_flag_name(error))
        return EXIT_USAGE
    except (UsageError, InvalidImage, PresetError) as error:
        _fail(str(error))
        return EXIT_USAGE
    except NSTError as error:  # e.g. WeightsUnavailable: not the user's input, still explainable
        _fail(str(error))
        return EXIT_FAILED
    except Exception as error:
        if os.environ.get("NST_DEBUG"):
            raise
        _fail(f"unexpected {type(error).__name__}: {error} (set NST_DEBUG=1 for a traceback)")
        return EXIT_FAILED


def _with_flag_name(error: ParameterError) -> str:
    """``style_blend: ...`` -> ``--style-weights: ...``: name the flag the user typed, not the field."""
    message = str(error)
    flags = {spec.field: spec.flag for spec in PARAM_FLAGS} | {"start_from": "--from"}
    flags |= {dest: flag for dest, flag, *_ in CLIP_FLAGS}
    prefix = f"{error.parameter}:"
    if error.parameter in flags and message.startswith(prefix):
        return f"{flags[error.parameter]}:{message[len(prefix) :]}"
    return message


def _fail(message: str) -> None:
    one_line = " ".join(str(message).split())
    print(f"{PROG}: error: {one_line}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- --list-presets
def _list_presets(args: argparse.Namespace) -> int:
    from .presets import PresetResolver

    catalog = _load_catalog(args)
    resolver = PresetResolver(catalog, _cache_dir(args))
    width = max((len(p.name) for p in catalog), default=0)
    for preset in catalog:
        if preset.is_local:
            where = "local file"
        else:
            where = "cached" if resolver.is_cached(preset.name) else "downloads on first use"
        print(f"{preset.name:<{width}}  {preset.label}  [{preset.licence}; {where}]")
    if not len(catalog):
        print(f"no presets in {catalog.origin}", file=sys.stderr)
    return EXIT_OK


def _load_catalog(args: argparse.Namespace) -> PresetCatalog:
    from .presets import CATALOG_FILE_NAME, PresetCatalog, default_config_dir

    config_dir = args.config_dir if args.config_dir is not None else default_config_dir()
    return PresetCatalog.load(config_dir / CATALOG_FILE_NAME)


def _cache_dir(args: argparse.Namespace) -> Path:
    from .presets import default_cache_dir

    return args.cache_dir if args.cache_dir is not None else default_cache_dir()


# ---------------------------------------------------------------------------- painting
def _paint(
    parser: argparse.ArgumentParser, args: argparse.Namespace, painters: Sequence[RemotePainter]
) -> int:
    if not args.images:
        parser.error("a CONTENT image is required (or --list-presets)")
    content_path, style_paths = Path(args.images[0]), [Path(p) for p in args.images[1:]]
    if not style_paths and not args.preset:
        parser.error("give at least one STYLE image or --preset NAME")
    if args.output is None:
        parser.error("-o/--output OUT is required")
    from .clips import clip_format_for

    clip_format = clip_format_for(args.output)
    if clip_format is not None and (clip_format != "webp" or _is_clip(content_path)):
        return _paint_clip(args, content_path, style_paths, clip_format, painters)
    output_format = _output_format(args.output)
    _check_output_dirs(args)

    params = params_from_args(args)
    params.style_blend_for(len(style_paths) + len(args.preset))  # a wrong count fails before any work

    from .imaging import decode_image

    content = _decode(decode_image, content_path, "content image")
    styles, style_cache = _load_styles(args, style_paths)

    remote = next((painter for painter in painters if painter.wanted(args)), None)
    start_from = None
    if args.start_from is not None:
        if remote is not None:
            raise UsageError("--from paints in this process; leave out the queue flags")
        from .engine import check_start_from

        start_from = _decode(decode_image, args.start_from, "earlier result")
        check_start_from(content.size, start_from, params.size)
    bar, on_progress = _progress_bar(params, args.quiet)
    try:
        if remote is not None:
            images = [getattr(style, "image", style) for style in styles]
            result = remote.paint(args, content, images, params, on_progress)
        else:
            result = _run_with_progress(
                content,
                styles,
                params,
                style_cache=style_cache,
                on_progress=on_progress,
                start_from=start_from,
            )
    finally:
        bar.close()
    _save_image(result.image, args.output, output_format)
    if args.stats_json is not None:
        _write_atomically(args.stats_json, (json.dumps(result.stats.to_dict(), indent=2) + "\n").encode())
    if not args.quiet:
        stats = result.stats
        print(
            f"{PROG}: wrote {args.output} ({stats.width}x{stats.height}, {stats.iterations} iterations, "
            f"{stats.seconds:.1f} s on {stats.device}/{stats.precision})",
            file=sys.stderr,
        )
    return EXIT_OK


def _check_output_dirs(args: argparse.Namespace) -> None:
    for path in (args.output.parent, args.stats_json.parent if args.stats_json else None):
        if path is not None and not path.is_dir():
            raise UsageError(f"output directory does not exist: {path}")


def _load_styles(args: argparse.Namespace, style_paths: list[Path]) -> tuple[list[Any], Any]:
    """The style images and presets, and the style-target cache when a preset is used."""
    from .imaging import decode_image

    styles: list[Any] = [_decode(decode_image, path, "style image") for path in style_paths]
    style_cache = None
    if args.preset:
        from .engine import StyleImage
        from .presets import PresetResolver

        cache_dir = _cache_dir(args)
        resolver = PresetResolver(_load_catalog(args), cache_dir)
        styles += [StyleImage(resolver.resolve(name), label=name) for name in args.preset]
        style_cache = _style_target_cache(cache_dir)
    return styles, style_cache


def _is_clip(path: Path) -> bool:
    from .clips import is_clip

    return path.is_file() and is_clip(path)


def _paint_clip(
    args: argparse.Namespace,
    content_path: Path,
    style_paths: list[Path],
    clip_format: ClipFormat,
    painters: Sequence[RemotePainter],
) -> int:
    """``nst CLIP STYLE -o OUT.gif|.webp|.mp4``: every frame painted here, in this process."""
    from .clips import Clip, ClipLimits, ClipParams, decode_clip, encode_clip

    if not _is_clip(_existing(content_path, "content clip")):
        raise UsageError(
            f"{content_path} is a still image; write its painting to .png, .jpg or .webp "
            "(.gif and .mp4 are for clips)"
        )
    if any(painter.wanted(args) for painter in painters):
        raise UsageError("clips are painted in this process; leave out the queue flag")
    _check_output_dirs(args)
    params = params_from_args(args)
    params.style_blend_for(len(style_paths) + len(args.preset))
    given = {dest: getattr(args, dest) for dest, *_ in CLIP_FLAGS if hasattr(args, dest)}
    clip_params = ClipParams(
        **{k: v for k, v in given.items() if k in ("temporal_weight", "frame_iterations")}
    )
    limits = ClipLimits(**{k: v for k, v in given.items() if k in ("max_frames", "max_seconds")})

    def decode(path: Path) -> Clip:
        return decode_clip(path, limits, max_side=params.size)

    clip = _decode(decode, content_path, "content clip")
    styles, style_cache = _load_styles(args, style_paths)
    bar, on_progress = _progress_bar(params, args.quiet)
    try:
        from .animation import stylize_clip

        result = _run_cancellable(
            lambda cancel: stylize_clip(
                clip,
                styles,
                params,
                clip_params,
                progress=on_progress,
                cancel=cancel,
                style_cache=style_cache,
            )
        )
    finally:
        bar.close()
    encoded = encode_clip(result.clip, clip_format)
    _write_atomically(args.output, encoded.data)
    stats = result.stats
    if args.stats_json is not None:
        text = json.dumps(dataclasses.asdict(stats), indent=2) + "\n"
        _write_atomically(args.stats_json, text.encode())
    if not args.quiet:
        print(
            f"{PROG}: wrote {args.output} ({encoded.width}x{encoded.height}, {encoded.frames} frames, "
            f"{stats.seconds:.1f} s, flicker {stats.flicker:.1f} against {stats.photo_flicker:.1f} "
            "for the photo frames)",
            file=sys.stderr,
        )
    return EXIT_OK


def params_from_args(args: argparse.Namespace) -> StyleParams:
    """StyleParams from the flags that were given; the others keep the dataclass defaults."""
    overrides = {spec.field: getattr(args, spec.field) for spec in PARAM_FLAGS if hasattr(args, spec.field)}
    return StyleParams(**overrides)


def _decode(decode_image: Callable[[Path], _Decoded], path: Path, what: str) -> _Decoded:
    """Decode with the usual input checks; the message says which of several files was bad."""
    try:
        return decode_image(_existing(path, what))
    except InvalidImage as error:
        raise InvalidImage(f"{what} {path}: {error}") from None


def _existing(path: Path, what: str) -> Path:
    if not path.exists():
        raise UsageError(f"{what} not found: {path}")
    if not path.is_file():
        raise UsageError(f"{what} is not a file: {path}")
    return path


def _output_format(path: Path) -> tuple[str, dict[str, Any]]:
    try:
        return OUTPUT_FORMATS[path.suffix.lower()]
    except KeyError:
        known = ", ".join(sorted({ext for ext in OUTPUT_FORMATS}))
        raise UsageError(f"cannot tell the output format from {path.name!r}; use one of {known}") from None


def _style_target_cache(cache_dir: Path) -> StyleTargetCache:
    """A disk cache of the preset's Gram matrices, so running a preset again skips its VGG pass."""
    from .cache import StyleTargetCache

    return StyleTargetCache.under(cache_dir)


def _progress_bar(params: StyleParams, quiet: bool) -> tuple[Any, ProgressCallback]:
    """The progress bar on stderr and the callback that moves it."""
    from tqdm import tqdm

    # The bar follows the engine's estimate of the time done (Progress.fraction), in thousandths;
    # the steps are in the postfix.
    bar_format = "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}{postfix}]"
    bar = tqdm(
        total=PROGRESS_STEPS,
        file=sys.stderr,
        disable=quiet,
        unit="step",
        dynamic_ncols=True,
        desc="painting",
        bar_format=bar_format,
    )

    def on_progress(progress: Any) -> None:
        eta = "?" if progress.eta is None else tqdm.format_interval(progress.eta)
        frame = f"frame {progress.frame}/{progress.frames}, " if progress.frames > 1 else ""
        bar.set_postfix_str(
            f"{progress.step}/{progress.total} steps, eta {eta}, {frame}"
            f"level {progress.level}/{progress.levels} {progress.width}x{progress.height}, "
            f"content {progress.content_loss:.3g}, style {progress.style_loss:.3g}",
            refresh=False,
        )
        bar.update(round(progress.fraction * PROGRESS_STEPS) - bar.n)

    return bar, on_progress


def _run_with_progress(
    content: Image.Image,
    styles: list[Any],
    params: StyleParams,
    *,
    style_cache: Any,
    on_progress: ProgressCallback,
    start_from: Image.Image | None = None,
) -> Any:
    """Run ``stylize`` in a worker thread, so that Ctrl-C reaches this thread and cancels it."""
    from .engine import stylize

    return _run_cancellable(
        lambda cancel: stylize(
            content,
            styles,
            params,
            progress=on_progress,
            cancel=cancel,
            style_cache=style_cache,
            start_from=start_from,
        )
    )


def _run_cancellable(task: Callable[[threading.Event], Any]) -> Any:
    """Run ``task(cancel)`` in a worker thread, so that Ctrl-C reaches this thread and sets ``cancel``."""
    cancel = threading.Event()
    # An Event rather than Thread.join: on Python 3.11 a Ctrl-C that lands inside join() can mark
    # a still-running thread as finished, and the interpreter then exits under torch's feet.
    finished = threading.Event()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["result"] = task(cancel)
        except BaseException as error:  # handed to the main thread, which decides what it means
            outcome["error"] = error
        finally:
            finished.set()

    worker = threading.Thread(target=work, name="nst-stylize", daemon=True)
    try:
        worker.start()
        while not finished.wait(0.1):
            pass
    except KeyboardInterrupt:
        cancel.set()
        finished.wait(CANCEL_GRACE_SECONDS)  # the engine stops within one loss evaluation
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _save_image(image: Image.Image, path: Path, output_format: tuple[str, dict[str, Any]]) -> None:
    import io

    fmt, options = output_format
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format=fmt, **options)
    _write_atomically(path, buffer.getvalue())


def _write_atomically(path: Path, data: bytes) -> None:
    """:func:`~nst_engine.files.write_atomically`, its failure as one line for the user."""
    try:
        write_atomically(path, data)
    except OSError as error:
        raise _WriteFailed(f"cannot write {path}: {error.strerror or error}") from None


__all__ = [
    "OUTPUT_FORMATS",
    "PAINTERS_GROUP",
    "PARAM_FLAGS",
    "RemotePainter",
    "build_parser",
    "installed_painters",
    "main",
    "params_from_args",
]
