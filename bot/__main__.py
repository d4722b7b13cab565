"""``nst-bot`` / ``python -m bot``: run the bot; ``nst-bot sync [--guild ID]`` registers the commands;
``nst-bot check [--guild ID]`` checks the set-up before a first run (see :mod:`bot.chat.doctor`).

Commands are synced only on request: Discord caps command creations per day, and a global sync
takes up to an hour to show, so syncing on every start would be slow and wasteful.

A start that fails prints one line (cause and fix, see :mod:`bot.chat.failures`) and exits 2 for a
configuration problem, 1 for a network or Discord one; ``NST_DEBUG=1`` adds the traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
import tempfile
import traceback
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

import discord

from .chat.data_dir_lock import hold_data_dir
from .chat.failures import Connection, classify, settings_failure
from .chat.startup import connect, login, reach_queue, require_data_dir
from .core.settings import TOKEN_ENV, Settings, SettingsError, load_settings

log = logging.getLogger("bot")


class RedactingFilter(logging.Filter):
    """Replaces secrets in every record (message, arguments and exception text) with ``[REDACTED]``."""

    def __init__(self, *secrets: str) -> None:
        super().__init__()
        self.secrets = [secret for secret in secrets if secret]

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[REDACTED]")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Never raises: a filter's exception would escape into the code that logged."""
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed call ("%s %s" with one argument): keep both parts, as text
            message = f"{record.msg!r} (bad logging arguments: {record.args!r})"
        try:
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
        except Exception:
            record.exc_info, record.exc_text = None, "(the exception could not be formatted)"
        record.msg = self.redact(message)
        record.args = None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class HoldUntilStarted(logging.Filter):
    """Holds INFO and DEBUG records back until the start has succeeded; later ones pass at once.

    A start that fails prints one line and nothing else: without this, discord.py's "logging in
    using static token" and the model's "loaded" came before it, so an operator had to find the
    line that mattered. Once the bot is connected (or a sync has logged in) :meth:`release` prints
    what was held, in order; a failed start drops it (``NST_DEBUG=1`` prints it). Warnings and
    errors are never held.
    """

    def __init__(self, handler: logging.Handler) -> None:
        super().__init__()
        self.handler = handler
        self.held: list[logging.LogRecord] = []
        self.holding = True

    def filter(self, record: logging.LogRecord) -> bool:
        if self.holding and record.levelno < logging.WARNING:
            self.held.append(record)
            return False
        return True

    def release(self) -> None:
        self.holding = False
        held, self.held = self.held, []
        for record in held:
            self.handler.handle(record)


def setup_logging(settings: Settings) -> logging.Handler:
    """Log to stderr; the filter sits on the handler, so records from every logger pass it."""
    proxy_password = urllib.parse.urlsplit(settings.proxy).password if settings.proxy else None
    queue_password = urllib.parse.urlsplit(settings.queue_url).password if settings.queue_url else None
    redactor = RedactingFilter(settings.token or "", proxy_password or "", queue_password or "")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(redactor)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    return handler


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nst-bot", description="Neural style transfer Discord bot.")
    sub = parser.add_subparsers(dest="command")
    sync = sub.add_parser("sync", help="register the slash commands with Discord, then exit")
    sync.add_argument(
        "--guild",
        type=int,
        default=None,
        help="sync to this guild only (instant); without it, globally (up to an hour)",
    )
    check = sub.add_parser("check", help="check settings, token, commands, model, presets and directories")
    check.add_argument(
        "--guild",
        type=int,
        default=None,
        help="check the commands registered in this guild; without it, the global ones",
    )
    return parser.parse_args(argv)


async def sync_commands(settings: Settings, guild_id: int | None, started: HoldUntilStarted) -> int:
    """Log in over HTTP only, push the command tree, and report how many commands Discord has."""
    from .chat.app import NSTBot

    require_data_dir(settings)
    # The commands need nothing from the data dir; a scratch one keeps a sync run beside the bot
    # off its files (opening the job store there would delete the bot's writes in progress).
    with tempfile.TemporaryDirectory(prefix="nst-bot-sync-") as scratch:
        bot = NSTBot(dataclasses.replace(settings, data_dir=Path(scratch)), commands_only=True)
        await reach_queue(settings)
        async with bot:
            await login(bot, settings)  # runs setup_hook, which builds the command tree
            started.release()
            if guild_id is not None:
                guild = discord.Object(id=guild_id)
                bot.tree.copy_global_to(guild=guild)
                synced = await bot.tree.sync(guild=guild)
                print(f"synced {len(synced)} command(s) to guild {guild_id}")
            else:
                synced = await bot.tree.sync()
                print(f"synced {len(synced)} command(s) globally (may take up to an hour to appear)")
    return 0


async def run_bot(settings: Settings, started: HoldUntilStarted) -> int:
    from .chat.app import NSTBot

    require_data_dir(settings)
    hold_data_dir(settings.data_dir)  # one bot per data dir: a second one stops here (exit 2)
    bot = NSTBot(settings)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # A service manager's stop: close gracefully, so running jobs tell their users.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, lambda: asyncio.ensure_future(bot.close()))
    await reach_queue(settings)
    async with bot:
        await login(bot, settings)
        # Until the first READY a failure ends the start; from then on discord.py reconnects by itself.
        await connect(bot, on_first_ready=started.release)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "check":
        from .chat.doctor import run_checks

        return run_checks(args.guild, on_settings=setup_logging)
    try:
        settings = load_settings()
    except SettingsError as error:
        failure = settings_failure(error)
        print(f"nst-bot: {failure.line}", file=sys.stderr)
        return failure.status
    if not settings.token:
        print(
            f"nst-bot: set {TOKEN_ENV} (in the environment or the env_file setting) to the bot token",
            file=sys.stderr,
        )
        return 2
    handler = setup_logging(settings)
    started = HoldUntilStarted(handler)
    handler.addFilter(started)
    try:
        if args.command == "sync":
            return asyncio.run(sync_commands(settings, args.guild, started))
        return asyncio.run(run_bot(settings, started))
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        if os.environ.get("NST_DEBUG"):
            started.release()
            traceback.print_exc()
        failure = classify(error, Connection(settings.proxy, settings.connect_timeout))
        print(f"nst-bot: {failure.line}", file=sys.stderr)
        return failure.status


if __name__ == "__main__":
    sys.exit(main())
