"""``nst --queue``: the flags the queue adds to the engine's command line (runs: tests/e2e/test_scale.py)."""

from __future__ import annotations

import pytest

from nst_engine.cli import build_parser, installed_painters
from nst_queue.painter import QUEUE_URL_ENV, QueuePainter

ARGS = ["photo.png", "style.png", "-o", "out.png"]


def test_the_installed_nst_command_offers_the_queue() -> None:
    assert any(isinstance(painter, QueuePainter) for painter in installed_painters())


def test_queue_url_comes_from_the_flag() -> None:
    painter = QueuePainter()
    args = build_parser([painter]).parse_args([*ARGS, "--queue", "redis://host:6379/0"])
    assert painter.wanted(args)
    assert args.queue == "redis://host:6379/0"


def test_queue_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The password stays out of the process list: NST_QUEUE_URL instead of --queue URL."""
    monkeypatch.setenv(QUEUE_URL_ENV, "redis://:secret@host:6379/0")
    painter = QueuePainter()
    args = build_parser([painter]).parse_args(ARGS)
    assert painter.wanted(args)
    assert args.queue == "redis://:secret@host:6379/0"


def test_local_paints_here_even_with_the_environment_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(QUEUE_URL_ENV, "redis://host:6379/0")
    painter = QueuePainter()
    assert not painter.wanted(build_parser([painter]).parse_args([*ARGS, "--local"]))


def test_no_queue_without_flag_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(QUEUE_URL_ENV, raising=False)
    painter = QueuePainter()
    assert not painter.wanted(build_parser([painter]).parse_args(ARGS))
