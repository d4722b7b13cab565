"""write_atomically: the one way the engine and the bot write a file whole."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from nst_engine.files import TEMPORARY_SUFFIX, write_atomically


def test_writes_the_file_whole_and_private(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    write_atomically(target, b"new contents")
    assert target.read_bytes() == b"new contents"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_a_full_disk_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def disk_full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError) as raised:
        write_atomically(target, b"new")
    assert raised.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"old"
    assert not list(tmp_path.glob("*" + TEMPORARY_SUFFIX))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
