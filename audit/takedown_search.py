"""Where takedown looks: every configured dataset file, record by record, with image hashes.

Separate from the workflow steps (``audit.takedown``) because both the steps and the nightly audit's
blocklist check need it. Files are read through ``audit.loaders``; image bytes through
``audit.loaders.imageroots``; hashes are cached in the state store by the image's signature.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from audit.checks.takedown import BlockKey, Blocklist, Candidate, Match, expand, find_matches
from audit.config import Config
from audit.errors import InputError, TakedownError
from audit.loaders import imageroots, jsonscan
from audit.loaders.jsonfile import parse_container
from audit.loaders.records import METADATA_ALIASES, raw_records
from audit.models import Progress
from audit.store import Store
from audit.store.imagehash import ImageHashes, cache_hashes, cached_hashes
from audit.store.ledger import Ledger, Request

_ALIASES = {f: METADATA_ALIASES[f] for f in ("id", "image", "url")}


@dataclass(frozen=True)
class DatasetFile:
    """One conversation or metadata file of a configured dataset."""

    dataset: str
    role: str  # "chat" or "metadata"
    path: Path


@dataclass
class LoadedFile:
    """A file's records as raw JSON (for cleaned copies) and as match candidates."""

    source: DatasetFile
    jsonl: bool
    elements: list[bytes]
    candidates: list[Candidate]
    image_locations: dict[int, str] = field(default_factory=dict)  # index -> file or zip!member


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


def hash_images(
    config: Config, store: Store, files: list[LoadedFile], progress: Progress
) -> dict[str, int]:
    """Fill in content hashes of the records' images found under their dataset's image roots.

    Each distinct image is read once; hashes are cached by the image's signature, so a nightly
    audit re-reads only images that changed. Returns counts of hashed and unavailable images.
    """
    roots_of = {ds.name: ds.images for ds in config.datasets}
    counts = {"hashed": 0, "unavailable": 0}
    todo = [f for f in files if roots_of.get(f.source.dataset)]
    progress.start("hashing images", sum(len(f.candidates) for f in todo))
    seen: dict[tuple[str, str], ImageHashes | None] = {}
    caches: dict[str, dict[str, tuple[str, ImageHashes]]] = {}
    fresh: list[tuple[str, str, str, ImageHashes]] = []
    for loaded in todo:
        try:
            roots = imageroots.open_roots([config.path(p) for p in roots_of[loaded.source.dataset]])
        except InputError:  # a missing root is the image stage's finding; nothing here to hash
            counts["unavailable"] += sum(c.image is not None for c in loaded.candidates)
            progress.advance(len(loaded.candidates))
            continue
        for i, c in enumerate(loaded.candidates):
            progress.advance()
            loc = _locate(roots, c.image)
            if loc is None:
                counts["unavailable"] += c.image is not None
                continue
            loaded.image_locations[c.index] = _where(loc)
            key = (loc.root, loc.name)
            if key not in seen:
                cache = caches.setdefault(loc.root, cached_hashes(store, loc.root))
                hit = cache.get(loc.name)
                seen[key] = hit[1] if hit and hit[0] == loc.signature else _hash(loc)
                if seen[key] is not None and not (hit and hit[0] == loc.signature):
                    fresh.append((loc.root, loc.name, loc.signature, seen[key]))  # type: ignore[arg-type]
            hashes = seen[key]
            if hashes is None:
                counts["unavailable"] += 1
                continue
            counts["hashed"] += 1
            loaded.candidates[i] = msgspec.structs.replace(c, sha256=hashes.sha256, md5=hashes.md5)
    progress.finish()
    if fresh:
        cache_hashes(store, fresh)
    return counts


def _locate(roots: Sequence[imageroots.Root], image: str | None) -> imageroots.Location | None:
    if not image:
        return None
    try:
        return imageroots.locate(roots, image)
    except imageroots.UnsafePathError:
        return None


def _where(loc: imageroots.Location) -> str:
    """A file's path, or `archive.zip!member` for an image inside a zip."""
    return str(loc.source[1]) if loc.source[0] == "file" else f"{loc.root}!{loc.name}"


def _hash(loc: imageroots.Location) -> ImageHashes | None:
    try:
        data = imageroots.read_source(loc.source)
    except OSError:
        return None  # unreadable bytes are the image stage's finding; here they cannot match
    return ImageHashes(hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest())


class Located(msgspec.Struct, kw_only=True):
    """What a search found: the matches, the keys followed, and what could not be searched."""

    request_id: str
    matches: list[Match]
    keys: list[BlockKey]
    files: list[dict[str, Any]]
    images: dict[str, int]
    image_files: list[str]  # where the matched records' images are: a file or zip!member


def locate_request(
    config: Config,
    store: Store,
    ledger: Ledger,
    request: Request,
    progress: Progress,
    applying: bool,
) -> tuple[Located, list[LoadedFile]]:
    """Every record ``request`` touches in every configured file, following matches to the
    records' other keys; ``applying`` also reads raw records and earlier takedowns' keys."""
    sources = dataset_files(config)
    if not sources:
        raise TakedownError("no dataset files configured: add [[datasets]] with chat or metadata")
    loaded = [load_file(f, raw=applying) for f in sources]
    images = hash_images(config, store, loaded, progress)
    candidates = [c for f in loaded for c in f.candidates]
    grown = expand(Blocklist((k, request.request_id) for k in request.keys), candidates)
    if applying:  # apply also removes what earlier takedowns put on the blocklist
        for key, rid in ledger.blocklist():
            grown.add(key, rid)
    matches = find_matches(grown, candidates)
    where = {(f.source.dataset, str(f.source.path)): f.image_locations for f in loaded}
    image_files = {
        loc
        for m in matches
        if m.request_id == request.request_id
        and (loc := where[(m.dataset, m.file)].get(m.index)) is not None
    }
    located = Located(
        request_id=request.request_id,
        matches=matches,
        image_files=sorted(image_files),
        keys=[k for k, rid in grown.entries() if rid == request.request_id],
        files=[
            {
                "dataset": f.source.dataset,
                "role": f.source.role,
                "file": str(f.source.path),
                "records": len(f.candidates),
            }
            for f in loaded
        ],
        images=images,
    )
    return located, loaded
