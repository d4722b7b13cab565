"""The ``nst`` command: flags and messages in-process, real runs end to end in a subprocess."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from nst_engine.cli import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PARAM_FLAGS,
    build_parser,
    main,
    params_from_args,
)
from nst_engine.clips import decode_clip
from nst_engine.params import StyleParams
from tests.helpers.images import content_image, dots_style, stripes_style

REPO_ROOT = Path(__file__).resolve().parents[2]
STATS_KEYS = {"seconds", "iterations", "evaluations", "content_loss", "style_loss", "device", "precision"}
TINY_RUN = ["--size", "48", "--iterations", "5", "--scales", "1", "--device", "cpu"]


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    paths = {
        "content": tmp_path / "photo.png",
        "style": tmp_path / "stripes.png",
        "style2": tmp_path / "dots.jpg",
        "not_image": tmp_path / "notes.png",
    }
    content_image(64, 48).save(paths["content"])
    stripes_style(56, 56).save(paths["style"])
    dots_style(48, 48).save(paths["style2"], quality=95)
    paths["not_image"].write_text("this is a text file with a .png name", encoding="utf-8")
    paths["clip"] = tmp_path / "clip.gif"
    frames = [content_image(64, 48).rotate(4 * k) for k in range(3)]
    frames[0].save(paths["clip"], save_all=True, append_images=frames[1:], duration=[60, 120, 120], loop=0)
    return paths


def local_catalogue(directory: Path, style: Path) -> Path:
    """A config dir whose only preset is a local file, given relative to the config dir."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "paintings").mkdir(exist_ok=True)
    (directory / "paintings" / "stripes.png").write_bytes(style.read_bytes())
    (directory / "presets.toml").write_text(
        '[[preset]]\nname = "stripes"\ntitle = "Stripes"\nartist = "A. Tester"\nyear = "2026"\n'
        'licence = "CC0"\nsource = "file:paintings/stripes.png"\n',
        encoding="utf-8",
    )
    return directory


def run_nst(args: list[str], tmp_path: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nst_engine", *args],
        cwd=REPO_ROOT, env=child_env(tmp_path), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def child_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["NST_CACHE_DIR"] = str(tmp_path / "cache")  # never touch the user's real cache
    env.pop("NST_DEBUG", None)
    return env


def assert_one_line_error(stderr: str, fragment: str) -> None:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("nst: error: ") and fragment in lines[0], lines[0]


# ---------------------------------------------------------------------------- in-process
def test_every_style_params_field_has_exactly_one_flag() -> None:
    fields = [f.name for f in dataclasses.fields(StyleParams)]
    assert sorted(spec.field for spec in PARAM_FLAGS) == sorted(fields)
    help_text = " ".join(build_parser().format_help().split())  # undo line wrapping
    for flag in ("--size", "--iterations", "--content-weight", "--style-weight", "--tv-weight",
                 "--style-strength", "--style-weights", "--preserve-color", "--pooling", "--init",
                 "--optimizer", "--adam-lr", "--device", "--precision", "--scales", "--seed",
                 "--weights", "--memory-budget", "--time-budget", "--from"):  # fmt: skip
        assert flag in help_text
    assert f"(default: {StyleParams().iterations})" in help_text


def test_unset_flags_keep_the_dataclass_defaults_and_set_ones_are_typed() -> None:
    parser = build_parser()
    assert params_from_args(parser.parse_args(["c.png", "s.png", "-o", "o.png"])) == StyleParams()
    args = parser.parse_args(
        ["c.png", "a.png", "b.png", "-o", "o.png", "--size", "64", "--style-weights", "0.7,0.3",
         "--preserve-color", "--style-strength", "2", "--optimizer", "adam", "--adam-lr", "3.5",
         "--seed", "7", "--precision", "fp32"]
    )  # fmt: skip
    assert params_from_args(args) == StyleParams(
        size=64, style_blend=(0.7, 0.3), preserve_color=True, style_strength=2.0, optimizer="adam",
        adam_lr=3.5, seed=7, precision="fp32",
    )  # fmt: skip


def test_list_presets_prints_the_shipped_catalogue(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert (
        main(["--list-presets", "--config-dir", str(REPO_ROOT / "config"), "--cache-dir", str(tmp_path)])
        == EXIT_OK
    )
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) >= 12
    assert lines[0].startswith("starry-night ") and "The Starry Night — Vincent van Gogh, 1889" in lines[0]
    assert "downloads on first use" in lines[0]


@pytest.mark.parametrize(
    ("make_args", "fragment"),
    [
        (
            lambda p: [str(p["content"]), str(p["style"]), "-o", str(p["content"].with_name("o.bmp"))],
            "cannot tell the output format from 'o.bmp'",
        ),
        (
            lambda p: [str(p["content"]), str(p["style"]), "-o", str(p["content"].with_name("o.gif"))],
            "photo.png is a still image; write its painting to .png, .jpg or .webp",
        ),
        (
            lambda p: [str(p["clip"]), str(p["style"]), "-o", "o.mp4", "--temporal-weight", "-1"],
            "--temporal-weight: must be a number of at least 0, got -1.0",
        ),
        (
            lambda p: [str(p["clip"]), str(p["style"]), "-o", "o.mp4", "--max-seconds", "0.2"],
            "content clip " + "{clip}: The clip is 0.3 seconds long; the limit is 0.2 seconds.",
        ),
        (
            lambda p: [
                str(p["content"]),
                str(p["style"]),
                "-o",
                str(p["content"].parent / "missing-dir" / "o.png"),
            ],
            "output directory does not exist",
        ),
        (
            lambda p: [str(p["content"]), str(p["style"]), "-o", "o.png", "--style-weights", "1,2"],
            "--style-weights: has 2 weights but there are 1 style images",
        ),
        (
            lambda p: [
                str(p["content"]),
                "--preset",
                "stary-night",
                "-o",
                "o.png",
                "--config-dir",
                str(REPO_ROOT / "config"),
            ],
            "unknown preset 'stary-night' (did you mean starry-night?)",
        ),
    ],
    ids=[
        "output-format", "still-to-gif", "temporal-weight", "clip-too-long", "output-dir", "blend-count",
        "unknown-preset",
    ],
)  # fmt: skip
def test_usage_mistakes_are_one_line_before_any_work(
    images: dict[str, Path], capsys: pytest.CaptureFixture[str], make_args, fragment: str
) -> None:
    assert main(make_args(images)) == EXIT_USAGE
    assert_one_line_error(capsys.readouterr().err, fragment.format(clip=images["clip"]))


def test_a_preset_that_cannot_be_fetched_says_where_to_put_it(
    images: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    # Plain http is valid in a catalogue only on 127.0.0.1, and the command's resolver refuses it
    # (https to Wikimedia only): the same error path as being offline, without touching a network.
    (config / "presets.toml").write_text(
        '[[preset]]\nname = "wave"\ntitle = "Wave"\nartist = "Hokusai"\nyear = "c. 1831"\n'
        'licence = "public domain"\n'
        'source = "http://127.0.0.1:9/wave.png"\n',
        encoding="utf-8",
    )
    code = main(
        [
            str(images["content"]),
            "--preset",
            "wave",
            "-o",
            str(tmp_path / "o.png"),
            "--config-dir",
            str(config),
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert_one_line_error(
        err, "preset 'wave': could not download http://127.0.0.1:9/wave.png: the URL is not an https URL"
    )
    assert f"Put the image at {tmp_path / 'cache' / 'presets' / 'wave.img'} to use it offline." in err


# ---------------------------------------------------------------------------- subprocess, end to end
def test_paints_two_images_and_writes_stats(images: dict[str, Path], tmp_path: Path) -> None:
    out, stats = tmp_path / "painted.png", tmp_path / "stats.json"
    done = run_nst([str(images["content"]), str(images["style"]), str(images["style2"]),
                    "--style-weights", "2,1", "-o", str(out), "--stats-json", str(stats), *TINY_RUN],
                   tmp_path)  # fmt: skip
    assert done.returncode == EXIT_OK, done.stderr
    with Image.open(out) as painted:
        assert painted.format == "PNG" and painted.size == (48, 36)
    data = json.loads(stats.read_text())
    assert set(data) >= STATS_KEYS
    assert data["iterations"] == 5 and data["evaluations"] >= 5 and data["device"] == "cpu"
    assert re.search(r"\d+/5 ", done.stderr), "the progress bar goes to stderr"
    assert "style" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("extension", ["mp4", "webp"])
def test_paints_a_clip_into_the_format_the_extension_names(
    images: dict[str, Path], tmp_path: Path, extension: str
) -> None:
    out, stats = tmp_path / f"painted.{extension}", tmp_path / "stats.json"
    done = run_nst([str(images["clip"]), str(images["style"]), "-o", str(out), "--stats-json", str(stats),
                    "--frame-iterations", "2", "--temporal-weight", "500", *TINY_RUN], tmp_path)  # fmt: skip
    assert done.returncode == EXIT_OK, done.stderr
    painted = decode_clip(out)
    assert len(painted.frames) == 3 and painted.size == (48, 36)
    assert painted.durations_ms == (60, 120, 120)
    data = json.loads(stats.read_text())
    assert data["frames"] == 3 and data["iterations"] == 5 + 2 * 2 and data["temporal_weight"] == 500
    assert "frame 3/3" in done.stderr and re.search(r"\d+/9 ", done.stderr)
    assert f"wrote {out} (48x36, 3 frames" in done.stderr


def test_preset_from_a_local_catalogue_reuses_its_style_targets(
    images: dict[str, Path], tmp_path: Path
) -> None:
    config = local_catalogue(tmp_path / "config", images["style"])
    out, stats = tmp_path / "painted.webp", tmp_path / "stats.json"
    args = [str(images["content"]), "--preset", "stripes", "-o", str(out), "--stats-json", str(stats),
            "--config-dir", str(config), "--cache-dir", str(tmp_path / "cache"), "--quiet",
            *TINY_RUN]  # fmt: skip
    first = run_nst(args, tmp_path)
    assert first.returncode == EXIT_OK, first.stderr
    assert first.stderr == ""  # --quiet
    with Image.open(out) as painted:
        assert painted.format == "WEBP" and painted.size == (48, 36)
    assert json.loads(stats.read_text())["style_targets_cached"] == 0
    second = run_nst(args, tmp_path)
    assert second.returncode == EXIT_OK, second.stderr
    assert json.loads(stats.read_text())["style_targets_cached"] == 1


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("bad-image", "notes.png: "),
        ("missing-file", "style image not found"),
        ("bad-parameter", "--size: must be between"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    images: dict[str, Path], tmp_path: Path, case: str, fragment: str
) -> None:
    args = {
        "bad-image": [str(images["content"]), str(images["not_image"])],
        "missing-file": [str(images["content"]), str(tmp_path / "nowhere.jpg")],
        "bad-parameter": [str(images["content"]), str(images["style"]), "--size", "8"],
    }[case]
    done = run_nst([*args, "-o", str(tmp_path / "o.png")], tmp_path, timeout=120)
    assert done.returncode == EXIT_USAGE
    assert_one_line_error(done.stderr, fragment)
    assert not (tmp_path / "o.png").exists()


def test_ctrl_c_cancels_the_run_and_exits_130(images: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "never.png"
    # Adam never stops early, so 100000 steps are still running whenever the signal comes.
    process = subprocess.Popen(
        [sys.executable, "-m", "nst_engine", str(images["content"]), str(images["style"]), "-o", str(out),
         "--size", "48", "--scales", "1", "--device", "cpu", "--optimizer", "adam", "--iterations", "100000"],
        cwd=REPO_ROOT, env=child_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        # A shell that started the tests in the background may have set SIGINT to "ignore", which
        # children inherit; give the child the normal disposition so Python installs its handler.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    stderr = bytearray()

    def collect_stderr() -> None:
        while chunk := process.stderr.read1(4096):
            stderr.extend(chunk)

    reader = threading.Thread(target=collect_stderr, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while not re.search(rb"[1-9]\d*/100000 steps", stderr):
            assert process.poll() is None, stderr.decode(errors="replace")
            assert time.monotonic() < deadline, "no progress within 120 s"
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(5)
    text = stderr.decode(errors="replace")
    assert code == EXIT_INTERRUPTED, text
    assert text.rstrip().endswith("nst: error: interrupted") and "Traceback" not in text
    assert not out.exists()


# ---------------------------------------------------------------------------- start-up cost
def test_help_answers_without_loading_torch_or_the_queue_client() -> None:
    """``nst --help`` must answer at once: neither torch nor arq may be imported to print it."""
    code = (
        "import sys\n"
        "from nst_engine.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(name for name in ('torch', 'torchvision', 'arq', 'redis') if name in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "--size PX" in done.stdout  # the help itself was printed
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_engine_alone_knows_no_queue_flag(capsys: pytest.CaptureFixture[str]) -> None:
    """Without painters from above (the engine is the ground floor), --queue is not a flag."""
    with pytest.raises(SystemExit) as exit_info:
        main(["photo.png", "style.png", "-o", "out.png", "--queue", "redis://x"], painters=[])
    assert exit_info.value.code == EXIT_USAGE
    assert "--queue" in capsys.readouterr().err


# ---------------------------------------------------------------------------- bigger pictures
def test_the_budget_flags_set_the_budgets() -> None:
    args = build_parser().parse_args(
        ["c.png", "s.png", "-o", "o.png", "--time-budget", "30", "--memory-budget", "2.5"]
    )
    assert params_from_args(args) == StyleParams(time_budget=30.0, memory_budget=2.5)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--time-budget", "0"], "--time-budget: must be between"),
        (["--memory-budget", "0.01"], "--memory-budget:"),
    ],
)
def test_a_bad_budget_is_one_line_and_exit_2(
    images: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    extra: list[str],
    fragment: str,
) -> None:
    args = [str(images["content"]), str(images["style"]), "-o", str(tmp_path / "o.png"), *extra]
    assert main(args) == EXIT_USAGE
    assert_one_line_error(capsys.readouterr().err, fragment)


def test_from_a_picture_of_another_shape_is_one_line_and_exit_2(
    images: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    square = tmp_path / "square.png"
    Image.new("RGB", (40, 40)).save(square)
    out = tmp_path / "o.png"
    args = [str(images["content"]), str(images["style"]), "--from", str(square), "-o", str(out), *TINY_RUN]
    assert main(args) == EXIT_USAGE
    assert_one_line_error(capsys.readouterr().err, "--from: the earlier result is 40×40")
    assert not out.exists()


def test_from_an_earlier_result_paints_it_at_the_new_size(
    images: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    earlier, out, stats = tmp_path / "earlier.png", tmp_path / "bigger.png", tmp_path / "stats.json"
    assert (
        main([str(images["content"]), str(images["style"]), "-o", str(earlier), "--quiet", *TINY_RUN])
        == EXIT_OK
    )
    args = [str(images["content"]), str(images["style"]), "--from", str(earlier), "-o", str(out),
            "--stats-json", str(stats), "--quiet", *TINY_RUN[2:], "--size", "64"]  # fmt: skip
    assert main(args) == EXIT_OK, capsys.readouterr().err
    with Image.open(out) as painted:
        assert painted.size == (64, 48)
    assert json.loads(stats.read_text())["levels"] == 1
