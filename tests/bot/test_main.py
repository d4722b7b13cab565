"""The entry point: a missing token is one line and exit 2; logs never show the token."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

from bot.__main__ import RedactingFilter, main, parse_args
from tests.helpers import REPO_ROOT

SECRET = "MTIzNDU2.Gh7x.super-secret-token"


def test_no_token_one_line_exit_2(monkeypatch, capsys, tmp_path) -> None:
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    monkeypatch.setenv("NST_BOT_DATA_DIR", str(tmp_path))
    assert main([]) == 2
    err = capsys.readouterr().err.strip()
    assert "DISCORD_TOKEN" in err and len(err.splitlines()) == 1


def test_python_dash_m_bot_without_token(tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "NST_BOT_DATA_DIR": str(tmp_path), "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "bot"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and "DISCORD_TOKEN" in done.stderr


def test_bad_setting_is_one_line_exit_2(monkeypatch, capsys) -> None:
    monkeypatch.setenv("NST_BOT_QUEUE_CAP", "-1")
    assert main([]) == 2
    err = capsys.readouterr().err.strip()
    assert "queue_cap" in err and len(err.splitlines()) == 1, err


def test_sync_arguments() -> None:
    assert parse_args(["sync", "--guild", "123"]).guild == 123
    assert parse_args(["sync"]).guild is None
    assert parse_args([]).command is None


def test_redaction_covers_messages_arguments_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(SECRET))
    logger = logging.getLogger("tests.bot.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("token is %s", SECRET)
        logger.warning(f"inline {SECRET}")
        try:
            raise RuntimeError(f"401 Unauthorized for Bot {SECRET}")
        except RuntimeError:
            logger.exception("login failed")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert SECRET not in text
    assert text.count("[REDACTED]") == 3 and "Traceback" in text


def test_logging_hides_the_queue_password(tmp_path, capsys) -> None:
    from bot.__main__ import setup_logging
    from bot.core.settings import Settings

    settings = Settings(data_dir=tmp_path, queue_url="redis://:pw-1234567@redis.internal:6379/0")
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging(settings)
        logging.getLogger("tests.bot.queue").warning("cannot reach %s", settings.queue_url)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    logged = capsys.readouterr().err
    assert "redis.internal" in logged and "pw-1234567" not in logged


def test_redaction_never_raises_on_a_malformed_log_call() -> None:
    """A format string that does not match its arguments must not raise in the caller.

    Without a filter, logging reports such a call on stderr and goes on; the filter used to call
    ``getMessage()`` itself and let the TypeError escape into the code that logged.
    """
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(SECRET))
    logger = logging.getLogger("tests.bot.redaction.malformed")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("two places %s %s, one argument", SECRET)  # TypeError in getMessage()
        logger.warning("a number %d", f"not a number {SECRET}")  # TypeError too
        logger.warning({"a mapping": SECRET})  # not a string at all
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert SECRET not in text
    assert "two places" in text and "a number" in text and "a mapping" in text
    assert text.count("[REDACTED]") == 3
