"""Where takedown looks: every configured dataset file, record by record, with image hashes.

Separate from the workflow steps (``audit.takedown``) because both the steps and the nightly audit's
blocklist check need it. Files are read through ``audit.loaders``; image bytes through
``audit.loaders.imageroots``; hashes are cached in the state store by the image's signature.
Where a record's image was found is kept as a :class:`Place` (a file, or a zip member by its real
name), which the removal manifest names and ``verify`` checks for the bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from audit.checks.takedown import Blocklist, Candidate, Match, find_matches
from audit.config import Config
from audit.errors import InputError, TakedownError
from audit.loaders import imageroots, jsonscan
from audit.loaders.jsonfile import parse_container
from audit.loaders.records import METADATA_ALIASES, raw_records
from audit.models import Progress
from audit.store import Store
from audit.store.imagehash import (
    ImageHashes,
    cache_hashes,
    cache_phashes,
    cached_hashes,
    cached_phashes,
)
from audit.takedown_phash import PHASH_VERSION, perceptual_hash

_T = TypeVar("_T")
_ALIASES = {f: METADATA_ALIASES[f] for f in ("id", "image", "url")}


@dataclass(frozen=True)
class DatasetFile:
    """One conversation or metadata file of a configured dataset."""

    dataset: str
    role: str  # "chat" or "metadata" (records); "url_tsv" or "coco" (lookups)
    path: Path


@dataclass
class LoadedFile:
    """A file's records as raw JSON (for cleaned copies) and as match candidates."""

    source: DatasetFile
    jsonl: bool
    elements: list[bytes]
    candidates: list[Candidate]
    image_locations: dict[int, Place] = field(default_factory=dict)  # index -> where its image is
    shard_of: Path | None = None  # the set as configured, when this is one shard of it


class Place(msgspec.Struct, frozen=True, kw_only=True):
    """Where image bytes are: a file in a folder root, or a member (its real name) of a zip."""

    kind: str  # "file" or "zip"
    root: str  # the folder or the zip
    name: str  # path inside the folder, or the member name as stored (top folder included)
    path: str  # the file's path on disk (symlinks resolved inside the root), or the zip's

    def __str__(self) -> str:
        return self.path if self.kind == "file" else f"{self.root}!{self.name}"


def dataset_files(config: Config, names: Iterable[str] | None = None) -> list[DatasetFile]:
    """The files to search; an unknown dataset name is a bad request, not an empty search."""
    wanted = None if names is None else set(names)
    known = {d.name for d in config.datasets}
    if wanted is not None and (unknown := sorted(wanted - known)):
        listed = ", ".join(sorted(known)) or "none"
        raise TakedownError(f"unknown dataset {', '.join(unknown)!r} (configured: {listed})")
    return [
        DatasetFile(ds.name, role, config.path(value))
        for ds in config.datasets
        if wanted is None or ds.name in wanted
        for role, value in (("chat", ds.chat), ("metadata", ds.metadata))
        if value
    ]


#: Only the identifying keys of a record, under every alias metadata files use; the rest (the
#: conversations) is skipped by the decoder instead of being built into Python objects.
_Keys = msgspec.defstruct(
    "_Keys", [(a, Any, None) for f in _ALIASES.values() for a in dict.fromkeys(f)], gc=False
)
_KEYS_DECODER: msgspec.json.Decoder[Any] = msgspec.json.Decoder(list[_Keys])  # type: ignore[valid-type]
_ONE_KEYS = msgspec.json.Decoder(_Keys)


def load_file(source: DatasetFile, *, raw: bool = False) -> LoadedFile:
    """Read one file through the loaders: each record's identifying keys, in file order.

    ``raw`` also keeps every record's exact bytes, which only writing cleaned copies needs.
    """
    if raw:
        container, elements = raw_records(source.path)
        keys = [_keys_of(e) for e in elements]
        jsonl = container == "jsonl"
    else:
        parsed = parse_container(source.path, source.dataset, _KEYS_DECODER)
        keys = (
            parsed.typed
            if parsed.typed is not None
            else [_keys_of(bytes(e)) for e in parsed.elements or []]
        )
        elements, jsonl = [], parsed.element_lines is not None
    return LoadedFile(
        source=source,
        jsonl=jsonl,
        elements=elements,
        candidates=[_candidate(source, i, k) for i, k in enumerate(keys)],
    )


def _keys_of(raw: bytes) -> Any:
    """One record's keys; None for an element that is not an object (no keys to match)."""
    try:
        return _ONE_KEYS.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    except RecursionError:  # nested too deep to decode: its top-level keys still identify it
        try:
            return _ONE_KEYS.decode(jsonscan.shallow(raw))
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None


def _candidate(source: DatasetFile, index: int, keys: Any) -> Candidate:
    """A record's id, image and URL under whichever alias the file uses."""
    if keys is None:
        return Candidate(dataset=source.dataset, file=str(source.path), index=index)
    rid, image, url = (_first(keys, aliases) for aliases in _ALIASES.values())
    return Candidate(
        dataset=source.dataset,
        file=str(source.path),
        index=index,
        record_id=str(rid) if isinstance(rid, str | int) and not isinstance(rid, bool) else None,
        image=image if isinstance(image, str) else None,
        url=url if isinstance(url, str) else None,
    )


def _first(keys: Any, aliases: tuple[str, ...]) -> Any:
    for alias in aliases:
        value = getattr(keys, alias)
        if value is not None:
            return value
    return None


class ImageCounts(msgspec.Struct, frozen=True):
    """What hashing the records' images came to (shown by ``match``, kept in the ledger)."""

    hashed: int = 0
    unavailable: int = 0


def hash_images(
    config: Config,
    store: Store | None,
    files: list[LoadedFile],
    progress: Progress,
    *,
    phash: bool = False,
) -> ImageCounts:
    """Fill in content hashes of the records' images found under their dataset's image roots.

    Each distinct image is read once; hashes are cached by the image's signature in ``store``, so
    a nightly audit re-reads only images that changed (no store: a Spark executor, no cache). ``phash`` also decodes each image for its
    perceptual hash (cached too). Returns counts of hashed and unavailable images.
    """
    roots_of = {ds.name: ds.images for ds in config.datasets}
    hashed = unavailable = 0
    todo = [f for f in files if roots_of.get(f.source.dataset)]
    progress.start("hashing images", sum(len(f.candidates) for f in todo))
    hasher = _Hasher(store, phash)
    for loaded in todo:
        try:
            roots = imageroots.open_roots([config.path(p) for p in roots_of[loaded.source.dataset]])
        except InputError:  # a missing root is the image stage's finding; nothing here to hash
            unavailable += sum(c.image is not None for c in loaded.candidates)
            progress.advance(len(loaded.candidates))
            continue
        for i, c in enumerate(loaded.candidates):
            progress.advance()
            loc = _locate(roots, c.image)
            if loc is None:
                unavailable += c.image is not None
                continue
            loaded.image_locations[c.index] = place_of(loc)
            hashes, picture = hasher.hashes(loc)
            if hashes is None:
                unavailable += 1
                continue
            hashed += 1
            loaded.candidates[i] = msgspec.structs.replace(
                c, sha256=hashes.sha256, md5=hashes.md5, phash=picture or None
            )
    progress.finish()
    hasher.save()
    return ImageCounts(hashed=hashed, unavailable=unavailable)


class _Hasher:
    """Hashes per distinct image (root, name), from the cache while the signature holds."""

    def __init__(self, store: Store | None, phash: bool) -> None:
        self.store, self.phash = store, phash
        self.seen: dict[tuple[str, str], tuple[ImageHashes | None, str]] = {}
        self.caches: dict[str, dict[str, tuple[str, ImageHashes]]] = {}
        self.pcaches: dict[str, dict[str, tuple[str, str]]] = {}
        self.fresh: list[tuple[str, str, str, ImageHashes]] = []
        self.pfresh: list[tuple[str, str, str, str]] = []

    def hashes(self, loc: imageroots.Location) -> tuple[ImageHashes | None, str]:
        """(sha256 and md5, perceptual hash or "" when not wanted or not decodable)."""
        key = (loc.root, loc.name)
        if key in self.seen:
            return self.seen[key]
        hit = self.caches.setdefault(loc.root, self._cached(cached_hashes, loc.root)).get(loc.name)
        exact = hit[1] if hit and hit[0] == loc.signature else None
        picture: str | None = ""
        if self.phash:
            pcache = self.pcaches.setdefault(loc.root, self._cached(cached_phashes, loc.root))
            phit = pcache.get(loc.name)
            picture = phit[1] if phit and phit[0] == f"{loc.signature}/{PHASH_VERSION}" else None
        data = _read(loc) if exact is None or picture is None else None
        if exact is None and data is not None:
            exact = ImageHashes(hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest())
            self.fresh.append((loc.root, loc.name, loc.signature, exact))
        if picture is None:
            picture = (perceptual_hash(data) if data is not None else None) or ""
            if data is not None:
                self.pfresh.append(
                    (loc.root, loc.name, f"{loc.signature}/{PHASH_VERSION}", picture)
                )
        self.seen[key] = (exact, picture)
        return exact, picture

    def _cached(self, read: Callable[[Store, str], dict[str, _T]], root: str) -> dict[str, _T]:
        return read(self.store, root) if self.store is not None else {}

    def save(self) -> None:
        if self.store is None:
            return
        if self.fresh:
            cache_hashes(self.store, self.fresh)
        if self.pfresh:
            cache_phashes(self.store, self.pfresh)


def _locate(roots: Sequence[imageroots.Root], image: str | None) -> imageroots.Location | None:
    if not image:
        return None
    try:
        return imageroots.locate(roots, image)
    except imageroots.UnsafePathError:
        return None


def place_of(loc: imageroots.Location) -> Place:
    """Where a located image's bytes are; a zip member by its real name (top folder included)."""
    if loc.source[0] == "file":
        return Place(kind="file", root=loc.root, name=loc.name, path=str(loc.source[1]))
    return Place(kind="zip", root=loc.root, name=str(loc.source[2]), path=loc.root)


def _read(loc: imageroots.Location) -> bytes | None:
    if loc.problem:
        return None
    try:
        return imageroots.read_source(loc.source)
    except OSError:
        return None  # unreadable bytes are the image stage's finding; here they cannot match


def search(
    config: Config,
    store: Store,
    loaded: list[LoadedFile],
    blocklist: Blocklist,
    progress: Progress,
) -> list[Match]:
    """The records of ``loaded`` that carry a blocklisted key, reading image bytes only when a
    content hash is blocklisted (and decoding them only for a perceptual hash)."""
    return find_matches(blocklist, hashed_candidates(config, store, loaded, blocklist, progress))


def hashed_candidates(
    config: Config,
    store: Store | None,
    loaded: list[LoadedFile],
    blocklist: Blocklist,
    progress: Progress,
) -> list[Candidate]:
    """Every record of ``loaded``, with its image's content hashes when the blocklist has any."""
    kinds = blocklist.hash_kinds()
    if kinds:
        hash_images(config, store, loaded, progress, phash="phash" in kinds)
    return [c for f in loaded for c in f.candidates]
