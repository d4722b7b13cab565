"""Run the real bot in a child process against a fake Discord (for tests that kill it).

A test that must kill the bot mid-job (SIGKILL: no shutdown hook, no cleanup) cannot do it to an
in-process bot, so it starts this module with ``python -m tests.e2e.bot_process ARGS...``. It
points discord.py at the fake through discord.py's own settings (``Route.BASE`` and
``DiscordWebSocket.DEFAULT_GATEWAY``, read from ``FAKE_DISCORD_API`` / ``FAKE_DISCORD_GATEWAY``)
and then runs the bot's normal entry point, ``bot.__main__.main``, with ARGS — nothing of the bot
is patched.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    import yarl
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

    Route.BASE = os.environ["FAKE_DISCORD_API"]
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ["FAKE_DISCORD_GATEWAY"])

    from bot.__main__ import main as bot_main

    result = bot_main(sys.argv[1:])
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
