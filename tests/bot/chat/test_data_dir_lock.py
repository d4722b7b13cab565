"""One bot per data dir: the lock refuses a second process and names the first, goes with its
process however it ends, is only probed by ``nst-bot check``, and degrades to a warning where
locks are unavailable. The holder is a real second process (a lock is per process)."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import bot.chat.data_dir_lock as lock_module
from bot.chat.data_dir_lock import (
    LOCK_FILE_NAME,
    DataDirBusy,
    Holder,
    hold_data_dir,
    running_bot,
    running_bot_note,
)
from bot.chat.failures import CONFIGURATION, Connection, classify
from tests.helpers import REPO_ROOT

_HOLD = (
    "import sys; from pathlib import Path; from bot.chat.data_dir_lock import hold_data_dir; "
    "hold_data_dir(Path(sys.argv[1])); print('held', flush=True); sys.stdin.read()"
)


@pytest.fixture
def holder_process(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A process holding ``tmp_path / "data"``'s lock until its stdin closes or it is killed."""
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(tmp_path / "data")],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline() == "held\n"
    yield process
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)


def test_a_second_process_is_refused_with_one_line_naming_the_first(
    tmp_path: Path, holder_process: subprocess.Popen[str]
) -> None:
    data_dir = tmp_path / "data"
    with pytest.raises(DataDirBusy) as refused:
        hold_data_dir(data_dir)
    # the start's classifier turns it into its one line and exit 2, like any unusable data dir
    failure = classify(refused.value, Connection(None, 5.0))
    assert failure.status == CONFIGURATION
    assert re.fullmatch(
        rf"another nst-bot \(pid {holder_process.pid}, started \d\d:\d\d\) is using the data dir "
        rf"{re.escape(str(data_dir.absolute()))}; stop it or give this one another NST_BOT_DATA_DIR",
        failure.line,
    ), failure.line
    assert holder_process.poll() is None, "the first process is untouched"


def test_check_sees_the_holder_without_taking_the_lock(
    tmp_path: Path, holder_process: subprocess.Popen[str]
) -> None:
    data_dir = tmp_path / "data"
    holder = running_bot(data_dir)
    assert holder is not None and holder.pid == holder_process.pid
    assert f"another nst-bot (pid {holder_process.pid}, started " in running_bot_note(data_dir)
    with pytest.raises(DataDirBusy):  # the probe let go: the holder still holds it
        hold_data_dir(data_dir)


def test_the_lock_goes_with_its_process_even_when_killed(
    tmp_path: Path, holder_process: subprocess.Popen[str]
) -> None:
    data_dir = tmp_path / "data"
    holder_process.send_signal(signal.SIGKILL)
    holder_process.wait(timeout=10)
    assert (data_dir / LOCK_FILE_NAME).exists(), "the file stays; only the lock went"
    assert running_bot(data_dir) is None and running_bot_note(data_dir) == ""
    hold_data_dir(data_dir)  # no stale lock to delete by hand
    written = json.loads((data_dir / LOCK_FILE_NAME).read_text(encoding="utf-8"))
    assert written["pid"] == os.getpid() and abs(written["started"] - time.time()) < 60
    hold_data_dir(data_dir)  # this process holds it already: nothing to do


def test_the_lock_creates_a_private_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "new" / "data"
    hold_data_dir(data_dir)
    assert (data_dir.stat().st_mode & 0o777) == 0o700
    assert ((data_dir / LOCK_FILE_NAME).stat().st_mode & 0o777) == 0o600


def test_the_probe_creates_nothing(tmp_path: Path) -> None:
    assert running_bot(tmp_path / "data") is None
    assert not (tmp_path / "data").exists()


def test_a_holder_that_has_not_written_itself_yet_is_still_named_as_a_bot(
    tmp_path: Path, holder_process: subprocess.Popen[str]
) -> None:
    (tmp_path / "data" / LOCK_FILE_NAME).write_text("not json", encoding="utf-8")
    with pytest.raises(DataDirBusy) as refused:
        hold_data_dir(tmp_path / "data")
    assert refused.value.failure.line.startswith("another nst-bot is using the data dir ")


def test_the_holder_is_described_with_its_date_and_host_when_they_differ() -> None:
    started = time.mktime((2026, 3, 1, 9, 12, 0, 0, 0, -1))
    holder = Holder(pid=1234, started=started, host="other-machine")
    assert (
        holder.describe(now=started + 3600) == "another nst-bot (pid 1234, started 09:12, on other-machine)"
    )
    assert holder.describe(now=started + 3 * 86400).startswith(
        "another nst-bot (pid 1234, started 2026-03-01 09:12"
    )


def test_without_file_locks_the_bot_runs_unlocked_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Windows has no ``fcntl``: a warning, not a failed start."""
    monkeypatch.setattr(lock_module, "fcntl", None)
    with caplog.at_level(logging.WARNING, logger="bot.chat.data_dir_lock"):
        hold_data_dir(tmp_path / "data")
    assert "cannot lock the data dir" in caplog.text and "make sure no other nst-bot uses it" in caplog.text
    assert running_bot(tmp_path / "data") is None
