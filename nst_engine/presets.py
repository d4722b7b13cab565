"""Preset paintings: a catalogue read from ``config/presets.toml`` and a resolver that fetches them.

The catalogue is operator-edited text, so it is validated once, at load, with errors that name
the file, the entry and the field: a typo should stop the service at start-up, not surface as a
user's failed job hours later.

The resolver turns a preset name into a decoded image. Remote presets are downloaded once into a
cache directory and read from there afterwards, so a server needs the network only the first time
a painting is used (and never, if the operator puts the files there). Downloads are treated as
untrusted input: https only, only from the configured hosts (redirects included), a byte cap that
is checked before and while reading, an image content type, and the same decoding checks as a
user's upload before anything is written to disk.
"""

from __future__ import annotations

import contextlib
import difflib
import http.client
import ipaddress
import logging
import os
import re
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from PIL import Image

from .errors import Cancelled, InvalidImage, PresetError
from .files import write_atomically
from .imaging import decode_image

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

log = logging.getLogger(__name__)

#: The catalogue file inside the config directory.
CATALOG_FILE_NAME = "presets.toml"
#: Sub-directory of the cache directory that holds downloaded preset images.
PRESET_CACHE_SUBDIR = "presets"
#: Suffix of a cached preset image. The content decides the format (JPEG, PNG...), not the name,
#: so one fixed suffix keeps the offline instructions simple: "put the image at <this path>".
CACHED_IMAGE_SUFFIX = ".img"

#: The fields every ``[[preset]]`` table must have, in the order they are documented.
PRESET_FIELDS: tuple[str, ...] = ("name", "title", "artist", "year", "licence", "source")
#: A preset name is a slug: it is typed by users and becomes a cache file name, so it must never
#: be able to contain a path separator, a dot-dot, or anything a shell or a file system minds.
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
MAX_NAME_LENGTH = 64

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_TIMEOUT = 30.0
#: A whole download (connection, headers, body) ends after this many seconds, however the bytes
#: trickle in: the per-read ``timeout`` alone lets a server sending one byte a second hold a
#: worker for hours.
DEFAULT_DEADLINE = 120.0
#: How often a download looks at its cancel event and its deadline while a read is blocked.
_WATCH_SECONDS = 0.1
DEFAULT_ALLOWED_HOSTS: tuple[str, ...] = ("commons.wikimedia.org", "upload.wikimedia.org")
#: Wikimedia asks clients to identify themselves; anonymous default agents get throttled.
USER_AGENT = (
    "nst-engine/0.1 (neural style transfer; downloads public-domain preset paintings once and "
    "caches them) python-urllib/" + ".".join(map(str, sys.version_info[:2]))
)
_CHUNK = 64 * 1024


class PresetCatalogError(PresetError):
    """The preset catalogue file is missing, not TOML, or has an invalid entry."""


# ---------------------------------------------------------------------------- default locations
def default_config_dir() -> Path:
    """``$NST_CONFIG_DIR``, else ``config/`` at the root of the checkout this package runs from."""
    override = os.environ.get("NST_CONFIG_DIR")
    if override:
        return Path(override).expanduser()
    return Path(__file__).resolve().parents[1] / "config"


def default_catalog_path() -> Path:
    return default_config_dir() / CATALOG_FILE_NAME


def default_cache_dir() -> Path:
    """``$NST_CACHE_DIR``, else ``$XDG_CACHE_HOME/nst-engine``, else ``~/.cache/nst-engine``.

    This is the engine's cache root; preset images go in its ``presets/`` sub-directory and
    style targets, by convention, in ``style-targets/``.
    """
    override = os.environ.get("NST_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "nst-engine"


# ---------------------------------------------------------------------------- catalogue
@dataclass(frozen=True)
class Preset:
    """One painting of the catalogue, as the operator wrote it."""

    name: str  #: slug users type, e.g. ``starry-night``
    title: str
    artist: str
    year: str  #: text, so "c. 1831" and "1907-08" are possible
    licence: str
    source: str  #: an ``https://`` URL or ``file:PATH`` (relative to ``base_dir``)
    #: Directory a relative ``file:`` source is relative to (the catalogue's directory).
    base_dir: Path | None = field(default=None, compare=False, repr=False)

    @property
    def is_local(self) -> bool:
        return urllib.parse.urlsplit(self.source).scheme == "file"

    @property
    def local_path(self) -> Path | None:
        """The image file of a ``file:`` preset (absolute), or None for a remote one."""
        if not self.is_local:
            return None
        path = Path(_file_source_path(self.source)).expanduser()
        if not path.is_absolute() and self.base_dir is not None:
            path = self.base_dir / path
        return path

    @property
    def label(self) -> str:
        """How menus show it: ``The Starry Night — Vincent van Gogh, 1889``."""
        return f"{self.title} — {self.artist}, {self.year}"


def _file_source_path(source: str) -> str:
    """``file:a/b.jpg`` -> ``a/b.jpg``; ``file:///abs/b.jpg`` -> ``/abs/b.jpg``."""
    rest = source[len("file:") :]
    if rest.startswith("//"):
        return urllib.parse.unquote(urllib.parse.urlsplit(source).path)
    return rest


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _source_problem(source: str) -> str | None:
    """Why ``source`` can never be fetched, or None when its form is fine."""
    parts = urllib.parse.urlsplit(source)
    if parts.scheme == "https":
        return None if parts.hostname else "an https URL needs a host name"
    if parts.scheme == "http":
        # Plain http only for a mirror or test server on this machine: nothing on the way can
        # tamper with it. The resolver still refuses it unless explicitly told to allow it.
        if _is_loopback(parts.hostname):
            return None
        return "must be an https:// URL (plain http is allowed for 127.0.0.1 only)"
    if parts.scheme == "file":
        if source.startswith("file://") and parts.netloc:
            return "a file: source must be file:PATH or file:///ABSOLUTE/PATH, without a host"
        return None if _file_source_path(source) else "a file: source needs a path"
    if not parts.scheme:
        return "needs a scheme: https://... or file:PATH"
    return f"unsupported scheme {parts.scheme!r}; use https://... or file:PATH"


class PresetCatalog:
    """The validated, ordered set of presets. Iterates in file order."""

    def __init__(self, presets: Iterable[Preset], *, origin: str = "<presets>") -> None:
        self.origin = origin
        self._presets: dict[str, Preset] = {}
        for index, preset in enumerate(presets, start=1):
            where = f"{origin}: preset #{index} ({preset.name!r})"
            _check_name(preset.name, where)
            problem = _source_problem(preset.source)
            if problem:
                raise PresetCatalogError(f"{where}: field 'source' {preset.source!r}: {problem}")
            if preset.name in self._presets:
                first = list(self._presets).index(preset.name) + 1
                raise PresetCatalogError(
                    f"{where}: duplicate name {preset.name!r} (already used by preset #{first})"
                )
            self._presets[preset.name] = preset

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> PresetCatalog:
        """Read and validate a catalogue file (default: ``<config dir>/presets.toml``)."""
        path = Path(path) if path is not None else default_catalog_path()
        try:
            with open(path, "rb") as handle:
                data = tomllib.load(handle)
        except FileNotFoundError:
            raise PresetCatalogError(f"preset catalogue not found: {path}") from None
        except OSError as error:
            raise PresetCatalogError(f"cannot read the preset catalogue {path}: {error.strerror}") from None
        except tomllib.TOMLDecodeError as error:
            raise PresetCatalogError(f"{path}: not valid TOML: {error}") from None
        except UnicodeDecodeError:  # TOML is UTF-8; tomllib does not wrap the decode error
            raise PresetCatalogError(f"{path}: not valid TOML: the file is not UTF-8 text") from None
        return cls.from_mapping(data, origin=str(path), base_dir=path.resolve().parent)

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, origin: str = "<presets>", base_dir: Path | None = None
    ) -> PresetCatalog:
        """Build a catalogue from parsed TOML: ``{"preset": [{name, title, ...}, ...]}``."""
        unknown = sorted(set(data) - {"preset"})
        if unknown:
            raise PresetCatalogError(
                f"{origin}: unknown top-level key {unknown[0]!r}; presets are [[preset]] tables"
            )
        entries = data.get("preset", [])
        if not isinstance(entries, list):
            raise PresetCatalogError(f"{origin}: 'preset' must be an array of [[preset]] tables")
        presets = [
            _preset_from_entry(entry, f"{origin}: preset #{index}", base_dir)
            for index, entry in enumerate(entries, start=1)
        ]
        return cls(presets, origin=origin)

    # ------------------------------------------------------------------ access
    def get(self, name: str) -> Preset:
        """The preset called ``name``; an unknown name raises PresetError with close matches."""
        preset = self._presets.get(name) if isinstance(name, str) else None
        if preset is not None:
            return preset
        suggestions = self.close_matches(str(name))
        if suggestions:
            hint = f"did you mean {' or '.join(suggestions)}?"
        elif self._presets:
            hint = f"known presets: {', '.join(self._presets)}"
        else:
            hint = "the catalogue is empty"
        raise PresetError(f"unknown preset {name!r} ({hint})")

    def close_matches(self, name: str, limit: int = 3) -> list[str]:
        """Names a user probably meant: fuzzy matches first, then names containing the text."""
        wanted = name.strip().lower().replace(" ", "-").replace("_", "-")
        matches = difflib.get_close_matches(wanted, list(self._presets), n=limit, cutoff=0.6)
        if wanted:
            matches += [n for n in self._presets if wanted in n and n not in matches]
        return matches[:limit]

    def names(self) -> list[str]:
        return list(self._presets)

    def __iter__(self) -> Iterator[Preset]:
        return iter(self._presets.values())

    def __len__(self) -> int:
        return len(self._presets)

    def __contains__(self, name: object) -> bool:
        return name in self._presets

    def __repr__(self) -> str:
        return f"PresetCatalog({self.origin!r}, {len(self)} presets)"


def _check_name(name: object, where: str) -> None:
    if not isinstance(name, str) or not _SLUG.fullmatch(name) or len(name) > MAX_NAME_LENGTH:
        raise PresetCatalogError(
            f"{where}: field 'name' {name!r} is not a valid slug "
            f"(lowercase letters, digits and single hyphens, at most {MAX_NAME_LENGTH} characters)"
        )


def _preset_from_entry(entry: object, where: str, base_dir: Path | None) -> Preset:
    if not isinstance(entry, dict):
        raise PresetCatalogError(f"{where}: must be a table with the fields {', '.join(PRESET_FIELDS)}")
    if isinstance(entry.get("name"), str):
        where = f"{where} ({entry['name']!r})"
    unknown = sorted(set(entry) - set(PRESET_FIELDS))
    if unknown:
        raise PresetCatalogError(
            f"{where}: unknown field {unknown[0]!r} (the fields are {', '.join(PRESET_FIELDS)})"
        )
    values: dict[str, str] = {}
    for name in PRESET_FIELDS:
        if name not in entry:
            raise PresetCatalogError(f"{where}: field {name!r} is missing")
        value = entry[name]
        if name == "year" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # `year = 1889` is an easy thing to write; it means the same
        if not isinstance(value, str) or not value.strip():
            raise PresetCatalogError(f"{where}: field {name!r} must be a non-empty string, got {value!r}")
        values[name] = value.strip()
    return Preset(**values, base_dir=base_dir)


# ---------------------------------------------------------------------------- resolver
class _Refused(Exception):
    """A download was stopped on purpose (policy, size, type); the message says why."""


class _Watchdog:
    """Ends a download from outside when its job is cancelled or its deadline passes.

    A read blocked on a silent server cannot look at the clock or the cancel event, so a watcher
    thread shuts the connection down (on a duplicate of its socket), which makes the read return
    at once. The reading loop asks :meth:`stopped` after every read, too.
    """

    def __init__(self, cancel: threading.Event | None, deadline_at: float) -> None:
        self.cancel = cancel
        self.deadline_at = deadline_at
        self.reason: str | None = None
        self._done = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def stopped(self) -> str | None:
        """``"cancelled"``, ``"deadline"``, or None while the download may go on."""
        if self.reason is None:
            if self.cancel is not None and self.cancel.is_set():
                self.reason = "cancelled"
            elif time.monotonic() >= self.deadline_at:
                self.reason = "deadline"
        return self.reason

    def watch(self, response: Any) -> None:
        try:
            self._sock = socket.socket(fileno=os.dup(response.fileno()))
        except (AttributeError, OSError, ValueError):  # no socket (a test opener): reads still check
            return
        self._thread = threading.Thread(target=self._run, name="preset-download-watchdog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(_WATCH_SECONDS):
            if self.stopped() is not None and self._sock is not None:
                with contextlib.suppress(OSError):
                    self._sock.shutdown(socket.SHUT_RDWR)
                return

    def close(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        if self._sock is not None:
            self._sock.close()


class _GuardedRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only when its target passes the same URL policy as the first request."""

    def __init__(self, check_url: Callable[[str], str | None]) -> None:
        super().__init__()
        self._check_url = check_url

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        problem = self._check_url(newurl)
        if problem:
            raise _Refused(f"redirected to {newurl}, which {problem}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class PresetResolver:
    """Turns preset names into images, downloading remote ones once into ``cache_dir/presets/``.

    Safe to share between threads: each preset has its own lock, so two jobs asking for the same
    new preset download it once, while different presets download in parallel.
    """

    def __init__(
        self,
        catalog: PresetCatalog,
        cache_dir: str | os.PathLike[str] | None = None,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        timeout: float = DEFAULT_TIMEOUT,
        deadline: float = DEFAULT_DEADLINE,
        allowed_hosts: Sequence[str] = DEFAULT_ALLOWED_HOSTS,
        opener: urllib.request.OpenerDirector | None = None,
        allow_loopback_http: bool = False,
        user_agent: str = USER_AGENT,
    ) -> None:
        """``cache_dir`` is the engine cache root (default :func:`default_cache_dir`).

        ``timeout`` bounds each network read, ``deadline`` the whole download.
        ``opener`` replaces the default urllib opener (whose redirect handler refuses targets
        outside ``allowed_hosts``); the final URL of a response is checked either way.
        ``allow_loopback_http`` lets plain http to 127.0.0.1 through, for tests and local mirrors.
        ``user_agent``: Wikimedia asks for a contact (a URL or an e-mail) in it; operators who
        download a lot should pass one.
        """
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.catalog = catalog
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.images_dir = self.cache_dir / PRESET_CACHE_SUBDIR
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.deadline = deadline
        self.allowed_hosts = tuple(host.lower() for host in allowed_hosts)
        self.allow_loopback_http = allow_loopback_http
        self.user_agent = user_agent
        self._opener = opener or urllib.request.build_opener(_GuardedRedirects(self._url_problem))
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # ------------------------------------------------------------------ public
    def resolve(self, name: str, *, cancel: threading.Event | None = None) -> Image.Image:
        """The preset's image, RGB and decoded with the usual input checks.

        Raises PresetError for an unknown name, a missing local file, or a download that fails
        or outlives ``deadline`` (the message names the preset, the URL, why, and where to put
        the file to work offline); :class:`Cancelled` as soon as ``cancel`` is set, also while
        waiting for another thread's download of the same preset.
        """
        preset = self.catalog.get(name)
        local = preset.local_path
        if local is not None:
            return self._decode_local(preset, local)
        lock = self._lock_for(preset.name)
        while not lock.acquire(timeout=_WATCH_SECONDS):
            if cancel is not None and cancel.is_set():
                raise Cancelled()
        with contextlib.ExitStack() as held:
            held.callback(lock.release)
            path = self._cache_path(preset)
            if path.is_file():
                return self._decode_cached(preset, path)
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            data = self._download(preset, path, cancel)
            image = self._decode_download(preset, data, path)
            self._store(path, data)
            log.info("preset %s downloaded (%d bytes) to %s", preset.name, len(data), path)
            return image

    def cached_path(self, name: str) -> Path | None:
        """Where the preset's image is on disk, or None if it would have to be downloaded."""
        preset = self.catalog.get(name)
        path = preset.local_path or self._cache_path(preset)
        return path if path.is_file() else None

    def is_cached(self, name: str) -> bool:
        return self.cached_path(name) is not None

    # ------------------------------------------------------------------ internals
    def _lock_for(self, name: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(name, threading.Lock())

    def _cache_path(self, preset: Preset) -> Path:
        # Names are validated slugs, so this cannot leave the directory; check anyway, because a
        # Preset can be built by hand and this is the one place a name meets the file system.
        path = self.images_dir / f"{preset.name}{CACHED_IMAGE_SUFFIX}"
        if not _SLUG.fullmatch(preset.name) or path.parent != self.images_dir:
            raise PresetError(f"preset name {preset.name!r} cannot be used as a cache file name")
        return path

    def _decode_local(self, preset: Preset, path: Path) -> Image.Image:
        if not path.is_file():
            raise PresetError(f"preset {preset.name!r}: its image file {path} does not exist")
        try:
            return decode_image(path, max_bytes=self.max_bytes)
        except InvalidImage as error:
            raise PresetError(f"preset {preset.name!r}: {path} is not a usable image: {error}") from None

    def _decode_cached(self, preset: Preset, path: Path) -> Image.Image:
        try:
            return decode_image(path, max_bytes=self.max_bytes)
        except InvalidImage as error:
            raise PresetError(
                f"preset {preset.name!r}: the cached image {path} is not usable ({error}); "
                "delete it to download it again"
            ) from None

    def _decode_download(self, preset: Preset, data: bytes, path: Path) -> Image.Image:
        try:
            return decode_image(data, max_bytes=self.max_bytes)
        except InvalidImage as error:
            raise self._download_error(
                preset, preset.source, f"the download is not a usable image: {error}", path
            ) from None

    def _url_problem(self, url: str) -> str | None:
        """Why the resolver refuses to fetch ``url`` (a source or a redirect target), or None."""
        parts = urllib.parse.urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme == "http" and self.allow_loopback_http and _is_loopback(host):
            pass
        elif parts.scheme != "https":
            return "is not an https URL"
        if host not in self.allowed_hosts:
            allowed = ", ".join(self.allowed_hosts)
            return f"is on host {host or '(none)'!r}, not one of the allowed hosts ({allowed})"
        return None

    def _download(self, preset: Preset, path: Path, cancel: threading.Event | None) -> bytes:
        url = preset.source
        problem = self._url_problem(url)
        if problem:
            raise self._download_error(preset, url, f"the URL {problem}", path)
        request = urllib.request.Request(url, headers={"User-Agent": self.user_agent, "Accept": "image/*"})
        watchdog = _Watchdog(cancel, time.monotonic() + self.deadline)
        try:
            with self._opener.open(request, timeout=min(self.timeout, self.deadline)) as response:
                watchdog.watch(response)
                final_url = response.geturl()
                problem = self._url_problem(final_url)
                if problem:
                    raise _Refused(f"the response came from {final_url}, which {problem}")
                return self._read_capped(response, watchdog)
        except (_Refused, OSError, http.client.HTTPException) as error:
            stopped = watchdog.stopped()
            if stopped == "cancelled":
                raise Cancelled() from None
            if stopped == "deadline":
                raise self._download_error(
                    preset, url, f"it took longer than {self.deadline:g} s", path
                ) from None
            raise self._failed_download(preset, url, path, error) from None
        finally:
            watchdog.close()

    def _failed_download(self, preset: Preset, url: str, path: Path, error: BaseException) -> PresetError:
        """The operator-facing reason a download failed (not cancelled, within its deadline)."""
        if isinstance(error, _Refused):
            why = str(error)
        elif isinstance(error, urllib.error.HTTPError):
            why = f"the server answered HTTP {error.code} {error.reason}"
        elif isinstance(error, urllib.error.URLError):
            reason = error.reason
            timed_out = isinstance(reason, (socket.timeout, TimeoutError))
            why = f"no connection ({'timed out' if timed_out else reason})"
        elif isinstance(error, TimeoutError):
            why = f"timed out after {self.timeout:g} s"
        else:  # connection reset mid-body, a malformed chunk, etc.
            why = f"the connection failed ({error!r})"
        return self._download_error(preset, url, why, path)

    def _read_capped(self, response: Any, watchdog: _Watchdog) -> bytes:
        content_type = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if not content_type.startswith("image/") or content_type == "image/svg+xml":
            raise _Refused(f"the server sent {content_type or 'no content type'!r}, not a raster image")
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
            raise _Refused(f"the image is {int(declared)} bytes, over the {self.max_bytes} byte limit")
        chunks: list[bytes] = []
        received = 0
        while True:
            # read1: whatever has arrived, so a trickle returns often enough to check the clock
            # (read(n) would wait for all n bytes); a silent server is the watchdog's.
            chunk = response.read1(_CHUNK)
            if watchdog.stopped() is not None:
                raise _Refused("stopped")  # _download turns this into Cancelled or the deadline
            if not chunk:
                break
            received += len(chunk)
            if received > self.max_bytes:
                raise _Refused(f"the image is over the {self.max_bytes} byte limit")
            chunks.append(chunk)
        if declared is not None and declared.strip().isdigit() and received < int(declared):
            raise _Refused(f"the connection closed after {received} of {int(declared)} bytes")
        return b"".join(chunks)

    def _store(self, path: Path, data: bytes) -> None:
        """Keep a downloaded painting; a read-only or full cache must not fail the job (we have it)."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, data)
        except OSError as error:
            log.warning("could not cache preset image at %s: %s", path, error)

    @staticmethod
    def _download_error(preset: Preset, url: str, why: str, path: Path) -> PresetError:
        return PresetError(
            f"preset {preset.name!r}: could not download {url}: {why}. "
            f"Put the image at {path} to use it offline."
        )


__all__ = [
    "CATALOG_FILE_NAME",
    "DEFAULT_ALLOWED_HOSTS",
    "DEFAULT_MAX_BYTES",
    "Preset",
    "PresetCatalog",
    "PresetCatalogError",
    "PresetResolver",
    "default_cache_dir",
    "default_catalog_path",
    "default_config_dir",
]
