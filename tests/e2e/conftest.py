"""Fixtures for end-to-end tests: the fake Discord, tiny-run settings, the real bot on top."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.chat.app import NSTBot
from bot.core.settings import Settings
from tests.e2e.harness import running_bot
from tests.fakediscord import FakeAttachment, FakeDiscord, FakeInteraction, FakeMessage
from tests.fakediscord.policy import mention_policy_breaches, refused_bodies
from tests.helpers import REPO_ROOT
from tests.helpers.images import content_image, phone_photo_jpeg, png_bytes, stripes_style

#: Output sizes small/medium/large in tests: tiny, so a run takes a fraction of a second.
TEST_SIZES = {"small": 32, "medium": 40, "large": 48}


@pytest.fixture(autouse=True)
def discord_policy(fake_discord: FakeDiscord) -> Iterator[None]:
    """Checked over every request of every end-to-end test: the mention policy, and no payload
    that Discord would refuse (the bot may swallow a refusal; the test must not)."""
    yield
    breaches = mention_policy_breaches(fake_discord) + refused_bodies(fake_discord)
    assert not breaches, "\n".join(breaches)


@pytest.fixture
def self_signed_context(tmp_path: Path) -> ssl.SSLContext:
    """A server TLS context with a certificate no one trusts (as behind an intercepting proxy)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subject = ["-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)]
    command = [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", *subject]
    subprocess.run(command, check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@pytest.fixture
async def self_signed_server(self_signed_context: ssl.SSLContext) -> AsyncIterator[int]:
    """A TLS server on loopback presenting the untrusted certificate."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=self_signed_context)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()


@pytest.fixture(scope="session")
def phone_photo_bytes() -> bytes:
    """A 12 MP, 4 MB JPEG like a phone's, made once per session (it takes about a second)."""
    return phone_photo_jpeg()


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A config dir with one local-file preset (no network needed)."""
    directory = tmp_path / "config"
    (directory / "paintings").mkdir(parents=True)
    stripes_style(48, 48).save(directory / "paintings" / "stripes.png")
    (directory / "presets.toml").write_text(
        '[[preset]]\nname = "stripes"\ntitle = "Stripes"\nartist = "Test Painter"\nyear = "2024"\n'
        'licence = "CC0"\nsource = "file:paintings/stripes.png"\n',
        encoding="utf-8",
    )
    return directory


@pytest.fixture
def make_settings(tmp_path: Path, config_dir: Path, fake_discord: FakeDiscord) -> Callable[..., Settings]:
    # The fake keeps Discord's real 3 s acknowledgement deadline (FakeDiscord.ack_deadline).
    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = dict(
            data_dir=tmp_path / "data",
            cache_dir=tmp_path / "cache",
            config_dir=config_dir,
            concurrency=1,
            queue_cap=50,
            per_user_limit=1,
            cooldown_seconds=0.0,
            progress_interval=0.2,
            preview_count=1,
            preview_size=32,
            sizes=TEST_SIZES,
            max_upscale_side=2 * TEST_SIZES["large"],
            iterations=4,
            scales=1,
            device="cpu",
            precision="fp32",
            token=fake_discord.token,
        )
        values.update(overrides)
        return Settings(**values)

    return build


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@contextlib.asynccontextmanager
async def started(settings: Settings, fake: FakeDiscord) -> AsyncIterator[NSTBot]:
    """The real bot, connected to the fake and with its model loaded."""
    bot = NSTBot(settings, guild_ready_timeout=0.05)
    async with running_bot(bot, fake):
        await fake.wait_for(lambda: bot.model_ready.is_set(), timeout=60)
        yield bot


@pytest.fixture
async def stylebot(settings: Settings, fake_discord: FakeDiscord) -> AsyncIterator[NSTBot]:
    async with started(settings, fake_discord) as bot:
        yield bot


def photo(fake: FakeDiscord, width: int = 48, height: int = 40) -> FakeAttachment:
    return fake.make_attachment(
        png_bytes(content_image(width, height)), "photo.png", content_type="image/png"
    )


def painting(fake: FakeDiscord) -> FakeAttachment:
    return fake.make_attachment(png_bytes(stripes_style(48, 48)), "painting.png", content_type="image/png")


def results(fake: FakeDiscord) -> list[FakeMessage]:
    """Messages carrying a painted result, oldest first."""
    return [
        m
        for m in fake.messages.values()
        if not m.deleted and any(a.filename.startswith("stylized-") for a in m.attachments)
    ]


def result_file(message: FakeMessage) -> FakeAttachment:
    return next(a for a in message.attachments if a.filename.startswith("stylized-"))


def bot_environment(fake: FakeDiscord, config_dir: Path, data_dir: Path, cache_dir: Path) -> dict[str, str]:
    """The environment of a bot run as a child process against ``fake`` (see :func:`crash_bot_mid_job`)."""
    sizes = ", ".join(f"{k} = {v}" for k, v in TEST_SIZES.items())
    return {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "FAKE_DISCORD_API": fake.api_base,
        "FAKE_DISCORD_GATEWAY": fake.gateway_url,
        "DISCORD_TOKEN": fake.token,
        "NST_CONFIG_DIR": str(config_dir),
        "NST_BOT_DATA_DIR": str(data_dir),
        "NST_BOT_CACHE_DIR": str(cache_dir),
        "NST_BOT_SIZES": "{" + sizes + "}",
        "NST_BOT_ITERATIONS": "2000",
        "NST_BOT_SCALES": "1",
        "NST_BOT_DEVICE": "cpu",
        "NST_BOT_PRECISION": "fp32",
        "NST_BOT_PROGRESS_INTERVAL": "0.2",
        "NST_BOT_COOLDOWN_SECONDS": "0",
    }


async def crash_bot_mid_job(
    fake: FakeDiscord, environment: dict[str, str], log_path: Path
) -> FakeInteraction:
    """Run the real bot in a child process (``tests.e2e.bot_process``), have Alice ask it for a
    painting, and SIGKILL it once the job shows progress: a crash, no shutdown hook. The child's
    stderr is written to ``log_path``. Returns Alice's /stylize."""
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(  # noqa: ASYNC220 - started once; the test then waits on the fake
            [sys.executable, "-m", "tests.e2e.bot_process"],
            env=environment,
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
        try:
            await fake.wait_for(lambda: fake.connected or process.poll() is not None, timeout=90)
            # The log is read only to explain a failed start.
            assert process.poll() is None, log_path.read_text(errors="replace")[-2000:]  # noqa: ASYNC240
            interaction = await fake.slash_command(
                "stylize", {"content": photo(fake), "style": painting(fake)}, user=fake.alice
            )
            await fake.wait_for(lambda: (m := fake.original(interaction)) and "%)" in m.content, timeout=90)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
    return interaction


async def let_anyone_rerun(fake: FakeDiscord) -> None:
    """A server admin lets members re-run each other's pictures (``/nst-admin reruns``); by
    default only the person who asked may."""
    interaction = await fake.slash_command("nst-admin reruns", {"who": "anyone"}, user=fake.admin)
    answer = await fake.wait_for(lambda: fake.original(interaction), timeout=30)
    assert answer.content.startswith("Saved."), answer.content
