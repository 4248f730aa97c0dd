"""The local viewer behind `llava-audit serve`: published reports over HTTP on 127.0.0.1 only.

Reports hold dataset text, so the server is deliberately narrow: regular files inside the reports
folder and nothing else. A path that resolves outside the folder (a symlink to ``/etc/passwd`` or
to another folder), a hidden name (staging folders, temp files) or a folder without
``index.html`` is 404; there are no directory listings. Only requests whose ``Host`` is
``localhost:PORT`` or ``127.0.0.1:PORT`` are answered (421 otherwise), so a web page that rebinds
its own DNS name to 127.0.0.1 cannot read the reports. Each connection is handled in its own thread
with a read timeout: a client that connects and says nothing is dropped and blocks nobody.
"""

from __future__ import annotations

import mimetypes
import os
import shutil
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

#: Seconds a connection may stay silent before the server drops it.
IDLE_TIMEOUT = 5.0
_TYPES = {".log": "text/plain; charset=utf-8", ".jsonl": "application/x-ndjson"}


class ReportServer(ThreadingHTTPServer):
    """Serves ``root`` (resolved once, so the check below compares real paths) on 127.0.0.1."""

    daemon_threads = True

    def __init__(self, root: Path, port: int, *, idle_timeout: float = IDLE_TIMEOUT) -> None:
        self.root = root.resolve()
        self.idle_timeout = idle_timeout
        super().__init__(("127.0.0.1", port), _ReportHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def handle_error(self, request: object, client_address: object) -> None:
        """A client hanging up mid-answer is normal for a browser; nothing to print."""


class _ReportHandler(BaseHTTPRequestHandler):
    server: ReportServer

    def setup(self) -> None:
        super().setup()
        self.request.settimeout(self.server.idle_timeout)  # reads and writes alike

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def log_message(self, format: str, *args: object) -> None:
        """One log line per request is noise for a local report viewer."""

    def _answer(self, *, body: bool) -> None:
        if not self._host_allowed():
            self._plain(HTTPStatus.MISDIRECTED_REQUEST, "this server answers localhost only", body)
            return
        url_path = urllib.parse.urlsplit(self.path).path
        wanted = urllib.parse.unquote(url_path)
        target = resolve(self.server.root, wanted)
        if target is not None and target.is_dir():  # its index.html, never a listing
            target = resolve(self.server.root, wanted + "/index.html")
            if target is not None and target.is_file() and not url_path.endswith("/"):
                self.send_response(HTTPStatus.MOVED_PERMANENTLY)  # relative links need the slash
                self.send_header("Location", url_path + "/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        if target is None or not target.is_file():
            self._plain(HTTPStatus.NOT_FOUND, "not found", body)
            return
        self._file(target, body)

    def _host_allowed(self) -> bool:
        host = (self.headers.get("Host") or "").strip().lower()
        port = self.server.port
        return host in (f"localhost:{port}", f"127.0.0.1:{port}")

    def _file(self, path: Path, body: bool) -> None:
        try:
            fh = open(path, "rb", opener=_no_follow)  # noqa: SIM115 - closed below
        except OSError:
            self._plain(HTTPStatus.NOT_FOUND, "not found", body)
            return
        with fh:
            size = os.fstat(fh.fileno()).st_size
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", content_type(path))
            self.send_header("Content-Length", str(size))
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            if body:
                shutil.copyfileobj(fh, self.wfile)

    def _plain(self, status: HTTPStatus, text: str, body: bool) -> None:
        data = f"{status.value} {text}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)


def resolve(root: Path, url_path: str) -> Path | None:
    """The real path ``url_path`` names under ``root``, or None when it must not be served.

    None for a NUL, a hidden segment (``.staging-*``, ``..``, temp files) or a path whose real
    location, symlinks followed, is not inside ``root``.
    """
    parts = [p for p in url_path.split("/") if p]
    if "\0" in url_path or any(p.startswith(".") or "\\" in p for p in parts):
        return None
    try:
        real = Path(os.path.realpath(root.joinpath(*parts)))
    except (OSError, ValueError):
        return None
    return real if real == root or real.is_relative_to(root) else None


def content_type(path: Path) -> str:
    known = _TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0]
    if known is None:
        return "application/octet-stream"
    return f"{known}; charset=utf-8" if known.startswith("text/") and ";" not in known else known


def _no_follow(path: str, flags: int) -> int:
    """Open without following a symlink swapped in after :func:`resolve` checked the path."""
    return os.open(path, flags | os.O_NOFOLLOW)
