"""What a user reads when a job fails: one short line, never a traceback or a server path."""

from __future__ import annotations

from bot.core.errors import friendly_error, without_paths
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


CPU_OOM = (
    "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory: you tried to allocate 9 GB"
)


def test_out_of_memory_on_cpu_worker_is_told_like_cuda() -> None:
    """A worker's CPU out-of-memory crosses Redis as "out_of_memory", not as an internal error."""
    from nst_queue.protocol import failure, outcome_to_result

    outcome = failure(RuntimeError(CPU_OOM))
    assert outcome["kind"] == "out_of_memory"
    try:
        outcome_to_result(outcome)
    except Exception as error:
        assert "try a smaller size" in friendly_error(error)
    else:
        raise AssertionError("a failure outcome must raise")
