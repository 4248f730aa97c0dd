"""Takedown matching: blocklist keys against records, and the findings for items that came back.

Pure: the workflow (``audit.takedown``) reads the records and the image bytes and passes them in as
:class:`Candidate` values; this module only normalises keys, matches them and makes findings. One
image can hide under several keys (a file name in chat.json, a URL in metadata.json, the same bytes
under another path), so matching is by record id, image path, URL and content hash, and
:func:`expand` follows a match to the other content keys of the matched record (spec/licensing.md
§4.6 step 3 and 8). URLs compare in their canonical form (:mod:`audit.checks.takedown_urls`:
http and https, Flickr size variants of one photo); perceptual hashes compare by Hamming distance
(``[takedown] phash_distance``), so a re-encoded or resized copy under a new name still matches.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Literal

import msgspec

from audit import findings
from audit.checks.takedown_urls import canonical_url, url_probe
from audit.config import PHASH_DISTANCE
from audit.findings import Code, Finding

KeyKind = Literal["record_id", "image", "url", "sha256", "md5", "phash"]
KEY_KINDS: tuple[str, ...] = KeyKind.__args__  # type: ignore[attr-defined]
#: Keys that identify the content itself; a match on one blocklists the record's other content keys.
CONTENT_KINDS: tuple[str, ...] = ("image", "url", "sha256", "md5", "phash")
#: Content hashes (read from the image bytes): sha256 and md5 exact, phash (64-bit DCT perceptual
#: hash, 16 hex digits) within a Hamming distance.
_HEX = {
    "sha256": re.compile(r"[0-9a-f]{64}"),
    "md5": re.compile(r"[0-9a-f]{32}"),
    "phash": re.compile(r"[0-9a-f]{16}"),
}
_DIGITS = {"sha256": 64, "md5": 32, "phash": 16}


class BlockKey(msgspec.Struct, frozen=True, order=True):
    """One normalised identifier of a taken-down item."""

    kind: str
    value: str

    def __str__(self) -> str:
        return f"{self.kind}={self.value}"


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    """What matching needs to know about one record of one dataset file."""

    dataset: str
    file: str
    index: int
    record_id: str | None = None
    image: str | None = None
    url: str | None = None
    sha256: str | None = None
    md5: str | None = None
    phash: str | None = None

    def block_keys(self) -> list[BlockKey]:
        """The record's own keys, normalised the same way as blocklist keys."""
        out = []
        for kind in KEY_KINDS:
            raw = getattr(self, kind)
            if raw is None:
                continue
            try:
                out.append(parse_key(kind, raw))
            except ValueError:
                continue  # a malformed value in the data is the structure stage's finding
        return out


class Match(msgspec.Struct, frozen=True, kw_only=True):
    """A record that carries a blocklisted key (one row of the removal manifest)."""

    dataset: str
    file: str
    index: int
    record_id: str | None
    image: str | None
    url: str | None
    key: BlockKey
    request_id: str


def parse_key(kind: str, raw: str) -> BlockKey:
    """Normalise one identifier; a malformed one raises ValueError saying what is wrong."""
    if kind not in KEY_KINDS:
        raise ValueError(f"unknown identifier kind {kind!r} (one of {', '.join(KEY_KINDS)})")
    value = str(raw).strip()
    if not value:
        raise ValueError(f"empty {kind}")
    if kind in _HEX:
        lowered = value.lower()
        if not _HEX[kind].fullmatch(lowered):
            raise ValueError(f"{kind} must be {_DIGITS[kind]} hexadecimal digits, got {value!r}")
        return BlockKey(kind, lowered)
    if kind == "url":
        return BlockKey(kind, canonical_url(value))
    if kind == "image":
        return BlockKey(kind, _normalise_path(value))
    return BlockKey(kind, value)


def _normalise_path(value: str) -> str:
    """Relative, forward slashes, no empty or '.' segments: 'a//./b' and '/data/a/b' compare sanely."""
    segments = [s for s in value.replace("\\", "/").split("/") if s not in ("", ".")]
    if not segments or ".." in segments:
        raise ValueError(f"not a usable image path: {value!r}")
    return "/".join(segments)


def _parsed(kind: str, raw: str) -> list[BlockKey]:
    try:
        return [parse_key(kind, raw)]
    except ValueError:
        return []


def _suffixes(path: str) -> list[str]:
    """'a/b/c.jpg' -> ['a/b/c.jpg', 'b/c.jpg', 'c.jpg']: the same file under another image root."""
    segments = path.split("/")
    return ["/".join(segments[i:]) for i in range(len(segments))]


class Blocklist:
    """Keys and the requests that put them there, indexed for matching many records quickly.

    Image paths match when one is a whole-segment suffix of the other: a request naming
    ``coco/train2017/000000442786.jpg`` also finds ``000000442786.jpg`` in LLaVA-Instruct, and a
    request naming an absolute path on disk finds the relative path in the records.
    """

    def __init__(
        self,
        entries: Iterable[tuple[BlockKey, str]] = (),
        *,
        phash_distance: int = PHASH_DISTANCE,
    ) -> None:
        self.phash_distance = phash_distance
        self._exact: dict[BlockKey, set[str]] = defaultdict(set)
        self._image_suffix: dict[str, set[BlockKey]] = defaultdict(set)
        # Cheap first tests, so a nightly audit of millions of records normalises almost nothing.
        self._plain: dict[str, set[str]] = defaultdict(set)  # kind -> values (ids, hashes)
        self._basenames: set[str] = set()
        self._url_probes: set[str] = set()
        self._phashes: dict[int, BlockKey] = {}
        for key, request_id in entries:
            self.add(key, request_id)

    def add(self, key: BlockKey, request_id: str) -> None:
        if key.kind == "url":  # a key recorded before URLs were canonical compares as one now
            key = next(iter(_parsed("url", key.value)), key)
        self._exact[key].add(request_id)
        if key.kind == "image":
            self._basenames.add(key.value.rsplit("/", 1)[-1])
            for suffix in _suffixes(key.value):
                self._image_suffix[suffix].add(key)
        elif key.kind == "url":
            self._url_probes.add(url_probe(key.value))
        elif key.kind == "phash":
            self._phashes[int(key.value, 16)] = key
        else:
            self._plain[key.kind].add(key.value)

    def candidate_keys(self, c: Candidate) -> list[BlockKey]:
        """The candidate's keys that may be on this blocklist, normalised; the rest cost one
        set lookup each (a blocklisted image shares its file name, a URL its lower-case form)."""
        keys = []
        if c.record_id is not None and c.record_id.strip() in self._plain["record_id"]:
            keys.append(BlockKey("record_id", c.record_id.strip()))
        for kind in ("sha256", "md5"):
            value = getattr(c, kind)
            if value is not None and value.lower() in self._plain[kind]:
                keys.append(BlockKey(kind, value.lower()))
        if c.image and self._basenames:
            tail = c.image.replace("\\", "/").rsplit("/", 1)[-1]
            if tail in self._basenames or tail in ("", "."):
                keys.extend(_parsed("image", c.image))
        if c.url and self._url_probes and url_probe(c.url) in self._url_probes:
            keys.extend(_parsed("url", c.url))
        if c.phash and self._phashes:
            keys.extend(_parsed("phash", c.phash))
        return keys

    def __len__(self) -> int:
        return len(self._exact)

    def __contains__(self, key: object) -> bool:
        return key in self._exact

    def entries(self) -> list[tuple[BlockKey, str]]:
        return sorted((k, r) for k, ids in self._exact.items() for r in ids)

    def kinds(self) -> set[str]:
        return {k.kind for k in self._exact}

    def hash_kinds(self) -> set[str]:
        """Which content hashes matching needs (the workflow reads image bytes only for these;
        a perceptual hash also decodes them)."""
        return {k.kind for k in self._exact if k.kind in _HEX}

    def requests_for(self, key: BlockKey) -> set[str]:
        return set(self._exact.get(key, ()))

    def lookup(self, keys: Iterable[BlockKey]) -> list[tuple[BlockKey, str]]:
        """Every (blocklisted key, request id) among a record's keys, in a stable order."""
        hits: set[BlockKey] = set()
        for key in keys:
            if key.kind == "image":
                hits.update(k for s in _suffixes(key.value) if (k := BlockKey("image", s)) in self)
                hits.update(self._image_suffix.get(key.value, ()))
            elif key.kind == "phash":
                hits.update(self._near(key.value))
            elif key in self:
                hits.add(key)
        return sorted((k, r) for k in hits for r in self._exact[k])

    def _near(self, value: str) -> list[BlockKey]:
        """Blocklisted perceptual hashes within the distance: the same picture, re-encoded or
        resized (a different picture differs in about half of the 64 bits)."""
        bits = int(value, 16)
        return [
            k for h, k in self._phashes.items() if (h ^ bits).bit_count() <= self.phash_distance
        ]


def find_matches(blocklist: Blocklist, candidates: Iterable[Candidate]) -> list[Match]:
    """One match per record and request, naming the request's first key (in kind order) that hit."""
    out: list[Match] = []
    for c in candidates:
        first: dict[str, BlockKey] = {}
        for key, request_id in sorted(
            blocklist.lookup(blocklist.candidate_keys(c)), key=_key_order
        ):
            first.setdefault(request_id, key)
        out.extend(
            Match(
                dataset=c.dataset,
                file=c.file,
                index=c.index,
                record_id=c.record_id,
                image=c.image,
                url=c.url,
                key=key,
                request_id=request_id,
            )
            for request_id, key in sorted(first.items())
        )
    return out


def _key_order(hit: tuple[BlockKey, str]) -> tuple[int, str]:
    key, _ = hit
    return KEY_KINDS.index(key.kind), key.value


def expand(blocklist: Blocklist, candidates: list[Candidate]) -> Blocklist:
    """Follow matches to the records' other content keys until nothing new turns up.

    A URL found in metadata.json leads to the image file name that chat.json uses; an image path
    leads to its bytes' hashes, which find a copy under another name (the perceptual hash: also
    re-encoded or resized). Record ids are not followed:
    ids are reused across LLaVA files for different samples of the same source image set.
    """
    grown = Blocklist(blocklist.entries(), phash_distance=blocklist.phash_distance)
    # Keys learnt from a record found only by a near perceptual hash (or by keys learnt so): such
    # a record lends its exact keys but not its own phash, else near-of-near would drift from the
    # picture to a different one.
    near: set[tuple[BlockKey, str]] = set()
    changed = True
    while changed:
        changed = False
        for c in candidates:
            hits = grown.lookup(grown.candidate_keys(c))
            if not hits:
                continue
            keys = [k for k in c.block_keys() if k.kind in CONTENT_KINDS]
            for request_id in {r for _, r in hits}:
                near_only = all(
                    k.kind == "phash" or (k, r) in near for k, r in hits if r == request_id
                )
                for key in keys:
                    if near_only and key.kind == "phash":
                        continue
                    if request_id not in grown.requests_for(key):
                        grown.add(key, request_id)
                        changed = True
                        if near_only:
                            near.add((key, request_id))
    return grown


def present_findings(
    matches: Iterable[Match], applied: Mapping[str, bool] | None = None
) -> list[Finding]:
    """`takedown.present` for items of applied requests; `takedown.pending` for open ones.

    ``applied`` maps request ids to whether their keys are on the blocklist yet; missing means yes.
    """
    out = []
    for m in matches:
        is_applied = True if applied is None else applied.get(m.request_id, True)
        code = Code.TAKEDOWN_PRESENT if is_applied else Code.TAKEDOWN_PENDING
        verb = "was taken down" if is_applied else "is named in an open takedown request"
        out.append(
            findings.make(
                code,
                f"record matches {m.key} which {verb} ({m.request_id})",
                dataset=m.dataset,
                file=m.file,
                index=m.index,
                record_id=m.record_id,
            )
        )
    return out
