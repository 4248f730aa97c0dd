"""Conversation and metadata files: kind detection and loading into typed records.

Kinds (DESIGN.md `check --kind`): instruct, cc3m-chat, cc3m-metadata, lcs-chat, lcs-metadata, mix,
generic. The kind is read from most of the records (image paths, ids, keys) with the release file
name as support (audit.loaders.kindguess), because users rename files and one record can be odd.

Records come back as msgspec Structs in file order. ``LoadedFile.index`` maps each record to its
position in the file when unusable elements were left out (each one has a finding instead).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from audit.config import KINDS
from audit.errors import InputError
from audit.findings import Finding
from audit.loaders.jsonfile import (
    CHUNK_BYTES,
    Container,
    NotStreamableError,
    UnreadableFileError,
    UntypedPiece,
    iter_array_chunks,
    parse_container,
)
from audit.loaders.kindguess import guess_kind
from audit.loaders.recordkinds import (
    METADATA_ALIASES,
    METADATA_KINDS,
    LoadedFile,
    StrictChatRecord,
    discover_metadata_keys,
    record_type_for,
)
from audit.loaders.salvage import ElementDecoder
from audit.models import ImageRef, UrlRef

__all__ = [
    "KINDS",
    "METADATA_ALIASES",
    "METADATA_KINDS",
    "LoadedFile",
    "NotStreamableError",
    "RecordStream",
    "StrictChatRecord",
    "UnreadableFileError",
    "detect_kind",
    "discover_metadata_keys",
    "image_refs",
    "known_release",
    "load_records",
    "open_stream",
    "raw_records",
    "record_type_for",
    "refs_of",
    "url_refs",
]

# Rule 3: (size, sha256) of the published release files.
KNOWN_RELEASES = {
    1_029_887_963: (
        "llava_v1_5_mix665k.json",
        "ce959ce6e23073ee1cd1a8a2ef1c633768c10d4174327b8b2dc7113b91af6cf8",
    ),
    228_941_895: (
        "llava_instruct_150k.json",
        "6b68bc5ca2bfd8a71119af0e8454929668ccda6a334955ccc95d114fc8d082fa",
    ),
}
_HEAD_BYTES = 1 << 16


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(_HEAD_BYTES)
    except OSError as exc:
        raise InputError(str(path), f"cannot read: {exc.strerror or exc}") from None


def detect_kind(path: Path) -> str:
    """The dataset kind of a file, from most of its records and its name (see kindguess)."""
    return guess_kind(path).kind


@dataclass
class RecordStream:
    """A file's typed records in chunks, for audits that turn them into columns as they arrive.

    A chunk in which some record fails the typed decode is decoded record by record, with the same
    findings and salvage as :func:`load_records`; every other chunk stays on the typed fast path.
    Once iteration ends, ``findings`` and :meth:`positions` describe the whole file. Iterating
    raises :class:`NotStreamableError` when the file needs :func:`load_records` instead (not an
    array, a syntax or encoding problem); nothing is reported then.
    """

    path: Path
    kind: str
    is_metadata: bool
    metadata_keys: dict[str, str]
    record_type: type[Any]
    dataset: str
    chunk_bytes: int = CHUNK_BYTES
    findings: list[Finding] = field(default_factory=list, init=False)
    stats: dict[str, int] = field(default_factory=dict, init=False)  # elements, chunks, untyped
    _kept: list[int] | None = field(default=None, init=False, repr=False)

    def __iter__(self) -> Iterator[list[Any]]:
        self.findings, self._kept = [], None
        self.stats = {"elements": 0, "chunks": 0, "untyped_chunks": 0}
        decoder = msgspec.json.Decoder(list[self.record_type])  # type: ignore[name-defined]
        keys = self.metadata_keys if self.is_metadata else None
        one_by_one = ElementDecoder(
            self.record_type, keys, self.findings, str(self.path), self.dataset
        )
        chunks = iter_array_chunks(self.path, decoder, self.chunk_bytes, split_mismatches=True)
        for piece in chunks:
            first = self.stats["elements"]
            kept: list[int] | None = None
            if isinstance(piece, UntypedPiece):
                count = len(piece.elements)
                records, kept = one_by_one.decode(piece.elements, first)
                piece.elements = []  # the raw piece goes before its records are used
                self.stats["untyped_chunks"] += 1
            else:
                records, count = piece, len(piece)
            self._track(first, count, kept)
            self.stats["elements"] += count
            self.stats["chunks"] += 1
            yield records
            del piece, records

    def _track(self, first: int, count: int, kept: list[int] | None) -> None:
        """Positions are listed only once some element was not a record (until then, record i
        is element i), so a clean file never holds a list of them."""
        if self._kept is None and kept is not None and len(kept) < count:
            self._kept = list(range(first))
        if self._kept is not None:
            self._kept.extend(range(first, first + count) if kept is None else kept)

    def positions(self) -> list[int] | None:
        """The file position of each streamed record; None when every element was a record."""
        return self._kept


def open_stream(
    path: Path,
    kind: str | None = None,
    *,
    dataset: str | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> RecordStream:
    """The streamed fast path of :func:`load_records` (same kinds, record types and findings)."""
    path = Path(path)
    kind = kind or detect_kind(path)
    is_metadata, keys, record_type = record_type_for(kind, _head(path))
    return RecordStream(
        path, kind, is_metadata, keys, record_type, dataset or path.stem, chunk_bytes
    )


def _check_kind(path: Path, kind: str | None) -> None:
    if kind is not None and kind not in KINDS:
        raise InputError(str(path), f"unknown kind {kind!r} (known: {', '.join(KINDS)})")


def load_records(path: Path, kind: str | None = None, *, dataset: str | None = None) -> LoadedFile:
    """Load a conversation or metadata file; raises UnreadableFileError when nothing is auditable.

    ``kind`` None detects it. Findings about the container (BOM, JSON Lines, bad UTF-8, ...) and
    about records that cannot be read as records are in ``LoadedFile.findings``.
    """
    _check_kind(path, kind)
    from audit.loaders.shards import is_shard_set, set_name

    if is_shard_set(path):  # every shard's records; positions run over the whole set
        from audit.loaders.shardread import load_set

        return load_set(str(path), kind, dataset or set_name(path))
    path = Path(path)
    kind = kind or detect_kind(path)
    dataset = dataset or path.stem
    is_metadata, keys, record_type = record_type_for(kind, _head(path))
    decoder = msgspec.json.Decoder(list[record_type])  # type: ignore[valid-type]
    container = parse_container(path, dataset, decoder)
    loaded = LoadedFile(path, kind, is_metadata, [], None, 0, container.findings, keys)
    if container.typed is not None:
        loaded.records = container.typed
        loaded.total = len(container.typed)
    else:
        _decode_one_by_one(loaded, container, record_type, dataset)
    return loaded


def _decode_one_by_one(
    loaded: LoadedFile, container: Container, record_type: type[Any], dataset: str
) -> None:
    """The fallback: each element decoded alone so one bad record is one finding."""
    elements = container.elements or []
    keys = loaded.metadata_keys if loaded.is_metadata else None
    decoder = ElementDecoder(record_type, keys, loaded.findings, str(loaded.path), dataset)
    loaded.records, kept = decoder.decode(elements, 0, container.element_lines)
    loaded.total = len(elements)
    loaded.index = None if len(kept) == loaded.total else kept


def image_refs(path: Path, kind: str | None = None, *, by_shard: bool = True) -> list[ImageRef]:
    """Every record's `image` reference (string, non-empty), for the image probe; a shard set is
    read a shard at a time, keeping only the references (``by_shard`` off: positions over the
    whole set, as :func:`refs_of` gives them)."""
    from audit.loaders.shards import expand, is_shard_set, set_name

    if not is_shard_set(path):
        return refs_of(load_records(path, kind), by_shard=by_shard)
    _check_kind(path, kind)
    from audit.loaders.shardread import load_shard, shard_kind

    shards, dataset = expand(path), set_name(path)
    kind = kind or shard_kind(shards[0], dataset).kind
    refs: list[ImageRef] = []
    offset = 0  # the shard's first element in the set
    for shard in shards:
        loaded = load_shard(shard, kind, dataset)
        if by_shard:
            refs += refs_of(loaded)
        else:
            refs += [
                msgspec.structs.replace(ref, index=offset + ref.index)
                for ref in refs_of(loaded, by_shard=False)
            ]
        offset += loaded.total
    return refs


def refs_of(loaded: LoadedFile, *, by_shard: bool = True) -> list[ImageRef]:
    """The image references of a loaded file; in a shard set each names its shard and its
    position there (``by_shard`` off: no file, positions over the whole set)."""
    placed: Iterable[tuple[str | None, int, Any]]
    if by_shard and loaded.shards:
        placed = loaded.placed()
    else:
        placed = ((None, i, r) for i, r in loaded.items())
    return [
        ImageRef(index=i, record_id=None if r.id is None else str(r.id), image=r.image, file=file)
        for file, i, r in placed
        if isinstance(r.image, str) and r.image
    ]


def url_refs(path: Path, kind: str | None = None) -> list[UrlRef]:
    """Every metadata record's source URL (empty list for conversation files, which have none)."""
    loaded = load_records(path, kind)
    if not loaded.is_metadata:
        return []
    return [
        UrlRef(index=i, record_id=None if r.id is None else str(r.id), url=r.url, image=r.image)
        for i, r in loaded.items()
        if isinstance(r.url, str) and r.url
    ]


def raw_records(path: Path) -> tuple[str, list[bytes]]:
    """Each element's exact JSON bytes in file order, and the container ("array" or "jsonl").

    For writing cleaned copies that keep every kept record byte for byte (takedown).
    """
    path = Path(path)
    container = parse_container(path, path.stem, msgspec.json.Decoder(list[msgspec.Raw]))
    if container.typed is not None:
        return "array", [bytes(raw) for raw in container.typed]
    fmt = "jsonl" if container.element_lines is not None else "array"
    return fmt, [bytes(element) for element in container.elements or []]


def known_release(path: Path) -> str | None:
    """The release file name when size and SHA-256 match one (hashed only on a size match)."""
    release = KNOWN_RELEASES.get(path.stat().st_size)
    if release is None:
        return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return release[0] if digest.hexdigest() == release[1] else None
