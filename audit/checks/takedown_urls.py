"""Source URLs as takedown keys: one canonical form for every way the same image's URL is written.

A requester names the URL they saw; the dataset holds the one its crawler saw. Pure string work
(no network), so a notice given as ``http://`` finds the record stored as ``https://``:

- ``http`` and ``https`` are one scheme (``https``); the host is lower-case, without a trailing dot
  or its scheme's default port; percent-encoding follows RFC 3986 §6.2.2 (unreserved characters
  decoded, other escapes upper-case, non-ASCII encoded as UTF-8); the fragment is dropped.
- Every Flickr URL of one photo (the static image at any farm, server, secret and size suffix, the
  photo page ``/photos/<user>/<id>/``, ``photo.gne?id=<id>`` and ``flic.kr/p/<base58>``) becomes
  ``https://www.flickr.com/photo.gne?id=<id>``: a DMCA notice names the photo page, COCO and the
  crawls hold a size variant of the image.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit

_SPACE = re.compile(r"\s")
_PCT = re.compile(r"%([0-9A-Fa-f]{2})")
_STRAY = re.compile(r"%(?![0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PATH_SAFE = "/:@!$&'()*+,;=%"
_QUERY_SAFE = _PATH_SAFE + "?"
_DEFAULT_PORT = {"http": 80, "https": 443}
_FLICKR_STATIC = re.compile(r"(?:^|\.)static\.?flickr\.com$")
_FLICKR_HOSTS = frozenset({"flickr.com", "www.flickr.com", "m.flickr.com", "secure.flickr.com"})
#: ``<id>_<secret>[_<size>].<ext>``: the photo id is what every size of one photo shares.
_FLICKR_FILE = re.compile(r"(\d+)_[0-9a-f]+(?:_[a-z0-9]{1,2})?\.(?:jpe?g|png|gif)", re.IGNORECASE)
_FLICKR_PAGE = re.compile(r"/photos/[^/]+/(\d+)(?:/.*)?")
_BASE58 = "123456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"  # flic.kr short links
FLICKR_PHOTO = "https://www.flickr.com/photo.gne?id="


def canonical_url(value: str) -> str:
    """The URL's canonical form; ValueError when it is not an absolute URL."""
    raw = value.strip()
    if _SPACE.search(raw):
        raise ValueError(f"not an absolute URL: {value!r}")
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise ValueError(f"not an absolute URL: {value!r}") from None
    host = (parts.hostname or "").rstrip(".")
    if not parts.scheme or not host:
        raise ValueError(f"not an absolute URL: {value!r}")
    scheme = parts.scheme.lower()
    if scheme in _DEFAULT_PORT:  # one scheme: 443 is https's default, 80 was the http URL's own
        scheme, default = "https", (443, _DEFAULT_PORT[scheme])
    else:
        default = (-1, -1)
    host = _bracketed(host) if port is None or port in default else f"{_bracketed(host)}:{port}"
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}" if userinfo else host
    path = _percent(parts.path, _PATH_SAFE) or "/"
    query = _percent(parts.query, _QUERY_SAFE)
    photo = _flickr_photo(netloc, path, query)
    if photo is not None:
        return FLICKR_PHOTO + photo
    return urlunsplit((scheme, netloc, path, query, ""))


def url_probe(value: str) -> str:
    """A cheap token equal for a URL and its canonical form (the blocklist's first test).

    The last path segment, decoded and lower-case; for anything Flickr, the canonical URL itself.
    Never a false miss: ``url_probe(u) == url_probe(canonical_url(u))`` for every valid ``u``.
    """
    text = value.strip().split("#", 1)[0]
    low = (unquote(text) if "%" in text else text).lower()
    if "flickr" in low or "flic.kr" in low:
        try:
            return canonical_url(text)
        except ValueError:
            return ""
    low = low.split("?", 1)[0]
    start = low.find("://")
    slash = low.find("/", start + 3) if start >= 0 else -1
    return "" if slash < 0 else low.rsplit("/", 1)[1]


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _percent(part: str, safe: str) -> str:
    """RFC 3986 §6.2.2: unreserved characters decoded, other escapes upper-case, the rest encoded."""
    if "%" in part:  # a stray "%" is a literal one: escape it, or "%a%41" would become "%aA"
        part = _PCT.sub(_unescape, _STRAY.sub("%25", part))
    return quote(part, safe=safe)


def _unescape(match: re.Match[str]) -> str:
    char = chr(int(match.group(1), 16))
    return char if char in _UNRESERVED else "%" + match.group(1).upper()


def _flickr_photo(netloc: str, path: str, query: str) -> str | None:
    """The Flickr photo id a URL names, if it names one."""
    if _FLICKR_STATIC.search(netloc):
        found = _FLICKR_FILE.fullmatch(path.rsplit("/", 1)[-1])
        return found.group(1) if found else None
    if netloc in _FLICKR_HOSTS:
        page = _FLICKR_PAGE.fullmatch(path)
        if page:
            return page.group(1)
        if path in ("/photo.gne", "/photo_zoom.gne"):
            ids = parse_qs(query).get("id", [])
            return ids[0] if ids and ids[0].isdigit() else None
        return None
    if netloc == "flic.kr" and path.startswith("/p/"):
        return _base58(path[3:].rstrip("/"))
    return None


def _base58(text: str) -> str | None:
    number = 0
    for char in text:
        digit = _BASE58.find(char)
        if digit < 0:
            return None
        number = number * 58 + digit
    return str(number) if text else None
