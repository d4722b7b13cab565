"""The bot's settings: one frozen :class:`Settings`, loaded and validated once at start.

Layers, later wins: ``config/bot.example.toml`` (committed defaults), the operator's
``config/bot.toml`` (git-ignored; ``NST_BOT_CONFIG`` names another file), then environment
variables ``NST_BOT_<KEY>`` (e.g. ``NST_BOT_QUEUE_CAP=20``). The Discord token is *never* read from
a TOML file: only from ``DISCORD_TOKEN`` in the environment or from the ``.env``-style file named by
``env_file``, so a committed config can never leak it. Every error names the key to fix.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import stat
import sys
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from nst_engine.clips import ClipLimits
from nst_engine.params import MAX_SIZE, MIN_SIZE, StyleParams
from nst_engine.presets import default_config_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENV_PREFIX = "NST_BOT_"
TOKEN_ENV = "DISCORD_TOKEN"
STRENGTH_NAMES = ("subtle", "normal", "strong", "extreme")
SIZE_NAMES = ("small", "medium", "large")
#: What an animation is posted as (``animation_format``); see docs/bot.md, "Animations".
ANIMATION_FORMATS = ("webp", "mp4", "gif")
#: Interaction tokens live 15 minutes; a job switches to channel messages a minute early.
INTERACTION_TOKEN_SECONDS = 14 * 60.0

log = logging.getLogger(__name__)


class SettingsError(ValueError):
    """A setting has a bad value; the message names the key (and where it came from)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"setting {key!r}: {message}")
        self.key = key


@dataclass(frozen=True)
class Settings:
    """Everything an operator can tune. Construct directly in tests; :func:`load_settings` in prod."""

    data_dir: Path = Path("data")
    cache_dir: Path | None = None  # None: the engine default (NST_CACHE_DIR or ~/.cache/nst-engine)
    config_dir: Path = field(default_factory=default_config_dir)
    env_file: Path | None = None
    concurrency: int = 0  # 0: automatic (1 per GPU, 1 on CPU)
    queue_cap: int = 20
    per_user_limit: int = 1
    cooldown_seconds: float = 10.0
    #: Re-runs (buttons or the reaction) of other people's results one user may start in any hour
    #: (0: only their own); re-runs of their own results do not count.
    others_reruns_per_hour: int = 5
    progress_interval: float = 5.0
    preview_count: int = 3
    preview_size: int = 256
    max_attachment_bytes: int = 10 * 1024 * 1024
    max_input_pixels: int = 40_000_000
    retention_days: float = 7.0
    #: Bytes all stored inputs may take together; beyond it the oldest finished jobs' go first.
    inputs_max_bytes: int = 5 * 1024 * 1024 * 1024
    strength_steps: Mapping[str, float] = field(
        default_factory=lambda: {"subtle": 0.5, "normal": 1.0, "strong": 2.0, "extreme": 4.0}
    )
    sizes: Mapping[str, int] = field(default_factory=lambda: {"small": 256, "medium": 512, "large": 768})
    default_size: str = "medium"
    default_strength: str = "normal"
    iterations: int = 150
    scales: int = 3
    device: str = "auto"
    precision: str = "auto"
    weights: str = "caffe"
    #: The longest side an Upscale may paint (each press doubles a result, up to this; a server's
    #: ``/nst-admin max-upscale`` may lower it). 0: no Upscale button. 1024 suits a CPU host (about
    #: two minutes a press on two cores); a GPU host can offer 2048.
    max_upscale_side: int = 1024
    #: GiB a painting may use (the engine paints a larger picture in tiles to stay within it).
    #: 0: the engine's safe share of the memory free when a job starts.
    memory_budget: float = 0.0
    #: Seconds a painting may take (the engine plans its iterations to end within it, which
    #: replaces ``iterations``). 0: no limit.
    time_budget: float = 0.0
    #: Most seconds a painting at the default size may take, as a cap: ``iterations`` are painted
    #: unless the engine's measured pace says they would end later, then cut to fit (a faster
    #: machine paints exactly the same picture). Larger sizes and upscales get it scaled by their
    #: pixels; animations are not limited. 90 s: the default painting on a slow 2-core CPU
    #: (docs/benchmarks.md). 0: no limit.
    time_limit: float = 90.0
    reaction_emoji: str = "\N{FLEXED BICEPS}"
    interaction_token_seconds: float = INTERACTION_TOKEN_SECONDS
    log_level: str = "INFO"
    #: HTTP(S) proxy for every connection to Discord (REST, gateway, attachments). discord.py does
    #: not read HTTPS_PROXY, so a proxy must be named here.
    proxy: str | None = None
    #: Seconds ``nst-bot`` (and ``nst-bot check``) wait for Discord to log in before giving up with a
    #: one-line error; without it, a firewall that drops packets leaves the bot silent for minutes.
    connect_timeout: float = 60.0
    #: Empty: paint in this process. ``redis://[:password@]host:port/db`` (or ``rediss://``): send
    #: jobs through Redis to ``nst-worker`` processes.
    queue_url: str | None = None
    engine_params: Mapping[str, object] = field(default_factory=dict)
    #: Animations (an animated GIF/WebP/APNG or an MP4/WebM/MOV as /stylize's photo): the file
    #: format they are posted in, and the limits a clip must meet (nst_engine.clips.ClipLimits).
    animation_format: str = "webp"
    #: Frames painted; a longer clip (within animation_max_seconds) is thinned evenly in time.
    animation_max_frames: int = 24
    animation_max_seconds: float = 6.0
    #: Frames in the file; more is refused from its header, before it is decoded.
    animation_max_source_frames: int = 300
    #: Pixels of one frame as sent.
    animation_max_pixels: int = 1920 * 1080
    #: Longest side an animation is painted at (whatever size was asked, never more).
    animation_size: int = 256
    #: Iterations of each frame after the first (which gets ``iterations``, as a still).
    animation_frame_iterations: int = 20
    token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.validate()

    def __repr__(self) -> str:
        def shown_value(name: str) -> object:
            value = getattr(self, name)
            return redact_url(value) if name in _URL_KEYS else value

        shown = ", ".join(
            f"{f.name}={shown_value(f.name)!r}" for f in dataclasses.fields(self) if f.name != "token"
        )
        return f"Settings({shown}, token={'<set>' if self.token else None})"

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        def positive_int(key: str, minimum: int = 1) -> None:
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise SettingsError(key, f"must be an integer >= {minimum}, got {value!r}")

        def non_negative(key: str) -> None:
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise SettingsError(key, f"must be a number >= 0, got {value!r}")
            if not math.isfinite(value):  # nan compares false with everything: it would disable checks
                raise SettingsError(key, f"must be a finite number >= 0, got {value!r}")
            if value < 0:
                raise SettingsError(key, f"must be a number >= 0, got {value!r}")

        positive_int("concurrency", 0)
        positive_int("queue_cap")
        positive_int("per_user_limit")
        positive_int("others_reruns_per_hour", 0)
        positive_int("preview_count", 0)
        positive_int("preview_size", MIN_SIZE)
        positive_int("max_attachment_bytes", 1024)
        positive_int("max_input_pixels", 256)
        positive_int("inputs_max_bytes", 1024)
        positive_int("iterations")
        positive_int("scales")
        self._validate_animation(positive_int)
        positive_int("max_upscale_side", 0)
        if self.max_upscale_side and not MIN_SIZE <= self.max_upscale_side <= MAX_SIZE:
            raise SettingsError(
                "max_upscale_side",
                f"must be 0 (no Upscale) or {MIN_SIZE}-{MAX_SIZE} px, got {self.max_upscale_side}",
            )
        for key in ("memory_budget", "time_budget", "time_limit"):
            non_negative(key)
        for key in ("cooldown_seconds", "progress_interval", "retention_days", "interaction_token_seconds"):
            non_negative(key)
        if not isinstance(self.connect_timeout, (int, float)) or not self.connect_timeout > 0:
            raise SettingsError(
                "connect_timeout", f"must be a number of seconds > 0, got {self.connect_timeout!r}"
            )
        if self.proxy is not None:
            parts = urllib.parse.urlsplit(self.proxy) if isinstance(self.proxy, str) else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
                raise SettingsError("proxy", "must be a URL like http://proxy.example:3128")
        if set(self.strength_steps) != set(STRENGTH_NAMES):
            raise SettingsError("strength_steps", f"needs exactly the keys {', '.join(STRENGTH_NAMES)}")
        values = [self.strength_steps[name] for name in STRENGTH_NAMES]
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            raise SettingsError("strength_steps", f"multipliers must be finite numbers, got {values!r}")
        if any(not isinstance(v, (int, float)) or v <= 0 for v in values) or values != sorted(values):
            raise SettingsError(
                "strength_steps", "multipliers must be > 0 and increase from subtle to extreme"
            )
        if set(self.sizes) != set(SIZE_NAMES):
            raise SettingsError("sizes", f"needs exactly the keys {', '.join(SIZE_NAMES)}")
        for name, px in self.sizes.items():
            if not isinstance(px, int) or not MIN_SIZE <= px <= MAX_SIZE:
                raise SettingsError("sizes", f"{name} must be {MIN_SIZE}-{MAX_SIZE} px, got {px!r}")
        if self.default_size not in SIZE_NAMES:
            raise SettingsError("default_size", f"must be one of {', '.join(SIZE_NAMES)}")
        if self.default_strength not in STRENGTH_NAMES:
            raise SettingsError("default_strength", f"must be one of {', '.join(STRENGTH_NAMES)}")
        if not isinstance(self.reaction_emoji, str) or not self.reaction_emoji:
            raise SettingsError("reaction_emoji", "must be a non-empty emoji")
        if self.queue_url is not None:
            scheme = urllib.parse.urlsplit(self.queue_url).scheme
            if scheme not in ("redis", "rediss", "unix"):
                raise SettingsError("queue_url", "must start with redis://, rediss:// or unix://")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise SettingsError("log_level", f"must be DEBUG, INFO, WARNING or ERROR, got {self.log_level!r}")
        try:
            self.base_params()
        except Exception as error:  # ParameterError names the field; point at the setting
            parameter = getattr(error, "parameter", None)
            key = parameter if parameter in {f.name for f in dataclasses.fields(self)} else "engine_params"
            raise SettingsError(key, str(error)) from None

    def _validate_animation(self, positive_int: Callable[[str], None]) -> None:
        if self.animation_format not in ANIMATION_FORMATS:
            raise SettingsError("animation_format", f"must be one of {', '.join(ANIMATION_FORMATS)}")
        for key in ("animation_max_frames", "animation_max_source_frames", "animation_frame_iterations"):
            positive_int(key)
        if not isinstance(self.animation_size, int) or not MIN_SIZE <= self.animation_size <= MAX_SIZE:
            raise SettingsError(
                "animation_size", f"must be {MIN_SIZE}-{MAX_SIZE} px, got {self.animation_size!r}"
            )
        try:
            self.clip_limits()
        except Exception as error:  # ParameterError names the ClipLimits field
            parameter = getattr(error, "parameter", "max_frames")
            raise SettingsError(f"animation_{parameter}", str(error)) from None

    # ------------------------------------------------------------------ derived values
    def clip_limits(self) -> ClipLimits:
        """The limits a clip must meet (frames, seconds, pixels): checked from its header before
        the download ends, and again while it is decoded."""
        return ClipLimits(
            max_frames=self.animation_max_frames,
            max_seconds=self.animation_max_seconds,
            max_source_frames=self.animation_max_source_frames,
            max_pixels=self.animation_max_pixels,
        )

    def base_params(self) -> StyleParams:
        """The engine parameters every job starts from (size/strength are applied per job)."""
        values: dict[str, object] = {
            "size": self.sizes[self.default_size],
            "iterations": self.iterations,
            "scales": self.scales,
            "device": self.device,
            "precision": self.precision,
            "weights": self.weights,
        }
        if self.memory_budget:
            values["memory_budget"] = float(self.memory_budget)
        if self.time_budget:
            values["time_budget"] = float(self.time_budget)
        if self.time_limit:
            values["time_limit"] = float(self.time_limit)
        values.update(self.engine_params)
        return StyleParams.from_dict(values)

    @property
    def worker_threads(self) -> int:
        """Threads that paint in this process (local backend): the ``concurrency`` setting, or one
        per GPU (one on the CPU)."""
        if self.concurrency:
            return self.concurrency
        if self.device in ("auto", "cuda"):
            return max(1, gpu_count())
        return 1

    @property
    def largest_side(self) -> int:
        """The longest side any job paints (a size, or an upscale): inputs are kept no larger."""
        return max(*self.sizes.values(), self.max_upscale_side)

    @property
    def database_path(self) -> Path:
        return self.data_dir / "jobs.sqlite3"

    @property
    def inputs_dir(self) -> Path:
        return self.data_dir / "inputs"

    @property
    def results_dir(self) -> Path:
        """Results kept for their Upscale button (lossless, no metadata), expiring with the inputs."""
        return self.data_dir / "results"

    @property
    def guild_settings_path(self) -> Path:
        """Per-server settings (``/nst-admin``), in their own database next to the job records."""
        return self.data_dir / "guilds.sqlite3"


def gpu_count() -> int:
    """CUDA devices visible to this process (0 without CUDA or without a working torch)."""
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # pragma: no cover - torch is a dependency; stay robust anyway
        return 0


def redact_url(url: str | None) -> str | None:
    """``url`` with its password replaced by ``***`` (for logs and reprs)."""
    if not url:
        return url
    parts = urllib.parse.urlsplit(url)
    if not parts.password:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


#: Settings that are URLs which may carry a password (shown as ``***`` in reprs).
_URL_KEYS = ("proxy", "queue_url")
_PATH_KEYS = {"data_dir", "cache_dir", "config_dir", "env_file"}


def _field_types() -> dict[str, str]:
    return {f.name: str(f.type) for f in dataclasses.fields(Settings)}


def _coerce_env(key: str, raw: str) -> object:
    """Environment values are text; turn them into the field's type (tables as TOML inline).
    Settings.validate checks the result like a value from a TOML file."""
    kind = _field_types()[key]
    try:
        if key in _PATH_KEYS:
            return raw or None
        if kind.startswith("Mapping"):
            return tomllib.loads(f"v = {raw}")["v"]
        if kind.startswith("int"):
            return int(raw) if raw else None
        if kind == "float":
            return float(raw)
    except (ValueError, tomllib.TOMLDecodeError) as error:
        raise SettingsError(key, f"cannot read {ENV_PREFIX}{key.upper()}={raw!r}: {error}") from None
    return raw


def read_env_file(path: Path) -> dict[str, str]:
    """Read ``KEY=VALUE`` lines (``#`` comments, optional quotes, optional ``export``)."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def _warn_if_readable_by_others(path: Path) -> None:
    """The env_file holds the token: say so when the group or other users can read it."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning(
            "env_file %s is readable by %s (mode %o); it holds the bot token: chmod 600 it",
            path,
            "group and others"
            if mode & stat.S_IRGRP and mode & stat.S_IROTH
            else "its group"
            if mode & stat.S_IRGRP
            else "other users",
            stat.S_IMODE(mode),
        )


def _read_toml(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(str(path), f"is not valid TOML: {error}") from None
    except UnicodeDecodeError:  # TOML is UTF-8; tomllib does not wrap the decode error
        raise SettingsError(str(path), "is not valid TOML: the file is not UTF-8 text") from None
    bot_table = data.get("bot", data)
    if "token" in bot_table or TOKEN_ENV.lower() in bot_table:
        raise SettingsError("token", f"must not be in {path}; set {TOKEN_ENV} in the environment or env_file")
    return dict(bot_table)


def load_settings(environ: Mapping[str, str] | None = None, *, config_dir: Path | None = None) -> Settings:
    """Build the settings from the TOML layers and the environment; raises :class:`SettingsError`."""
    environ = os.environ if environ is None else environ
    config_dir = Path(environ.get("NST_CONFIG_DIR") or config_dir or default_config_dir())
    names = _field_types()
    values: dict[str, object] = {}
    layers = [config_dir / "bot.example.toml"]
    layers.append(
        Path(environ["NST_BOT_CONFIG"]) if environ.get("NST_BOT_CONFIG") else config_dir / "bot.toml"
    )
    for path in layers:
        if path.is_file():
            for key, value in _read_toml(path).items():
                if key not in names or key == "token":
                    raise SettingsError(key, f"is not a setting (in {path})")
                values[key] = value
        elif path != config_dir / "bot.toml" and path != config_dir / "bot.example.toml":
            raise SettingsError("NST_BOT_CONFIG", f"{path} does not exist")
    for key in names:
        env_name = ENV_PREFIX + key.upper()
        if key != "token" and env_name in environ:
            values[key] = _coerce_env(key, environ[env_name])
    for key in _PATH_KEYS:
        value = values.get(key)
        if value not in (None, ""):
            if not isinstance(value, (str, os.PathLike)):
                raise SettingsError(key, f"must be a path, got {value!r}")
            path = Path(value).expanduser()
            values[key] = path if path.is_absolute() else (config_dir.parent / path)
        elif key in values:
            values[key] = None
    if values.get("proxy") == "":
        values["proxy"] = None
    if values.get("queue_url") == "":
        values["queue_url"] = None
    if values.get("config_dir") is None:
        values["config_dir"] = config_dir
    if values.get("data_dir") is None:
        values.pop("data_dir", None)
    token = environ.get(TOKEN_ENV)
    env_file = values.get("env_file")
    if not token and isinstance(env_file, Path):
        if not env_file.is_file():
            raise SettingsError("env_file", f"{env_file} does not exist")
        _warn_if_readable_by_others(env_file)
        token = read_env_file(env_file).get(TOKEN_ENV)
    values["token"] = token.strip() if token else None
    try:
        # The values are TOML and environment text, typed only as object here: Settings.validate
        # (run by __post_init__) checks each one and names the key of a wrong one.
        return Settings(**values)  # type: ignore[arg-type]  # object values, checked by validate
    except TypeError as error:
        raise SettingsError("settings", str(error)) from None
