"""A real HTTP server on 127.0.0.1 for tests: routes with scripted answers, and a hit counter.

Reusable by any test that needs a remote end (URL probing, the demo, webhooks)::

    with HttpServer() as server:
        server.route("/a.jpg", Reply(200, {"Content-Type": "image/jpeg"}, JPEG))
        server.route("/flaky", Reply(500), Reply(200, body=JPEG))   # answers in turn, last repeats
        url = server.url("/a.jpg")
        ...
        assert server.hits["/a.jpg"] == 1

Unknown paths answer 404. Every request is counted per path (query string dropped) before its
reply is chosen, so a test can assert that a URL was never requested. The server binds an
ephemeral port; ``host`` may be another loopback address such as 127.0.0.2.

For a handler class of a test's own (a webhook receiver), a folder of files (published pages) or a
server the code under test built, ``serving(handler)``, ``serving_folder(root)`` and
``running(server)`` run it the same way and yield the base URL.
"""

from __future__ import annotations

import functools
import io
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from PIL import Image


def _image(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, fmt)
    return buffer.getvalue()


#: A small, complete JPEG and PNG, and the JPEG cut before its end marker.
JPEG = _image("JPEG")
PNG = _image("PNG")
TRUNCATED_JPEG = JPEG[: len(JPEG) // 2]


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up early (a ranged read, a timeout) are normal here, not errors."""

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@contextmanager
def running(server: ThreadingHTTPServer) -> Iterator[str]:
    """An already bound server answering in a thread for the block; yields its base URL."""
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def serving(handler: Callable[..., BaseHTTPRequestHandler]) -> Any:
    """Any request handler on an ephemeral 127.0.0.1 port (``with serving(h) as base: ...``)."""
    server = _QuietServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    return running(server)


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serving_folder(root: str | Path) -> Any:
    """The files under ``root`` as a static site (``with serving_folder(root) as base: ...``)."""
    return serving(functools.partial(_QuietFiles, directory=str(root)))


@dataclass(frozen=True)
class Reply:
    """One scripted answer: status, headers, body, a delay before answering, a drip rate."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0
    drip: float = 0.0  # seconds between body bytes (a tarpit)


Handler = Callable[[str, dict[str, str]], Reply]


class HttpServer:
    """A threading HTTP/1.1 server with keep-alive, started and stopped as a context manager."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.hits: Counter[str] = Counter()
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.times: dict[str, list[float]] = {}  # monotonic arrival times per path
        self.active = 0
        self.max_active = 0  # most requests being answered at once (concurrency limits)
        self._routes: dict[str, list[Reply] | Handler] = {}
        self._lock = threading.Lock()
        self._server = _QuietServer((host, 0), self._handler_class())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def route(self, path: str, *replies: Reply | Handler) -> None:
        """Answer ``path`` with the replies in turn (the last one repeats), or with a handler."""
        if len(replies) == 1 and callable(replies[0]):
            self._routes[path] = replies[0]
        else:
            self._routes[path] = [r for r in replies if isinstance(r, Reply)]

    def _reply(self, path: str, headers: dict[str, str]) -> Reply:
        with self._lock:
            self.hits[path] += 1
            self.requests.append((path, headers))
            self.times.setdefault(path, []).append(time.monotonic())
            route = self._routes.get(path)
            if route is None:
                return Reply(404, {"Content-Type": "text/html"}, b"<h1>Not Found</h1>")
            if callable(route):
                handler = route
            else:
                return route.pop(0) if len(route) > 1 else route[0]
        return handler(path, headers)

    def _enter(self) -> None:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)

    def _leave(self) -> None:
        with self._lock:
            self.active -= 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._answer(send_body=True)

            def do_HEAD(self) -> None:
                self._answer(send_body=False)

            def _answer(self, send_body: bool) -> None:
                path = self.path.split("?", 1)[0]
                reply = server._reply(path, {k.lower(): v for k, v in self.headers.items()})
                server._enter()
                try:
                    if reply.delay:
                        time.sleep(reply.delay)
                finally:
                    server._leave()
                self.send_response(reply.status)
                headers = {"Content-Length": str(len(reply.body)), **reply.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if send_body and reply.drip:
                    for i in range(len(reply.body)):
                        self.wfile.write(reply.body[i : i + 1])
                        self.wfile.flush()
                        time.sleep(reply.drip)
                elif send_body:
                    self.wfile.write(reply.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return _Handler

    def __enter__(self) -> HttpServer:
        self._thread.start()
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
