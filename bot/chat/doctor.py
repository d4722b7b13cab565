"""``nst-bot check``: everything a first run needs, one line each, before the bot is invited.

An operator's first run used to fail one problem at a time, each behind a traceback. The doctor
checks every part a job depends on and prints one line per part, ``✓`` with what it found or ``✗``
with the cause and the fix: the settings, the token (Discord's answer), the registered commands
(against the code's), the model (on the device and in the precision a job will use) or, with
``queue_url``, the queue (Redis, classified as the start classifies it, and the live
``nst-worker``s, which load the model instead), the preset catalogue, and the data and cache
directories. A check that fails does not stop the others, except the settings, without which
nothing else can be checked; a check that crashes is a ✗ line too (``NST_DEBUG=1`` prints its
traceback).

Exit status: 0 when every check passes; otherwise 2 if a failure is one of configuration and 1 if
all failures are of the environment (the same split as a failed start, see :mod:`bot.startup`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import shutil
import tempfile
import time
import traceback
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import nst_engine
from nst_engine.device import resolve
from nst_engine.errors import ParameterError, PresetError
from nst_engine.presets import (
    CATALOG_FILE_NAME,
    PresetCatalog,
    PresetResolver,
    default_cache_dir,
    default_config_dir,
)

from ..core.settings import ENV_PREFIX, TOKEN_ENV, Settings, SettingsError, load_settings, redact_url
from ..core.store import MIN_FREE_BYTES  # below it a directory fails its check, and the bot stores no input
from .command_check import Check, commands_check
from .data_dir_lock import running_bot_note
from .failures import (
    CONFIGURATION,
    ENVIRONMENT,
    Connection,
    Failure,
    QueueUnreachable,
    classify,
    settings_failure,
)
from .startup import inspect_directory, login, queue_client

if TYPE_CHECKING:
    pass


def run_checks(guild_id: int | None, *, on_settings: Callable[[Settings], object] | None = None) -> int:
    """Run every check, print a line for each as it finishes, and return the exit status.

    ``on_settings`` is called once the settings load (the entry point sets up its redacting log
    handler there, so nothing a library logs can show the token).
    """
    checks: list[Check] = []

    def report(check: Check) -> None:
        checks.append(check)
        print(check.line, flush=True)

    try:
        settings = load_settings()
    except SettingsError as error:
        failure = settings_failure(error)
        report(Check("settings", failure=failure))
        return failure.status
    if on_settings is not None:
        on_settings(settings)
    # The check's lines are its report; INFO records (logging in, model loaded) would only interleave.
    root = logging.getLogger()
    root.setLevel(max(root.level, logging.WARNING))
    report(Check("settings", _settings_found(settings, os.environ)))
    cache_dir, cache_variable = _cache_dir(settings)
    steps: list[tuple[str, Callable[[], list[Check]]]] = [
        ("token", lambda: asyncio.run(_discord_checks(settings, guild_id))),
        # With workers (queue_url) the bot loads no model; the workers do, and the queue is checked.
        ("queue", lambda: [asyncio.run(_queue_check(settings))])
        if settings.queue_url
        else ("model", lambda: [_model_check(settings)]),
        ("presets", lambda: [_preset_check(settings)]),
        (
            "data dir",
            lambda: [_directory_check("data dir", settings.data_dir, "NST_BOT_DATA_DIR", running_bot_note)],
        ),
        ("cache dir", lambda: [_directory_check("cache dir", cache_dir, cache_variable)]),
    ]
    for name, step in steps:
        for check in _guarded(name, step):
            report(check)
    return max((check.failure.status for check in checks if check.failure), default=0)


def _guarded(name: str, step: Callable[[], list[Check]]) -> list[Check]:
    """A check that crashed is a ✗ line too, so one surprise does not hide the other checks."""
    try:
        return step()
    except Exception as error:
        if os.environ.get("NST_DEBUG"):
            traceback.print_exc()
        unexpected = Failure(
            f"unexpected {type(error).__name__}: {error}", "set NST_DEBUG=1 to see the traceback", ENVIRONMENT
        )
        return [Check(name, failure=unexpected)]


# ---------------------------------------------------------------------------- settings
def _settings_found(settings: Settings, environ: Mapping[str, str]) -> str:
    config_dir = Path(environ.get("NST_CONFIG_DIR") or default_config_dir())
    operator_file = (
        Path(environ["NST_BOT_CONFIG"]) if environ.get("NST_BOT_CONFIG") else config_dir / "bot.toml"
    )
    files = [str(path) for path in (config_dir / "bot.example.toml", operator_file) if path.is_file()]
    variables = sum(1 for name in environ if name.startswith(ENV_PREFIX) and name != "NST_BOT_CONFIG")
    return f"loaded from {' + '.join(files) or 'the defaults'} and {variables} {ENV_PREFIX}* variable(s)"


# ---------------------------------------------------------------------------- Discord
async def _discord_checks(settings: Settings, guild_id: int | None) -> list[Check]:
    """The token and the commands: one HTTP login, as ``nst-bot sync`` does (no gateway)."""
    if not settings.token:
        return [
            Check(
                "token",
                failure=Failure(
                    f"{TOKEN_ENV} is not set",
                    f"export {TOKEN_ENV}=... or name a file holding it in the env_file setting",
                    CONFIGURATION,
                ),
            ),
            _not_checked("commands", "no token", CONFIGURATION),
        ]
    from .app import NSTBot

    connection = Connection(settings.proxy, settings.connect_timeout)
    # The bot is built on a scratch data dir: the check must not create or change the real one.
    with tempfile.TemporaryDirectory(prefix="nst-bot-check-") as scratch:
        bot = NSTBot(dataclasses.replace(settings, data_dir=Path(scratch)), commands_only=True)
        async with bot:
            try:
                await login(bot, settings)
            except Exception as error:
                failure = classify(error, connection)
                return [Check("token", failure=failure), _not_checked("commands", "no login", failure.status)]
            user = bot.user
            assert user is not None  # set by login
            token = Check("token", f"accepted by Discord: {user.name} (id {user.id})")
            return [token, await commands_check(bot, guild_id, connection)]


def _not_checked(name: str, why: str, status: int) -> Check:
    """A check that needs a login; ``status`` is the login failure's, so the exit status follows it."""
    return Check(name, failure=Failure(f"not checked ({why})", "fix the token line above first", status))


# ---------------------------------------------------------------------------- model
def _model_check(settings: Settings) -> Check:
    """Load the model exactly as the bot's start does, on the device and precision jobs get."""
    params = settings.base_params()
    try:
        started = time.monotonic()
        setup = resolve(params.device, params.precision)
        nst_engine.preload(params)
    except ParameterError as error:
        return Check(
            "model",
            failure=Failure(
                str(error),
                f"change the {error.parameter} setting "
                f"({ENV_PREFIX}{error.parameter.upper()}; docs/bot.md, section 3)",
                CONFIGURATION,
            ),
        )
    except Exception as error:
        return Check(
            "model",
            failure=Failure(
                f"the {params.weights} VGG19 weights did not load ({type(error).__name__}: {error})",
                "check the weights setting (the README's 'VGG19 weights' says what each needs)",
                ENVIRONMENT,
            ),
        )
    seconds = time.monotonic() - started
    return Check(
        "model",
        f"VGG19 ({params.weights} weights) loaded on {setup.device} in {setup.precision} in {seconds:.1f} s",
    )


# ---------------------------------------------------------------------------- queue
async def _queue_check(settings: Settings) -> Check:
    """Redis answers at ``queue_url`` (judged as the start judges it), and an ``nst-worker`` is alive."""
    try:
        async with queue_client(settings) as client:
            workers = await asyncio.wait_for(client.workers(), timeout=settings.connect_timeout)
    except QueueUnreachable as error:
        return Check("queue", failure=classify(error, Connection(settings.proxy, settings.connect_timeout)))
    where = redact_url(settings.queue_url)
    if not workers:
        return Check(
            "queue",
            failure=Failure(
                f"Redis at {where} answers, but no nst-worker is running",
                "start one per GPU: nst-worker --device cuda:0 (README, 'More than one machine')",
                ENVIRONMENT,
            ),
        )
    # A worker's heartbeat carries only its name: the model, its device and precision are the
    # workers', and a test job is what shows them.
    return Check(
        "queue",
        f"Redis at {where} answers; {len(workers)} worker(s): {', '.join(workers)}. The workers load the "
        "model; to see the device and precision a job gets, paint one: nst PHOTO PAINTING -o out.png "
        f"--queue URL --precision {settings.precision} (its last line says 'on DEVICE/PRECISION')",
    )


# ---------------------------------------------------------------------------- presets
def _preset_check(settings: Settings) -> Check:
    """How many presets are ready on disk, and how many a first use would download."""
    path = settings.config_dir / CATALOG_FILE_NAME
    if not path.is_file():
        return Check(
            "presets", f"no catalogue at {path}: presets are off, /stylize needs an uploaded painting"
        )
    try:
        catalog = PresetCatalog.load(path)
    except PresetError as error:
        return Check("presets", failure=Failure(str(error), f"correct {path}", CONFIGURATION))
    resolver = PresetResolver(catalog, settings.cache_dir)
    missing = [preset.name for preset in catalog if preset.is_local and not resolver.is_cached(preset.name)]
    if missing:
        return Check(
            "presets",
            failure=Failure(
                f"{len(missing)} local image file(s) missing: {', '.join(missing)}",
                f"put the images where their file: sources in {path} point, or remove those presets",
                CONFIGURATION,
            ),
        )
    remote = [preset for preset in catalog if not preset.is_local and not resolver.is_cached(preset.name)]
    hosts = sorted({urllib.parse.urlsplit(preset.source).hostname or "?" for preset in remote})
    source = f" from {', '.join(hosts)}" if hosts else ""
    return Check(
        "presets",
        f"{len(catalog)} in the catalogue: {len(catalog) - len(remote)} on disk, "
        f"{len(remote)} to download on first use{source}",
    )


# ---------------------------------------------------------------------------- directories
def _cache_dir(settings: Settings) -> tuple[Path, str]:
    if settings.cache_dir is not None:
        return settings.cache_dir, "NST_BOT_CACHE_DIR"
    return default_cache_dir(), "NST_CACHE_DIR"


def _directory_check(
    name: str, path: Path, variable: str, note: Callable[[Path], str] = lambda path: ""
) -> Check:
    """Usable as the bot's start demands (writable, or creatable), and with room to spare;
    ``note`` adds to a ✓ what else is true of ``path`` (a bot running on the data dir)."""
    directory = inspect_directory(path, variable)
    if directory.failure is not None:
        return Check(name, failure=directory.failure)
    free = shutil.disk_usage(directory.existing).free
    if free < MIN_FREE_BYTES:
        return Check(
            name,
            failure=Failure(
                f"{directory.path}: only {_size(free)} free",
                f"free some space, or point {variable} at a larger disk (at least {_size(MIN_FREE_BYTES)})",
                ENVIRONMENT,
            ),
        )
    return Check(name, f"{directory.path} {directory.state}, {_size(free)} free{note(directory.path)}")


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
