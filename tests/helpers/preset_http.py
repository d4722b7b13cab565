"""A tiny HTTP server on 127.0.0.1 for preset download tests: scripted routes, counted requests.

Each route answers with a fixed status, headers and body, or streams a body without a
Content-Length (so only a reader that counts bytes notices it is too big), or redirects. The
server runs in a daemon thread and records every path it was asked for.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    content_type: str | None = "image/png"
    #: False: send no Content-Length and close the connection to end the body (HTTP/1.0 style).
    send_length: bool = True
    #: Claimed Content-Length, when a test wants the header to disagree with the body.
    declared_length: int | None = None
    location: str | None = None  #: for redirects
    delay: float = 0.0  #: seconds to wait before answering (to overlap concurrent requests)
    #: Seconds between single bytes of the body (a server that trickles): 0 sends it at once.
    trickle: float = 0.0
    extra_headers: dict[str, str] = field(default_factory=dict)


class PresetHTTPServer:
    """``with PresetHTTPServer() as server: server.routes["/a.png"] = Route(body=...)``."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: Counter[str] = Counter()
        #: Body bytes written per path (what the client let through before it stopped reading).
        self.sent: Counter[str] = Counter()
        self.user_agents: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests[self.path] += 1
                owner.user_agents.append(self.headers.get("User-Agent", ""))
                route = owner.routes.get(
                    self.path, Route(status=404, body=b"not found", content_type="text/plain")
                )
                if route.delay:
                    time.sleep(route.delay)
                self.send_response(route.status)
                if route.content_type:
                    self.send_header("Content-Type", route.content_type)
                if route.location:
                    self.send_header("Location", route.location)
                for name, value in route.extra_headers.items():
                    self.send_header(name, value)
                if route.send_length:
                    length = route.declared_length if route.declared_length is not None else len(route.body)
                    self.send_header("Content-Length", str(length))
                self.end_headers()
                step = 1 if route.trickle else 16 * 1024
                try:
                    for start in range(0, len(route.body), step):
                        self.wfile.write(route.body[start : start + step])
                        owner.sent[self.path] += len(route.body[start : start + step])
                        if route.trickle:
                            self.wfile.flush()
                            time.sleep(route.trickle)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading on purpose (a size cap)

            def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="preset-http", daemon=True
        )

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def __enter__(self) -> PresetHTTPServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def unused_local_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
