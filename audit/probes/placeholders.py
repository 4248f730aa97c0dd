"""Stand-in images found by their bytes: the cross-URL pass after probing, and the shipped list.

A host that no longer has a photo often still answers 200 with an image: its "photo unavailable"
stand-in, served for every missing path or reached by a redirect. One probe cannot tell that from
a photo; many probes can. :func:`detect` is a pure function over one file's probe results (fresh
and cached alike: the store keeps each image's fingerprint and final redirect target), so a re-run
from the cache finds the same stand-ins.

The rule, with N = ``[urls] placeholder_min_urls`` (default 5). URLs are *distinct* when they
differ once the scheme, the host's case and the fragment are ignored (records sharing one URL
count once: the same photo hot-linked by many records is not a stand-in).

- **Same bytes**: images with the same fingerprint (sha256 of the bytes read, which is the whole
  file for a small stand-in, plus the total size) answer at least N distinct URLs *on one site*
  (the site that served them: the redirect target's, else the URL's own; a site is the host's last
  two labels, three under ``co.uk``-style names, so ``farm1``/``farm2.staticflickr.com`` are one).
  Counting per site keeps a photo copied byte for byte onto many different websites (syndication,
  stock images) from being taken for a stand-in.
- **Same redirect target**: at least N distinct URLs (any hosts) end, after redirects, at the same
  final URL that answers with an image.

Every image URL with a flagged fingerprint or final URL becomes ``placeholder``; each flagged group
is reported once (:class:`audit.results.Placeholder`) with example URLs. Only images (``ok``) are
reclassified: every other status already says the photo is not there. The shipped stand-ins
(``audit/data/placeholders.toml``) are matched while probing, by :mod:`audit.probes.http`.
"""

from __future__ import annotations

import functools
import tomllib
from collections import Counter
from collections.abc import Mapping
from importlib import resources
from urllib.parse import urlsplit

import msgspec

from audit.results import Placeholder
from audit.store.urls import UrlProbe

#: Example URLs kept per detected stand-in (the report shows them).
EXAMPLES = 5
_SECOND_LEVEL = frozenset({"ac", "co", "com", "edu", "go", "gov", "ne", "net", "or", "org"})


class KnownPlaceholder(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One well-known stand-in: the URLs it is served at, its digests (whole file) if verified,
    and the public source that shows it."""

    name: str
    source: str
    urls: list[str] = msgspec.field(default_factory=list)
    sha256: list[str] = msgspec.field(default_factory=list)
    size: int | None = None


class _Shipped(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    placeholder: list[KnownPlaceholder]


@functools.cache
def known() -> tuple[KnownPlaceholder, ...]:
    """The shipped list (audit/data/placeholders.toml), read once."""
    text = resources.files("audit").joinpath("data/placeholders.toml").read_text(encoding="utf-8")
    return tuple(msgspec.convert(tomllib.loads(text), _Shipped).placeholder)


def known_urls() -> tuple[str, ...]:
    return tuple(url for entry in known() for url in entry.urls)


def known_sha256() -> tuple[str, ...]:
    return tuple(digest.lower() for entry in known() for digest in entry.sha256)


def detect(
    results: Mapping[str, UrlProbe], min_urls: int
) -> tuple[dict[str, UrlProbe], list[Placeholder]]:
    """``results`` (URL -> probe) with stand-ins reclassified as ``placeholder``, and the
    stand-ins found, most URLs first. Pure: the probes themselves are not changed."""
    by_bytes: dict[tuple[str, int | None], list[UrlProbe]] = {}
    by_target: dict[str, list[UrlProbe]] = {}
    for probe in results.values():
        if probe.status != "ok":
            continue
        if probe.sha256:
            by_bytes.setdefault((probe.sha256, probe.size), []).append(probe)
        if probe.final_url:
            by_target.setdefault(_distinct(probe.final_url), []).append(probe)
    flagged_bytes = {
        fp
        for fp, group in by_bytes.items()
        if len(group) >= min_urls and _most_on_one_site(group) >= min_urls
    }
    flagged_targets = {
        target
        for target, group in by_target.items()
        if len(group) >= min_urls and len({_distinct(p.url) for p in group}) >= min_urls
    }
    groups: dict[tuple[str, str], list[UrlProbe]] = {}
    for probe in results.values():
        if probe.status != "ok":
            continue
        fingerprint = (probe.sha256 or "", probe.size)
        if probe.sha256 and fingerprint in flagged_bytes:
            groups.setdefault(("bytes", f"{probe.sha256}:{probe.size}"), []).append(probe)
        elif probe.final_url and _distinct(probe.final_url) in flagged_targets:
            groups.setdefault(("redirect", _distinct(probe.final_url)), []).append(probe)
    reclassified = dict(results)
    found: list[Placeholder] = []
    for (rule, _key), members in groups.items():
        placeholder = _describe(rule, members)
        found.append(placeholder)
        detail = _detail(placeholder)
        for probe in members:
            reclassified[probe.url] = msgspec.structs.replace(
                probe, status="placeholder", detail=detail
            )
    found.sort(key=lambda p: (-p.urls, p.examples))
    return reclassified, found


def _describe(rule: str, members: list[UrlProbe]) -> Placeholder:
    targets = Counter(p.final_url for p in members if p.final_url)
    fingerprints = Counter((p.sha256, p.size) for p in members if p.sha256)
    sha256, size = fingerprints.most_common(1)[0][0] if fingerprints else (None, None)
    urls = sorted({p.url for p in members})
    return Placeholder(
        rule="bytes" if rule == "bytes" else "redirect",
        sha256=sha256,
        size=size,
        target=targets.most_common(1)[0][0] if targets else None,
        urls=len(urls),
        hosts=len({(urlsplit(u).hostname or "") for u in urls}),
        examples=urls[:EXAMPLES],
    )


def _detail(p: Placeholder) -> str:
    return f"{p.label} answers {p.urls} distinct URLs: a host's stand-in for a missing photo"


def _distinct(url: str) -> str:
    """What makes two URLs distinct: host (case-insensitive, port kept), path and query; the
    scheme and the fragment do not (http and https serve the same file)."""
    parts = urlsplit(url)
    return f"{parts.netloc.lower()}{parts.path or '/'}?{parts.query}"


def _most_on_one_site(group: list[UrlProbe]) -> int:
    """The most distinct URLs of ``group`` that one site served (the final URL's, else the URL's)."""
    seen = {(_site(p.final_url or p.url), _distinct(p.url)) for p in group}
    return max(Counter(site for site, _ in seen).values())


def _site(url: str) -> str:
    """A host's registrable part, roughly: its last two labels, three under a country's ``co.``,
    ``com.``, ``ac.`` ... (no public-suffix list: this only groups a host's own servers); an IP
    address is its own site."""
    host = (urlsplit(url).hostname or "").rstrip(".")
    labels = host.split(".")
    if ":" in host or host.replace(".", "").isdigit() or len(labels) <= 2:
        return host
    keep = 3 if len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL else 2
    return ".".join(labels[-keep:])
