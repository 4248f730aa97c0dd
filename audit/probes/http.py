"""What a probe's answer means: the status classes, the classification, the settings' fingerprint.

Client-free: :mod:`audit.probes.curlprobe` moves the bytes (a ranged GET, redirects followed by
hand, retries) and hands each final answer here as an :class:`Answer`. A ranged GET
(``Range: bytes=0-N``) instead of HEAD because many image hosts answer HEAD wrongly; the first
bytes are enough to tell an image from an HTML error page (magic bytes, not the Content-Type,
decide: PIL sniffs content too).
"""

from __future__ import annotations

import email.utils
import hashlib
import ipaddress
import time
from collections.abc import Iterator
from typing import NamedTuple
from urllib.parse import urlsplit

import msgspec

from audit.config import UrlConfig
from audit.probes.placeholders import known_sha256, known_urls
from audit.probes.reservations import header_reservations
from audit.store.urls import Reservation

#: Status classes, in the order reports list them. ``ok`` and ``opt_out`` are images that exist.
STATUSES = (
    "ok",
    "opt_out",
    "gone",
    "forbidden",
    "http_error",
    "server_error",
    "timeout",
    "dns",
    "tls",
    "connection",
    "not_image",
    "truncated",
    "placeholder",
    "redirects",
    "invalid",
    "refused",
)
AVAILABLE = frozenset({"ok", "opt_out"})
NOT_PROBED = frozenset({"refused"})
#: Outcomes that are no fact about the URL (the guard refused it under this run's settings and
#: nothing was sent): never cached, decided again by each run.
UNCACHED = frozenset({"refused"})
#: Bumped when the classification of answers changes, so cached results are re-probed.
_CLASSIFIER_VERSION = 3  # 2: tdm-reservation headers are opt-outs too; 3: image fingerprints
#: Failures that often heal by themselves: re-probed after ``transient_ttl_days``.
TRANSIENT = frozenset({"timeout", "connection", "server_error", "http_error"})

REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "jpeg"),
    (0, b"\x89PNG\r\n\x1a\n", "png"),
    (0, b"GIF87a", "gif"),
    (0, b"GIF89a", "gif"),
    (8, b"WEBP", "webp"),
    (0, b"BM", "bmp"),
    (0, b"II*\x00", "tiff"),
    (0, b"MM\x00*", "tiff"),
    (0, b"\x00\x00\x01\x00", "ico"),
    (4, b"ftypavif", "avif"),
    (4, b"ftypheic", "heic"),
    (4, b"ftypmif1", "heic"),
)
_ENDINGS = {"jpeg": b"\xff\xd9", "png": b"IEND\xaeB`\x82", "gif": b";"}


class Outcome(NamedTuple):
    status: str
    http_status: int | None = None
    detail: str = ""
    final_url: str | None = None
    retry: bool = False
    retry_after: float | None = None
    reservations: tuple[Reservation, ...] = ()
    sha256: str | None = None  # an image's fingerprint: sha256 of the bytes read ...
    size: int | None = None  # ... and its total size, when known


class Answer(NamedTuple):
    """What a server sent for one request, whatever the client: the status, the headers (lower-case
    name -> values), up to ``max_bytes + 1`` bytes of the body, and how the body's transfer broke
    off, if it did (a status class and its detail: ``timeout`` or ``truncated``)."""

    code: int
    headers: dict[str, list[str]]
    body: bytes
    broke: tuple[str, str] | None = None

    def header(self, name: str, default: str = "") -> str:
        values = self.headers.get(name)
        return values[0] if values else default


class Classifier:
    """Turns an answer into its status class; holds the run's placeholder and opt-out lists."""

    def __init__(self, settings: UrlConfig) -> None:
        self.max_bytes = settings.max_bytes
        self.placeholder_urls = frozenset(_placeholder_urls(settings))
        self.placeholder_sha256 = frozenset(_placeholder_sha256(settings))
        self.opt_out = frozenset(d.lower() for d in settings.opt_out_directives)
        self.tdm = settings.check_tdmrep

    def placeholder(self, url: str) -> bool:
        return _normalise(url) in self.placeholder_urls

    def classify(self, answer: Answer, url: str, final: str | None) -> Outcome:
        """The status class of a non-redirect answer to ``url`` (reached at ``final``, if moved)."""
        code = answer.code
        if not 200 <= code < 300:
            return status_outcome(answer, final)
        named = {n: answer.headers.get(n, []) for n in ("x-robots-tag", "tdm-reservation")}
        named["tdm-policy"] = answer.headers.get("tdm-policy", [])
        reserved = header_reservations(
            named, final or url, time.time(), directives=self.opt_out, tdm=self.tdm
        )
        if any(r.reserved for r in reserved):
            detail = "; ".join(r.rule for r in reserved if r.reserved)
            return Outcome("opt_out", code, detail, final, reservations=reserved)
        if answer.broke is not None:
            return Outcome(answer.broke[0], code, answer.broke[1], final)
        body, complete, size = _capped(answer, self.max_bytes)
        if not body:
            return Outcome("not_image", code, "empty body", final)
        digest = hashlib.sha256(body).hexdigest()
        if complete and digest in self.placeholder_sha256:
            return Outcome("placeholder", code, "body is a known placeholder image", final)
        kind = _sniff(body)
        if kind is None:
            ctype = answer.header("content-type", "none")
            return Outcome("not_image", code, f"not an image (Content-Type {ctype[:60]})", final)
        ending = _ENDINGS.get(kind)
        if complete and ending and not body.rstrip(b"\x00\r\n ").endswith(ending):
            return Outcome("truncated", code, f"{kind} ends before its end marker", final)
        return Outcome(  # reserved: tdm-reservation: 0 headers, kept as evidence
            "ok", code, kind, final, reservations=reserved, sha256=digest, size=size
        )


def status_outcome(answer: Answer, final: str | None) -> Outcome:
    """The class of a non-2xx answer: told by its status code alone (429 and 5xx retried)."""
    code = answer.code
    if code in (404, 410):
        return Outcome("gone", code, f"HTTP {code}", final)
    if code in (401, 403, 451):
        return Outcome("forbidden", code, f"HTTP {code}", final)
    if code == 429 or code >= 500:
        status = "http_error" if code == 429 else "server_error"
        return Outcome(status, code, f"HTTP {code}", final, True, _retry_after(answer))
    if code == 416:
        return Outcome("not_image", code, "empty body (HTTP 416 for bytes=0-)", final)
    return Outcome("http_error", code, f"HTTP {code}", final)


def _capped(answer: Answer, max_bytes: int) -> tuple[bytes, bool, int | None]:
    """Up to ``max_bytes`` of the body, whether that is the whole resource, and the resource's
    size (the body's when whole, else what Content-Range or Content-Length says, if anything)."""
    body = answer.body
    if answer.code == 206:
        total = answer.header("content-range").rpartition("/")[2]
        whole = total.isdigit() and int(total) <= len(body)
    else:
        total = answer.header("content-length").strip()
        whole = len(body) <= max_bytes
    if whole:
        return body[:max_bytes], True, len(body)
    return body[:max_bytes], False, int(total) if total.isdigit() else None


def _sniff(body: bytes) -> str | None:
    for offset, magic, kind in _MAGIC:
        if body[offset : offset + len(magic)] == magic:
            return kind
    return None


def _retry_after(answer: Answer) -> float | None:
    value = answer.header("retry-after").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def settings_fingerprint(settings: UrlConfig) -> str:
    """A short key of the settings that decide a URL's outcome: a cached result made under other
    ones (another byte cap, timeout, redirect cap, allowed networks, placeholder or opt-out list,
    TDMRep headers on or off) is not reused. robots.txt and tdmrep.json are judged afresh each
    run from their own cache, so their settings are not in it. Politeness settings (workers, per_host, delay, user agent) are left out."""
    networks = sorted({str(ipaddress.ip_network(n, strict=False)) for n in settings.allow_networks})
    key = (
        _CLASSIFIER_VERSION,
        settings.max_bytes,
        settings.timeout_seconds,
        settings.max_seconds_per_url,
        settings.max_redirects,
        settings.allow_private,
        networks,
        sorted(set(_placeholder_urls(settings))),
        sorted(set(_placeholder_sha256(settings))),
        sorted({d.lower() for d in settings.opt_out_directives}),
        settings.check_tdmrep,
    )
    return hashlib.sha256(msgspec.json.encode(key)).hexdigest()[:16]


def _placeholder_urls(settings: UrlConfig) -> Iterator[str]:
    """The shipped stand-in URLs (audit/data/placeholders.toml) and the configured ones."""
    for url in (*known_urls(), *settings.placeholder_urls):
        yield _normalise(url)


def _placeholder_sha256(settings: UrlConfig) -> Iterator[str]:
    for digest in (*known_sha256(), *settings.placeholder_sha256):
        yield digest.lower()


def _normalise(url: str) -> str:
    """Placeholder matching ignores the scheme and host case (http and https serve the same)."""
    parts = urlsplit(url)
    return f"{(parts.netloc or '').lower()}{parts.path}?{parts.query}"
