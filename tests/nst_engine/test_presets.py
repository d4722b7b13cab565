"""Preset catalogue validation and the resolver's download policy, against a server on 127.0.0.1."""

from __future__ import annotations

import threading
import time
import urllib.parse
from pathlib import Path

import pytest
from PIL import Image

from nst_engine.errors import Cancelled, PresetError
from nst_engine.presets import (
    CACHED_IMAGE_SUFFIX,
    PRESET_FIELDS,
    Preset,
    PresetCatalog,
    PresetCatalogError,
    PresetResolver,
    default_cache_dir,
    default_catalog_path,
    default_config_dir,
)
from tests.helpers.images import png_bytes, stripes_style
from tests.helpers.preset_http import PresetHTTPServer, Route, unused_local_port

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config"


def entry(name: str = "test-painting", **overrides: object) -> dict[str, object]:
    values: dict[str, object] = {
        "name": name,
        "title": "Test Painting",
        "artist": "A. Tester",
        "year": "c. 1900",
        "licence": "public domain",
        "source": "https://commons.wikimedia.org/wiki/Special:FilePath/Test.jpg?width=1024",
    }
    values.update(overrides)
    return values


def toml_catalog(tmp_path: Path, entries: list[dict[str, object]]) -> Path:
    lines = []
    for values in entries:
        lines.append("[[preset]]")
        lines += [f"{key} = {value!r}".replace("'", '"') for key, value in values.items()]
        lines.append("")
    path = tmp_path / "presets.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def painting_png(width: int = 64, height: int = 48) -> bytes:
    return png_bytes(stripes_style(width, height))


# ---------------------------------------------------------------------------- the real catalogue
def test_shipped_catalogue_has_at_least_twelve_complete_public_domain_presets() -> None:
    catalog = PresetCatalog.load(REPO_CONFIG / "presets.toml")
    assert len(catalog) >= 12
    for preset in catalog:
        for name in PRESET_FIELDS:
            assert getattr(preset, name).strip(), (preset.name, name)
        assert preset.licence == "public domain"
        parts = urllib.parse.urlsplit(preset.source)
        assert (parts.scheme, parts.hostname) == ("https", "commons.wikimedia.org")
        assert parts.path.startswith("/wiki/Special:FilePath/")
        assert urllib.parse.parse_qs(parts.query) == {"width": ["1024"]}
    names = catalog.names()
    assert names[0] == "starry-night" and "great-wave" in names and len(set(names)) == len(names)
    assert catalog.get("great-wave").year == "c. 1831"


def test_shipped_sources_are_the_commons_file_names_url_quoted() -> None:
    catalog = PresetCatalog.load(REPO_CONFIG / "presets.toml")
    file_name = urllib.parse.unquote(catalog.get("sleeping-gypsy").source.split("FilePath/")[1].split("?")[0])
    assert file_name == "La_Bohémienne_endormie.jpg"
    assert " " not in "".join(p.source for p in catalog)


def test_default_locations_follow_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NST_CONFIG_DIR", raising=False)
    monkeypatch.delenv("NST_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_config_dir() == REPO_CONFIG
    assert default_catalog_path() == REPO_CONFIG / "presets.toml"
    assert default_cache_dir() == Path.home() / ".cache" / "nst-engine"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "nst-engine"
    monkeypatch.setenv("NST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NST_CONFIG_DIR", str(tmp_path / "conf"))
    assert default_cache_dir() == tmp_path / "cache"
    assert default_catalog_path() == tmp_path / "conf" / "presets.toml"


# ---------------------------------------------------------------------------- validation
def test_catalogue_keeps_file_order_and_accepts_a_numeric_year(tmp_path: Path) -> None:
    path = toml_catalog(tmp_path, [entry("zebra"), entry("apple", year=1889), entry("mango")])
    catalog = PresetCatalog.load(path)
    assert catalog.names() == ["zebra", "apple", "mango"]
    assert [p.name for p in catalog] == ["zebra", "apple", "mango"]
    assert catalog.get("apple").year == "1889"
    assert catalog.get("apple").label == "Test Painting — A. Tester, 1889"


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ([entry("twin"), entry("other"), entry("twin")], ["preset #3", "'twin'", "duplicate name", "#1"]),
        ([entry("Starry Night")], ["preset #1", "'name'", "not a valid slug"]),
        ([entry("../../etc/passwd")], ["'name'", "not a valid slug"]),
        ([entry("double--hyphen")], ["'name'", "not a valid slug"]),
        (
            [{k: v for k, v in entry("no-artist").items() if k != "artist"}],
            ["'no-artist'", "field 'artist' is missing"],
        ),
        ([entry("typo", license="public domain")], ["'typo'", "unknown field 'license'"]),
        ([entry("blank", title="  ")], ["'blank'", "field 'title' must be a non-empty string"]),
        (
            [entry("ftp", source="ftp://example.org/a.jpg")],
            ["'ftp'", "field 'source'", "unsupported scheme 'ftp'"],
        ),
        ([entry("bare", source="paintings/a.jpg")], ["'bare'", "field 'source'", "needs a scheme"]),
        (
            [entry("plain", source="http://commons.wikimedia.org/a.jpg")],
            ["'plain'", "must be an https:// URL"],
        ),
        ([entry("hosted", source="file://server/share/a.jpg")], ["'hosted'", "without a host"]),
    ],
)
def test_every_invalid_entry_is_named_with_its_field(
    tmp_path: Path, entries: list[dict[str, object]], expected: list[str]
) -> None:
    path = toml_catalog(tmp_path, entries)
    with pytest.raises(PresetCatalogError) as raised:
        PresetCatalog.load(path)
    message = str(raised.value)
    assert str(path) in message
    for fragment in expected:
        assert fragment in message


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(PresetCatalogError, match="preset catalogue not found"):
        PresetCatalog.load(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[[preset]\nname = ", encoding="utf-8")
    with pytest.raises(PresetCatalogError, match="not valid TOML"):
        PresetCatalog.load(broken)
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes('[[preset]]\nname = "café"\n'.encode("latin-1"))
    with pytest.raises(PresetCatalogError, match="not UTF-8"):
        PresetCatalog.load(latin1)
    stray = tmp_path / "stray.toml"
    stray.write_text('title = "x"\n', encoding="utf-8")
    with pytest.raises(PresetCatalogError, match="unknown top-level key 'title'"):
        PresetCatalog.load(stray)
    assert isinstance(PresetCatalogError("x"), PresetError)  # callers catch PresetError for both


def test_unknown_name_suggests_close_matches() -> None:
    catalog = PresetCatalog.load(REPO_CONFIG / "presets.toml")
    with pytest.raises(PresetError, match="did you mean starry-night") as raised:
        catalog.get("stary-night")
    assert "unknown preset 'stary-night'" in str(raised.value)
    assert catalog.close_matches("wave") == ["great-wave"]
    with pytest.raises(PresetError, match="known presets: starry-night, great-wave"):
        catalog.get("xyzzy")


# ---------------------------------------------------------------------------- resolver: local files
def test_file_source_is_relative_to_the_catalogue_directory(tmp_path: Path) -> None:
    (tmp_path / "paintings").mkdir()
    (tmp_path / "paintings" / "stripes.png").write_bytes(painting_png(60, 40))
    catalog = PresetCatalog.load(
        toml_catalog(
            tmp_path,
            [entry("stripes", source="file:paintings/stripes.png"), entry("gone", source="file:nowhere.png")],
        )
    )
    resolver = PresetResolver(catalog, tmp_path / "cache")
    image = resolver.resolve("stripes")
    assert image.mode == "RGB" and image.size == (60, 40)
    assert resolver.cached_path("stripes") == tmp_path / "paintings" / "stripes.png"
    assert resolver.is_cached("stripes") and not resolver.is_cached("gone")
    with pytest.raises(PresetError, match=r"preset 'gone': its image file .*nowhere.png does not exist"):
        resolver.resolve("gone")
    assert not (tmp_path / "cache").exists()  # local presets are never copied


def test_a_local_file_that_is_not_an_image_is_a_preset_error(tmp_path: Path) -> None:
    (tmp_path / "fake.jpg").write_text("this is not a picture", encoding="utf-8")
    catalog = PresetCatalog(
        [Preset("fake", "Fake", "Nobody", "2020", "none", f"file:{tmp_path / 'fake.jpg'}")]
    )
    with pytest.raises(PresetError, match=r"preset 'fake': .*fake\.jpg is not a usable image"):
        PresetResolver(catalog, tmp_path / "cache").resolve("fake")


def test_cache_paths_stay_inside_the_cache_directory(tmp_path: Path) -> None:
    catalog = PresetCatalog.load(REPO_CONFIG / "presets.toml")
    resolver = PresetResolver(catalog, tmp_path)
    for name in catalog.names():  # each is found where it was put, inside the cache directory
        path = tmp_path / "presets" / f"{name}{CACHED_IMAGE_SUFFIX}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(painting_png(20, 20))
        assert resolver.cached_path(name) == path
    with pytest.raises(PresetError, match="unknown preset"):
        resolver.cached_path("../../etc/passwd")
    with pytest.raises(PresetCatalogError, match="not a valid slug"):
        PresetCatalog([Preset("../up", "t", "a", "y", "l", "https://commons.wikimedia.org/x.jpg")])


# ---------------------------------------------------------------------------- resolver: downloads
@pytest.fixture
def server():
    with PresetHTTPServer() as running:
        yield running


def served_catalog(server: PresetHTTPServer, **paths: str) -> PresetCatalog:
    return PresetCatalog(
        [
            Preset(name, name.title(), "Artist", "1900", "public domain", server.url(path))
            for name, path in paths.items()
        ]
    )


def local_resolver(catalog: PresetCatalog, cache: Path, **options: object) -> PresetResolver:
    return PresetResolver(catalog, cache, allowed_hosts=("127.0.0.1",), allow_loopback_http=True, **options)  # type: ignore[arg-type]


def test_downloads_once_then_serves_from_the_cache(server: PresetHTTPServer, tmp_path: Path) -> None:
    server.routes["/wave.png"] = Route(body=painting_png(), content_type="image/png")
    resolver = local_resolver(served_catalog(server, wave="/wave.png"), tmp_path)
    assert not resolver.is_cached("wave")
    first = resolver.resolve("wave")
    second = resolver.resolve("wave")
    assert first.size == second.size == (64, 48) and first.mode == "RGB"
    assert server.requests["/wave.png"] == 1
    cached = resolver.cached_path("wave")
    assert cached == tmp_path / "presets" / f"wave{CACHED_IMAGE_SUFFIX}"
    assert cached.read_bytes() == server.routes["/wave.png"].body
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]  # no temp files left
    assert server.user_agents[0].startswith("nst-engine/")
    # A new resolver (a restarted process) finds the file too.
    local_resolver(served_catalog(server, wave="/wave.png"), tmp_path).resolve("wave")
    assert server.requests["/wave.png"] == 1


def test_concurrent_first_uses_download_once(server: PresetHTTPServer, tmp_path: Path) -> None:
    server.routes["/slow.png"] = Route(body=painting_png(), delay=0.3)
    resolver = local_resolver(served_catalog(server, slow="/slow.png"), tmp_path)
    sizes: list[tuple[int, int]] = []
    threads = [threading.Thread(target=lambda: sizes.append(resolver.resolve("slow").size)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sizes == [(64, 48)] * 4
    assert server.requests["/slow.png"] == 1


def test_a_redirect_within_the_allowed_hosts_is_followed(server: PresetHTTPServer, tmp_path: Path) -> None:
    server.routes["/FilePath/wave.jpg"] = Route(
        status=302, location=server.url("/thumb/wave.png"), content_type=None
    )
    server.routes["/thumb/wave.png"] = Route(body=painting_png())
    resolver = local_resolver(served_catalog(server, wave="/FilePath/wave.jpg"), tmp_path)
    assert resolver.resolve("wave").size == (64, 48)
    assert server.requests["/thumb/wave.png"] == 1


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        (Route(body=b"x" * 100, declared_length=10_000), "10000 bytes, over the 4096 byte limit"),
        (Route(body=b"x" * 20_000, send_length=False), "over the 4096 byte limit"),
        (
            Route(body=b"<html>hello</html>", content_type="text/html; charset=utf-8"),
            "sent 'text/html', not a raster image",
        ),
        (
            Route(body=b"<svg xmlns='http://www.w3.org/2000/svg'/>", content_type="image/svg+xml"),
            "not a raster image",
        ),
        (
            Route(body=b"GIF89a but not really", content_type="image/gif"),
            "the download is not a usable image",
        ),
        (Route(status=404, body=b"no", content_type="text/plain"), "HTTP 404"),
    ],
    ids=["content-length-cap", "streamed-cap", "html", "svg", "corrupt-image", "not-found"],
)
def test_refused_downloads_are_clear_and_leave_no_cache_file(
    server: PresetHTTPServer, tmp_path: Path, route: Route, reason: str
) -> None:
    server.routes["/p"] = route
    resolver = local_resolver(served_catalog(server, pic="/p"), tmp_path, max_bytes=4096)
    with pytest.raises(PresetError) as raised:
        resolver.resolve("pic")
    message = str(raised.value)
    assert message.startswith(f"preset 'pic': could not download {server.url('/p')}: ")
    assert reason in message
    assert not resolver.is_cached("pic")
    assert list(tmp_path.rglob("*.*")) == []  # neither the image nor a temp file was written


def test_a_redirect_to_another_host_is_refused_before_it_is_followed(
    server: PresetHTTPServer, tmp_path: Path
) -> None:
    server.routes["/FilePath/x.jpg"] = Route(
        status=302, location=server.url("/evil.png", host="localhost"), content_type=None
    )
    server.routes["/evil.png"] = Route(body=painting_png())
    resolver = local_resolver(served_catalog(server, x="/FilePath/x.jpg"), tmp_path)
    with pytest.raises(
        PresetError,
        match=(
            r"redirected to http://localhost:\d+/evil\.png, which is on host 'localhost', "
            "not one of the allowed hosts"
        ),
    ):
        resolver.resolve("x")
    assert server.requests["/evil.png"] == 0


def test_plain_http_and_unlisted_hosts_are_refused_without_a_request(
    server: PresetHTTPServer, tmp_path: Path
) -> None:
    server.routes["/a.png"] = Route(body=painting_png())
    catalog = served_catalog(server, a="/a.png")
    with pytest.raises(PresetError, match="the URL is not an https URL"):
        PresetResolver(catalog, tmp_path).resolve("a")  # the default: https to Wikimedia only
    with pytest.raises(PresetError, match=r"is on host '127\.0\.0\.1', not one of the allowed hosts"):
        PresetResolver(catalog, tmp_path, allow_loopback_http=True).resolve("a")
    assert server.requests["/a.png"] == 0


def test_offline_gives_the_path_to_put_the_image_and_then_uses_it(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{unused_local_port()}/wave.png"
    catalog = PresetCatalog([Preset("wave", "Wave", "Hokusai", "c. 1831", "public domain", url)])
    resolver = local_resolver(catalog, tmp_path, timeout=5.0)
    expected_path = tmp_path / "presets" / f"wave{CACHED_IMAGE_SUFFIX}"
    with pytest.raises(PresetError) as raised:
        resolver.resolve("wave")
    message = str(raised.value)
    assert f"preset 'wave': could not download {url}: no connection" in message
    assert f"Put the image at {expected_path} to use it offline." in message
    assert "\n" not in message
    expected_path.parent.mkdir(parents=True)
    expected_path.write_bytes(painting_png(40, 30))
    assert resolver.resolve("wave").size == (40, 30)


def test_a_corrupt_cached_file_says_to_delete_it(tmp_path: Path) -> None:
    catalog = PresetCatalog(
        [Preset("wave", "Wave", "Hokusai", "c. 1831", "public domain", "https://commons.wikimedia.org/x.jpg")]
    )
    resolver = PresetResolver(catalog, tmp_path)
    path = tmp_path / "presets" / f"wave{CACHED_IMAGE_SUFFIX}"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(
        PresetError, match=r"the cached image .* is not usable .*delete it to download it again"
    ):
        resolver.resolve("wave")


def test_resolved_images_are_rgb_whatever_the_served_mode(server: PresetHTTPServer, tmp_path: Path) -> None:
    import io

    buffer = io.BytesIO()
    Image.new("RGBA", (32, 32), (10, 20, 30, 128)).save(buffer, format="PNG")
    server.routes["/rgba.png"] = Route(body=buffer.getvalue())
    image = local_resolver(served_catalog(server, rgba="/rgba.png"), tmp_path).resolve("rgba")
    assert image.mode == "RGB" and image.size == (32, 32)


# ---------------------------------------------------------------------------- resolver: slow servers
def test_a_trickling_download_stops_at_the_overall_deadline(server: PresetHTTPServer, tmp_path: Path) -> None:
    """A byte every 50 ms never trips the per-read timeout; the overall deadline stops it."""
    server.routes["/slow.png"] = Route(body=b"x" * 100_000, trickle=0.05)
    resolver = local_resolver(served_catalog(server, slow="/slow.png"), tmp_path, timeout=5.0, deadline=1.0)
    started = time.monotonic()
    with pytest.raises(PresetError, match="took longer than 1 s"):
        resolver.resolve("slow")
    assert time.monotonic() - started < 3.0
    assert not resolver.is_cached("slow") and not list(tmp_path.glob("presets/*"))


@pytest.mark.parametrize("trickle", [0.05, 30.0], ids=["trickling", "silent"])
def test_cancel_stops_a_download_at_once(server: PresetHTTPServer, tmp_path: Path, trickle: float) -> None:
    """Cancel (or a shutdown, which cancels) is honoured mid-body, even while no byte arrives."""
    server.routes["/slow.png"] = Route(body=b"x" * 100_000, trickle=trickle)
    resolver = local_resolver(served_catalog(server, slow="/slow.png"), tmp_path, timeout=60.0)
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        resolver.resolve("slow", cancel=cancel)
    assert 0.4 < time.monotonic() - started < 2.5
    assert not resolver.is_cached("slow")
    # A job already cancelled never starts a download.
    with pytest.raises(Cancelled):
        resolver.resolve("slow", cancel=cancel)
    assert server.requests["/slow.png"] == 1
