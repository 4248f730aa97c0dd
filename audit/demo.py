"""`llava-audit demo`: build a small realistic dataset, serve its source URLs locally, audit it.

What a newcomer runs first, so it needs nothing but this package: the datasets are generated
(:mod:`audit.demodata`), the "internet" is a server on 127.0.0.1 that answers like real image hosts
do (dead links, a redirect to a "photo unavailable" placeholder, an opt-out header, HTML instead
of an image), started only for the duration of the run. The demo's ``audit.toml`` allows private
addresses for that server alone, which a real config never needs.
"""

from __future__ import annotations

import http.server
import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image
from rich.console import Console

from audit import config as config_mod
from audit import demodata
from audit.atomic import write_atomic
from audit.models import Progress
from audit.output import model as rpt

#: Path of the placeholder image the server redirects dead photos to (a Flickr-like behaviour).
PLACEHOLDER = "/photo_unavailable.png"


def _placeholder_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (48, 32), (200, 200, 200)).save(buf, "PNG")
    return buf.getvalue()


def _own_copy(jpeg: bytes, path: str) -> bytes:
    """The photo with its path in a JPEG comment: each URL has its own bytes, as on a real host
    (one image behind many URLs is a host's stand-in: audit/probes/placeholders.py)."""
    note = path.encode("utf-8", "replace")[:1000]
    return jpeg[:2] + b"\xff\xfe" + (len(note) + 2).to_bytes(2, "big") + note + jpeg[2:]


class _ImageHost(http.server.BaseHTTPRequestHandler):
    """Answers by the first path segment: img, dead (404), gone (410), moved, optout, html."""

    jpeg = demodata.jpeg(__import__("random").Random(1))
    png = _placeholder_png()

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def _answer(self, *, body: bool) -> None:
        kind = self.path.strip("/").split("/", 1)[0]
        status, headers, data = 200, {"Content-Type": "image/jpeg"}, _own_copy(self.jpeg, self.path)
        if self.path == PLACEHOLDER:
            headers["Content-Type"], data = "image/png", self.png
        elif kind == "dead":
            status, headers, data = 404, {"Content-Type": "text/html"}, b"<h1>Not Found</h1>"
        elif kind == "gone":
            status, headers, data = 410, {"Content-Type": "text/html"}, b"<h1>Gone</h1>"
        elif kind == "moved":
            status, headers, data = 302, {"Location": PLACEHOLDER}, b""
        elif kind == "optout":
            headers["X-Robots-Tag"] = "noai, noimageai"
        elif kind == "html":
            headers["Content-Type"], data = "text/html; charset=utf-8", b"<html>a gallery</html>"
        elif kind != "img":
            status, headers, data = 404, {"Content-Type": "text/plain"}, b"unknown"
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def image_host() -> Iterator[str]:
    """A local image host on an ephemeral 127.0.0.1 port, for the duration of the block."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ImageHost)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def write_config(folder: Path, datasets: dict[str, dict[str, Any]], url_base: str) -> Path:
    """The demo's audit.toml: the generated datasets, decode-level image checks, local URLs."""
    lines = [
        "# Written by `llava-audit demo`: the demo datasets with known defects planted.",
        'reports_dir = "reports"',
        'state = ".llava-audit/state.sqlite"',
        "",
    ]
    for name, entry in datasets.items():
        lines += ["[[datasets]]", f"name = {_toml(name)}"]
        lines += [f"{key} = {_toml(value)}" for key, value in entry.items()]
        lines.append("")
    lines += [
        "[use]",
        'purpose = "research"',
        "",
        "[images]",
        'level = "decode"',
        "",
        "[urls]",
        "# The demo's image host runs on 127.0.0.1; a real config keeps allow_private = false.",
        "allow_private = true",
        "workers = 8",
        "timeout_seconds = 5.0",
        "retries = 0",
        f"placeholder_urls = [{_toml(url_base + PLACEHOLDER)}]",
        "",
        "[gate]",
        "max_unavailable_rate = 0.2",
        "",
    ]
    path = folder / "audit.toml"
    write_atomic(path, "\n".join(lines).encode("utf-8"))
    return path


def _toml(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def plant_takedown(config: config_mod.Config) -> None:
    """A rights holder's request, recorded and applied once: cleaned copies are written beside the
    originals and the image is blocklisted, but the audit reads the originals, so it reports the
    image as present (the "never comes back" check of the takedown workflow)."""
    from audit import takedown
    from audit.store import Store
    from audit.store.ledgerfile import opened_ledger

    with Store(config.path(config.state)) as store:
        with opened_ledger(config, store) as ledger:
            if ledger.requests():
                return
        request = takedown.new_request(
            config,
            store,
            ground="copyright",
            requester_contact="photographer@example.org",
            identifiers=[("image", demodata.TAKEDOWN_IMAGE)],
            notes="demo: the photographer asked for this image to be removed",
        )
        takedown.apply(config, store, request.request_id)


def run_demo(
    folder: Path, *, progress: Progress | None = None, console: Console | None = None
) -> tuple[rpt.AuditReport, Path]:
    """Build the demo in ``folder``, audit it with the local image host up, return the report."""
    from audit.runner import run_audit

    folder.mkdir(parents=True, exist_ok=True)
    with image_host() as url_base:
        datasets = demodata.build(folder, url_base)
        config_file = write_config(folder, datasets, url_base)
        if console is not None:
            console.print(
                f"demo datasets and audit.toml written to {folder}; auditing ...", markup=False
            )
        config = config_mod.load(config_file)
        plant_takedown(config)
        report = run_audit(config, progress=progress, config_file=str(config_file))
    return report, config.path(config.reports_dir) / report.run_id
