"""Run ``nst-bot`` as an operator does: the real entry point in a child process, against the fake.

The child is ``python -m tests.e2e.bot_process ARGS`` (discord.py pointed at the fake, nothing of
the bot patched), with a clean environment: only what a test passes, so an operator's own
``NST_*`` or proxy variables on the test machine cannot change the outcome.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.fakediscord import FakeDiscord
from tests.helpers import REPO_ROOT

#: Environment variables that would change how the child connects or is configured.
_DROPPED_PREFIXES = ("NST_", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "DISCORD_TOKEN")


@dataclass
class Run:
    """What the child printed, and its exit status."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def last_error_line(self) -> str:
        lines = self.stderr.strip().splitlines()
        return lines[-1] if lines else ""


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def base_environment(fake: FakeDiscord, config_dir: Path, data_dir: Path, cache_dir: Path) -> dict[str, str]:
    environment = {
        name: value for name, value in os.environ.items() if not name.upper().startswith(_DROPPED_PREFIXES)
    }
    environment.update(
        {
            "PYTHONPATH": str(REPO_ROOT),
            "FAKE_DISCORD_API": fake.api_base,
            "FAKE_DISCORD_GATEWAY": fake.gateway_url,
            "DISCORD_TOKEN": fake.token,
            "NST_CONFIG_DIR": str(config_dir),
            "NST_BOT_DATA_DIR": str(data_dir),
            "NST_BOT_CACHE_DIR": str(cache_dir),
            "NST_BOT_DEVICE": "cpu",
            "NST_BOT_PRECISION": "fp32",
        }
    )
    return environment


async def start(args: list[str], environment: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.e2e.bot_process",
        *args,
        env=environment,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(process: asyncio.subprocess.Process, timeout: float = 120) -> Run:
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=timeout)
    assert process.returncode is not None
    return Run(process.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace"))


async def run(args: list[str], environment: dict[str, str], timeout: float = 120) -> Run:
    return await finish(await start(args, environment), timeout)
