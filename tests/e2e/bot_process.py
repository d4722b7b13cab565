"""Run the real bot in a child process against a fake Discord (for tests that kill it).

A test that must kill the bot mid-job (SIGKILL: no shutdown hook, no cleanup) cannot do it to an
in-process bot, so it starts this module with ``python -m tests.e2e.bot_process ARGS...``. It
points discord.py at the fake through discord.py's own settings (``Route.BASE`` and
``DiscordWebSocket.DEFAULT_GATEWAY``, read from ``FAKE_DISCORD_API`` / ``FAKE_DISCORD_GATEWAY``)
and then runs the bot's normal entry point, ``bot.__main__.main``, with ARGS — nothing of the bot
is patched.

The disk can be faked too, for ``nst-bot check``'s directory lines: ``FAKE_DISK_FREE_BYTES=N``
makes every disk report N bytes free (a full disk is not something a test can make), and
``FAKE_DISK_ERRNO=N`` makes asking for the free space fail with that OS error (a failing disk).
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any


def fake_the_disk() -> None:
    """Replace ``shutil.disk_usage`` as ``FAKE_DISK_FREE_BYTES`` / ``FAKE_DISK_ERRNO`` ask."""
    free, errno = os.environ.get("FAKE_DISK_FREE_BYTES"), os.environ.get("FAKE_DISK_ERRNO")
    real = shutil.disk_usage

    def disk_usage(path: Any) -> Any:
        if errno:
            raise OSError(int(errno), os.strerror(int(errno)), str(path))
        usage = real(path)
        return usage._replace(free=int(free)) if free else usage

    if free or errno:
        shutil.disk_usage = disk_usage


def main() -> int:
    import yarl
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

    Route.BASE = os.environ["FAKE_DISCORD_API"]
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["FAKE_DISCORD_GATEWAY"])
    fake_the_disk()

    from bot.__main__ import main as bot_main

    result = bot_main(sys.argv[1:])
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
