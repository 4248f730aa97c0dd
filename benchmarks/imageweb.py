"""The loopback image web of ``bench_urlweb`` (issue 14): 64 image hosts on 127.0.1.1 .. 127.0.1.64.

Every answer comes after a fixed latency (50 ms, a ``call_later`` timer: waiting costs no CPU), 30%
of URLs are dead and the rest return a small JPEG, so a URL checker and img2dataset can be timed on
the same 100K CC-3M-style URLs without the internet. What each URL does is decided by the seed
alone (``WebPlan.kind``): the URL generator and the server agree without sharing a file, and a
smoke test can check every answer against the plan.

Dead URLs, as a crawl of CC-3M meets them: two whole hosts refuse connections (nothing listens on
their address: a dead site), and on the others 404 (most), 410, a connection reset after the
request (RST, SO_LINGER 0) and a few requests never answered (the client's timeout ends them).
Live URLs get a distinct JPEG each (a comment segment naming the path makes every body unique, so
no host looks like it answers one stand-in image), honouring ``Range: bytes=a-b`` with a 206.
``robots.txt`` and ``/.well-known/*`` are 404 on every host (counted apart).

The server is asyncio with raw protocols (keep-alive, ``Connection: close`` honoured, no framework,
no uvloop), one process for every host:

    .venv/bin/python -m benchmarks.imageweb --port 8080
prints ``READY <port>``; then each ``stats`` line on stdin prints the counts since the last one as
a JSON line; end of stdin stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import random
import socket
import struct
import sys
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

#: What a URL does. "refused" is a whole host; the others are per URL on an answering host.
LIVE, NOT_FOUND, GONE, RESET, STALL, REFUSED = "ok", "404", "410", "reset", "stall", "refused"
DEAD_KINDS = (NOT_FOUND, GONE, RESET, STALL, REFUSED)

_CAPTION_TEXT = (
    "actor attends the premiere of film person arrives at festival view from the top of mountain "
    "christmas tree in a living room young woman walking on the beach at sunset football player "
    "celebrates scoring goal during match vector illustration of a cartoon cat cityscape at night "
    "with lights old stone bridge over the river portrait of a smiling man wedding cake with flowers "
    "red car parked on the street aerial view of island and ocean kitchen interior with wooden table"
)
_WORDS = tuple(_CAPTION_TEXT.split())


@dataclass(frozen=True)
class WebPlan:
    """Which hosts exist and what every URL path answers; a pure function of the seed."""

    hosts: int = 64
    seed: int = 14
    dead_share: float = 0.30
    refused_hosts: int = 2
    #: shares of all URLs on answering hosts; the rest of the dead share is 404
    gone_share: float = 0.04
    reset_share: float = 0.025
    stall_share: float = 0.001

    def address(self, host: int) -> str:
        """Host numbers are 1-based: 127.0.1.1 .. 127.0.1.<hosts>."""
        return f"127.0.1.{host}"

    @cached_property
    def refused(self) -> frozenset[int]:
        return frozenset(
            random.Random(self.seed).sample(range(1, self.hosts + 1), self.refused_hosts)
        )

    @cached_property
    def _thresholds(self) -> tuple[float, float, float, float]:
        """Cumulative bounds of reset, stall, 410, 404 so that the whole web is ``dead_share`` dead."""
        refused = self.refused_hosts / self.hosts
        dead = (self.dead_share - refused) / (1 - refused)
        reset = self.reset_share
        stall = reset + self.stall_share
        gone = stall + self.gone_share
        if dead < gone:
            raise ValueError("dead_share is below the fixed reset, stall and 410 shares")
        return reset, stall, gone, dead

    def kind(self, target: str | bytes, host: int | None = None) -> str:
        """What the request target (path and query) answers on ``host`` (None: an answering host)."""
        if host is not None and host in self.refused:
            return REFUSED
        raw = target.encode() if isinstance(target, str) else target
        digest = hashlib.blake2b(raw, digest_size=8, key=self.seed.to_bytes(8, "big")).digest()
        u = int.from_bytes(digest, "big") / 2**64
        reset, stall, gone, dead = self._thresholds
        if u < reset:
            return RESET
        if u < stall:
            return STALL
        if u < gone:
            return GONE
        return NOT_FOUND if u < dead else LIVE


def _token(rng: random.Random, alphabet: str, size: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(size))


_HEX = "0123456789abcdef"
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _path(rng: random.Random, style: int) -> str:
    """A path in the shape of one of CC-3M's big sources (WordPress, Pinterest, Blogspot, ...)."""
    slug = "-".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 6)))
    if style == 0:  # WordPress uploads
        year, month = rng.randint(2009, 2018), rng.randint(1, 12)
        size = rng.choice(("1024x768", "600x400", "300x225", "768x1024"))
        return f"/wp-content/uploads/{year}/{month:02d}/{slug}-{_token(rng, _HEX, 6)}-{size}.jpg"
    if style == 1:  # Pinterest
        h = _token(rng, _HEX, 32)
        return f"/736x/{h[:2]}/{h[2:4]}/{h[4:6]}/{h}.jpg"
    if style == 2:  # Blogspot / googleusercontent
        parts = "/".join(_token(rng, _B64, 11) for _ in range(3))
        return f"/-{parts}/AAAAAAAA{_token(rng, _B64, 3)}/s1600/{slug}.JPG"
    if style == 3:  # stock photo with a query string
        pid = rng.randint(10**8, 10**9 - 1)
        return f"/photos/{slug}-picture-id{pid}?k=6&m={pid}&s=612x612&w=0&h={_token(rng, _B64, 20)}"
    # news site
    y, m, d = rng.randint(2010, 2018), rng.randint(1, 12), rng.randint(1, 28)
    stamp = rng.randint(10**12, 10**13 - 1)
    return f"/i/pix/{y}/{m:02d}/{d:02d}/{_token(rng, _HEX, 8)}-0-image-a-{rng.randint(1, 99)}_{stamp}.jpg"


def plan_urls(plan: WebPlan, count: int, port: int) -> Iterator[tuple[str, str, str]]:
    """``count`` distinct (caption, url, kind), hosts drawn uniformly, deterministic by seed."""
    rng = random.Random(plan.seed * 1_000_003 + count)
    seen: set[str] = set()
    while len(seen) < count:
        host = rng.randint(1, plan.hosts)
        target = _path(rng, host % 5)
        url = f"http://{plan.address(host)}:{port}{target}"
        if url in seen:
            continue
        seen.add(url)
        caption = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(5, 14)))
        yield caption, url, plan.kind(target, host)


def write_tsv(path: Path, rows: Iterator[tuple[str, str, str]]) -> Counter[str]:
    """The URL list as a TSV with a ``caption<TAB>url`` header (img2dataset and ``urls --column url``
    read it); returns how many URLs of each kind it holds."""
    kinds: Counter[str] = Counter()
    with path.open("w", encoding="utf-8") as out:
        out.write("caption\turl\n")
        for caption, url, kind in rows:
            out.write(f"{caption}\t{url}\n")
            kinds[kind] += 1
    return kinds


def jpeg_variants(seed: int, count: int = 16) -> list[bytes]:
    """Small JPEGs (about 3-8 KB): smooth seeded noise at 160x120 .. 320x240, quality 70."""
    from PIL import Image, ImageFilter

    rng = random.Random(seed)
    variants = []
    for i in range(count):
        w, h = 160 + 20 * (i % 8), 120 + 15 * (i % 8)
        noise = Image.frombytes("RGB", (w // 8, h // 8), rng.randbytes(3 * (w // 8) * (h // 8)))
        image = noise.resize((w, h), Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(2))
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=70)
        variants.append(buf.getvalue())
    return variants


def unique_jpeg(base: bytes, target: bytes) -> bytes:
    """``base`` with a COM segment naming ``target`` after its JFIF header: a distinct body per URL."""
    at = 4 + int.from_bytes(base[4:6], "big") if base[2:4] == b"\xff\xe0" else 2
    comment = target[:60000]
    return base[:at] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + base[at:]


_REASONS = {
    200: "OK",
    206: "Partial Content",
    404: "Not Found",
    410: "Gone",
    416: "Range Not Satisfiable",
}
_LINGER_ZERO = struct.pack("ii", 1, 0)


def _range(lowered: bytes, size: int) -> tuple[int, int] | None:
    """The first ``bytes=a-b`` / ``bytes=a-`` of a Range header, clipped to the body; None if absent."""
    at = lowered.find(b"\r\nrange:")
    if at < 0:
        return None
    stop = lowered.find(b"\r\n", at + 2)
    value = lowered[at + 8 : stop if stop >= 0 else len(lowered)].strip()
    first, _, last = value.removeprefix(b"bytes=").partition(b"-")
    try:
        start = int(first)
        end = min(int(last), size - 1) if last.strip() else size - 1
    except ValueError:
        return None
    return start, end


class ImageWeb:
    """The answering side: counters and the answer to one request head."""

    def __init__(self, plan: WebPlan, latency: float) -> None:
        self.plan = plan
        self.latency = latency
        self.variants = jpeg_variants(plan.seed)
        self.counts: Counter[str] = Counter()

    def answer(self, head: bytes) -> tuple[str, bytes]:
        """(kind, response bytes) for a request head; stall and reset have no bytes."""
        line_end = head.find(b"\r\n")
        parts = head[: line_end if line_end >= 0 else len(head)].split(b" ")
        target = parts[1] if len(parts) > 1 else b"/"
        if target.startswith((b"/robots.txt", b"/.well-known/")):
            return "hostfile", self._head(404, b"text/plain", b"not found\n", b"")
        kind = self.plan.kind(target)
        if kind in (RESET, STALL):
            return kind, b""
        if kind != LIVE:
            status = 404 if kind == NOT_FOUND else 410
            return kind, self._head(
                status, b"text/html", b"<html><body>%d</body></html>" % status, b""
            )
        body = unique_jpeg(self.variants[zlib.crc32(target) % len(self.variants)], target)
        wanted = _range(head.lower(), len(body))
        if wanted is None:
            return kind, self._head(200, b"image/jpeg", body, b"")
        start, end = wanted
        if start >= len(body) or start > end:
            extra = b"Content-Range: bytes */%d\r\n" % len(body)
            return kind, self._head(416, b"text/plain", b"", extra)
        extra = b"Content-Range: bytes %d-%d/%d\r\n" % (start, end, len(body))
        return kind, self._head(206, b"image/jpeg", body[start : end + 1], extra)

    @staticmethod
    def _head(status: int, ctype: bytes, body: bytes, extra: bytes) -> bytes:
        reason = _REASONS[status].encode()
        return (
            b"HTTP/1.1 %d %s\r\nServer: imageweb\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
            b"Accept-Ranges: bytes\r\n%s\r\n" % (status, reason, ctype, len(body), extra)
        ) + body


class _Site(asyncio.Protocol):
    """One client connection: each complete request head is answered after the latency, in order."""

    def __init__(self, web: ImageWeb) -> None:
        self.web = web
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.web.counts["connections"] += 1

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data
        loop = asyncio.get_running_loop()
        while (end := buffer.find(b"\r\n\r\n")) >= 0:
            loop.call_later(self.web.latency, self._answer, buffer[:end])
            buffer = buffer[end + 4 :]
        self.buffer = buffer

    def _answer(self, head: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        kind, response = self.web.answer(head)
        self.web.counts[kind] += 1
        if kind == STALL:
            return  # never answered: the client's timeout ends it
        if kind == RESET:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
            transport.abort()
            return
        transport.write(response)
        if b"\r\nconnection: close" in head.lower():
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(plan: WebPlan, port: int, latency: float) -> None:
    """Listen on every answering host, then answer ``stats`` lines on stdin until it ends."""
    loop = asyncio.get_running_loop()
    web = ImageWeb(plan, latency)
    servers = []
    for host in range(1, plan.hosts + 1):
        if host in plan.refused:
            continue
        servers.append(
            await loop.create_server(
                lambda: _Site(web), plan.address(host), port, backlog=4096, reuse_address=True
            )
        )
        port = port or servers[0].sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    while line := await asyncio.to_thread(sys.stdin.readline):
        if line.strip() == "stats":
            print(json.dumps(dict(web.counts)), flush=True)
            web.counts.clear()
    for server in servers:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=64)
    parser.add_argument("--port", type=int, default=8080, help="0: any free port")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    asyncio.run(serve(WebPlan(hosts=args.hosts, seed=args.seed), args.port, args.latency))


if __name__ == "__main__":
    main()
