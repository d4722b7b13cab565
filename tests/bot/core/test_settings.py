"""Settings: layering, environment overrides, validation naming the key, the token kept secret."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import pytest

from bot.core.settings import Settings, SettingsError, load_settings
from tests.helpers import REPO_ROOT


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "config"
    directory.mkdir()
    shutil.copy(REPO_ROOT / "config" / "bot.example.toml", directory / "bot.example.toml")
    return directory


def test_example_file_gives_the_documented_defaults(config_dir: Path) -> None:
    settings = load_settings({}, config_dir=config_dir)
    assert settings.sizes["medium"] == 512
    assert settings.strength_steps == {"subtle": 0.5, "normal": 1.0, "strong": 2.0, "extreme": 4.0}
    assert settings.per_user_limit == 1 and settings.progress_interval == 5.0
    assert settings.reaction_emoji == "\N{FLEXED BICEPS}"
    assert settings.token is None
    assert settings.data_dir == config_dir.parent / "data"
    assert settings.proxy is None and settings.connect_timeout == 60.0
    assert settings.others_reruns_per_hour == 5


def test_proxy_and_connect_timeout_from_the_environment(config_dir: Path) -> None:
    settings = load_settings(
        {"NST_BOT_PROXY": "http://user:pw@proxy.example:3128", "NST_BOT_CONNECT_TIMEOUT": "5"},
        config_dir=config_dir,
    )
    assert settings.proxy == "http://user:pw@proxy.example:3128" and settings.connect_timeout == 5.0
    assert ":pw@" not in repr(settings) and "user:***@proxy.example" in repr(settings)


def test_the_rerun_budget_from_the_environment_may_be_zero(config_dir: Path) -> None:
    assert (
        load_settings({"NST_BOT_OTHERS_RERUNS_PER_HOUR": "0"}, config_dir=config_dir).others_reruns_per_hour
        == 0
    )


def test_the_animation_settings_make_the_engines_clip_limits(config_dir: Path) -> None:
    defaults = load_settings({}, config_dir=config_dir)
    assert defaults.animation_format == "webp" and defaults.animation_size == 256
    env = {
        "NST_BOT_ANIMATION_MAX_SECONDS": "2.5",
        "NST_BOT_ANIMATION_MAX_FRAMES": "8",
        "NST_BOT_ANIMATION_FORMAT": "mp4",
    }
    settings = load_settings(env, config_dir=config_dir)
    limits = settings.clip_limits()
    assert (limits.max_seconds, limits.max_frames, limits.max_source_frames) == (2.5, 8, 300)
    assert limits.max_pixels == 1920 * 1080 and settings.animation_format == "mp4"


def test_operator_file_then_environment_override(config_dir: Path, tmp_path: Path) -> None:
    (config_dir / "bot.toml").write_text("[bot]\nqueue_cap = 5\ncooldown_seconds = 1\n")
    settings = load_settings(
        {"NST_BOT_QUEUE_CAP": "9", "NST_BOT_SIZES": "{small = 64, medium = 96, large = 128}"},
        config_dir=config_dir,
    )
    assert settings.queue_cap == 9 and settings.cooldown_seconds == 1
    assert settings.sizes["large"] == 128
    other = tmp_path / "other.toml"
    other.write_text("[bot]\nqueue_cap = 3\n")
    assert load_settings({"NST_BOT_CONFIG": str(other)}, config_dir=config_dir).queue_cap == 3


@pytest.mark.parametrize(
    "env, key",
    [
        ({"NST_BOT_QUEUE_CAP": "0"}, "queue_cap"),
        ({"NST_BOT_QUEUE_CAP": "many"}, "queue_cap"),
        ({"NST_BOT_STRENGTH_STEPS": "{subtle = 3, normal = 1, strong = 2, extreme = 4}"}, "strength_steps"),
        ({"NST_BOT_DEFAULT_SIZE": "huge"}, "default_size"),
        ({"NST_BOT_DEVICE": "tpu"}, "device"),
        ({"NST_BOT_ENGINE_PARAMS": '{pooling = "median"}'}, "engine_params"),
        ({"NST_BOT_LOG_LEVEL": "LOUD"}, "log_level"),
        ({"NST_BOT_PROXY": "proxy.example:3128"}, "proxy"),
        ({"NST_BOT_PROXY": "socks5://proxy.example:1080"}, "proxy"),
        ({"NST_BOT_CONNECT_TIMEOUT": "0"}, "connect_timeout"),
        ({"NST_BOT_CONNECT_TIMEOUT": "soon"}, "connect_timeout"),
        ({"NST_BOT_OTHERS_RERUNS_PER_HOUR": "-1"}, "others_reruns_per_hour"),
        ({"NST_BOT_OTHERS_RERUNS_PER_HOUR": "lots"}, "others_reruns_per_hour"),
        ({"NST_BOT_ANIMATION_FORMAT": "avi"}, "animation_format"),
        ({"NST_BOT_ANIMATION_MAX_FRAMES": "0"}, "animation_max_frames"),
        ({"NST_BOT_ANIMATION_MAX_SECONDS": "0"}, "animation_max_seconds"),
        ({"NST_BOT_ANIMATION_MAX_SECONDS": "nan"}, "animation_max_seconds"),
        ({"NST_BOT_ANIMATION_MAX_PIXELS": "100"}, "animation_max_pixels"),
        ({"NST_BOT_ANIMATION_SIZE": "8"}, "animation_size"),
    ],
)
def test_bad_values_name_the_key(config_dir: Path, env: dict[str, str], key: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(env, config_dir=config_dir)
    assert error.value.key == key and key in str(error.value)


def test_unknown_keys_and_tokens_in_files_are_refused(config_dir: Path) -> None:
    (config_dir / "bot.toml").write_text("[bot]\nqueue_size = 3\n")
    with pytest.raises(SettingsError, match="queue_size"):
        load_settings({}, config_dir=config_dir)
    (config_dir / "bot.toml").write_text('[bot]\ntoken = "abc"\n')
    with pytest.raises(SettingsError, match="DISCORD_TOKEN"):
        load_settings({}, config_dir=config_dir)


def test_a_file_that_is_not_toml_or_not_utf8_names_the_file(config_dir: Path) -> None:
    operator_file = config_dir / "bot.toml"
    operator_file.write_text("[bot\n")
    with pytest.raises(SettingsError, match=r"bot\.toml.*not valid TOML"):
        load_settings({}, config_dir=config_dir)
    operator_file.write_bytes('[bot]\nlog_level = "café"\n'.encode("latin-1"))
    with pytest.raises(SettingsError, match=r"bot\.toml.*not UTF-8"):
        load_settings({}, config_dir=config_dir)


def test_token_from_environment_or_env_file_and_never_in_repr(config_dir: Path, tmp_path: Path) -> None:
    secret = "MTIz.secret-token-value"
    settings = load_settings({"DISCORD_TOKEN": secret}, config_dir=config_dir)
    assert settings.token == secret
    assert secret not in repr(settings) and secret not in str(settings)
    env_file = tmp_path / "bot.env"
    env_file.write_text(f"# operator secrets\nexport DISCORD_TOKEN='{secret}'\n")
    from_file = load_settings({"NST_BOT_ENV_FILE": str(env_file)}, config_dir=config_dir)
    assert from_file.token == secret


def test_constructed_directly_for_tests(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, concurrency=2)
    assert settings.worker_threads == 2 and settings.database_path.parent == tmp_path
    with pytest.raises(SettingsError, match="per_user_limit"):
        Settings(per_user_limit=0)


def test_every_setting_is_in_the_example_file_and_has_a_row_in_docs() -> None:
    """The token never goes in a file; config_dir is where the files are (``NST_CONFIG_DIR``)."""
    keys = {f.name for f in dataclasses.fields(Settings)} - {"token", "config_dir"}
    example = (REPO_ROOT / "config" / "bot.example.toml").read_text(encoding="utf-8")
    in_example = {match.group(1) for match in re.finditer(r"^(\w+) =", example, re.MULTILINE)}
    assert keys - in_example == set(), "add these to config/bot.example.toml"
    docs = (REPO_ROOT / "docs" / "bot.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `(\w+)` \| `NST_BOT_(\w+)` \|", docs, re.MULTILINE))
    assert {(key, key.upper()) for key in keys} - rows == set(), "add these rows to docs/bot.md section 3"


def test_queue_url_from_environment_checked_and_password_never_shown(config_dir: Path) -> None:
    assert load_settings({}, config_dir=config_dir).queue_url is None, "the embedded default"
    url = "rediss://:s3cret-pass@redis.internal:6380/2"
    settings = load_settings({"NST_BOT_QUEUE_URL": url}, config_dir=config_dir)
    assert settings.queue_url == url
    assert "s3cret-pass" not in repr(settings) and "redis.internal" in repr(settings)
    with pytest.raises(SettingsError, match="queue_url"):
        load_settings({"NST_BOT_QUEUE_URL": "http://redis:6379"}, config_dir=config_dir)


@pytest.mark.parametrize(
    "key, value",
    [
        ("retention_days", "nan"),
        ("cooldown_seconds", "inf"),
        ("interaction_token_seconds", "-inf"),
        ("progress_interval", "nan"),
        ("strength_steps", "{subtle = 0.5, normal = 1, strong = 2, extreme = inf}"),
        ("strength_steps", "{subtle = nan, normal = 1, strong = 2, extreme = 4}"),
    ],
)
def test_nan_and_infinity_are_refused(config_dir: Path, key: str, value: str) -> None:
    """``retention_days = nan`` compared false with everything, so expired inputs were never purged."""
    with pytest.raises(SettingsError) as error:
        load_settings({f"NST_BOT_{key.upper()}": value}, config_dir=config_dir)
    assert error.value.key == key and "finite" in str(error.value)
    (config_dir / "bot.toml").write_text(f"[bot]\n{key} = {value}\n")  # TOML has nan and inf too
    with pytest.raises(SettingsError) as error:
        load_settings({}, config_dir=config_dir)
    assert error.value.key == key and "finite" in str(error.value)


def test_env_file_readable_by_others_is_warned_about(
    config_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env_file = tmp_path / "bot.env"
    env_file.write_text("DISCORD_TOKEN=MTIz.secret-token-value\n")
    env_file.chmod(0o600)
    with caplog.at_level("WARNING", logger="bot.settings"):
        load_settings({"NST_BOT_ENV_FILE": str(env_file)}, config_dir=config_dir)
    assert not caplog.records
    for mode in (0o640, 0o604):
        env_file.chmod(mode)
        caplog.clear()
        with caplog.at_level("WARNING", logger="bot.settings"):
            settings = load_settings({"NST_BOT_ENV_FILE": str(env_file)}, config_dir=config_dir)
        assert settings.token == "MTIz.secret-token-value"
        (record,) = caplog.records
        text = record.getMessage()
        assert str(env_file) in text and "chmod 600" in text and "secret-token" not in text
