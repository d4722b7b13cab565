"""What a user reads when a job fails: one short line, never a traceback or a server path."""

from __future__ import annotations

from bot.runner import friendly_error, without_paths
from nst_engine.errors import InvalidImage, NSTError, PresetError


def test_server_paths_are_replaced_but_urls_and_words_stay() -> None:
    text = without_paths(
        "could not download https://upload.wikimedia.org/a/b.jpg: HTTP 404. "
        "Put the image at /root/.cache/nst-engine/presets/starry.img to use it offline; "
        "see ~/nst/x.toml or C:\\nst\\y.img; 3/4 done, and/or"
    )
    assert "/root" not in text and "~/nst" not in text and "C:\\nst" not in text
    assert "https://upload.wikimedia.org/a/b.jpg" in text and "3/4 done, and/or" in text
    assert text.count("(a file on the server)") == 3


def test_preset_failures_name_the_preset_not_the_file() -> None:
    local = PresetError(
        "preset 'starry': could not download https://x/y.jpg: timed out. Put the image at /srv/c/starry.img"
    )
    remote = NSTError(str(local))  # how a worker's PresetError comes back through Redis
    for error in (local, remote):
        text = friendly_error(error, preset="starry")
        assert "`starry`" in text and "/srv" not in text and "Put the image" not in text
    assert "/srv" not in friendly_error(remote)  # without the job's preset: still no path
    assert "/tmp" not in friendly_error(InvalidImage("cannot read /tmp/x/in.png"))
