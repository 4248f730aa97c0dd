"""Conversation and metadata files: kind detection and loading into typed records.

Kinds (DESIGN.md `check --kind`): instruct, cc3m-chat, cc3m-metadata, lcs-chat, lcs-metadata, mix,
generic. The kind is read from most of the records (image paths, ids, keys) with the release file
name as support (audit.loaders.kindguess), because users rename files and one record can be odd.

Records come back as msgspec Structs in file order. ``LoadedFile.index`` maps each record to its
position in the file when unusable elements were left out (each one has a finding instead).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterator
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
from audit.loaders.salvage import ElementDecoder
from audit.models import ChatRecord, ImageRef, MetadataRecord, UrlRef

__all__ = [
    "KINDS",
    "METADATA_KINDS",
    "LoadedFile",
    "NotStreamableError",
    "RecordStream",
    "UnreadableFileError",
    "detect_kind",
    "image_refs",
    "known_release",
    "load_records",
    "open_stream",
    "raw_records",
    "record_type_for",
    "url_refs",
]

METADATA_KINDS = frozenset({"cc3m-metadata", "lcs-metadata"})
# The file's own key names accepted for each standard metadata field, most likely first.
METADATA_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("id", "index", "image_id", "key"),
    "image": ("image", "file_name", "filename", "image_path", "image_file"),
    "url": ("url", "image_url", "source_url", "URL"),
    "caption": ("caption", "original_caption", "cc3m_caption", "raw_caption", "text"),
    "blip_caption": ("blip_caption", "blip", "synthetic_caption"),
}

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
_KEY = re.compile(rb'"([A-Za-z_][A-Za-z0-9_]*)"\s*:')


class StrictChatRecord(ChatRecord, forbid_unknown_fields=True):
    """Typed-decode target: unknown record keys fail the fast path so they get reported."""


@dataclass
class LoadedFile:
    """One file's records in file order, plus the file- and record-level findings of loading."""

    path: Path
    kind: str
    is_metadata: bool
    records: list[Any]  # ChatRecord or MetadataRecord (subclasses)
    index: list[int] | None  # file position of records[i]; None when every element loaded
    total: int  # elements in the file (records + unusable ones)
    findings: list[Finding] = field(default_factory=list)
    metadata_keys: dict[str, str] = field(default_factory=dict)  # standard name -> file's key

    def positions(self) -> list[int]:
        """The file position of every loaded record."""
        return list(range(len(self.records))) if self.index is None else self.index

    def items(self) -> Iterator[tuple[int, Any]]:
        return zip(self.positions(), self.records, strict=True)


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(_HEAD_BYTES)
    except OSError as exc:
        raise InputError(str(path), f"cannot read: {exc.strerror or exc}") from None


def detect_kind(path: Path) -> str:
    """The dataset kind of a file, from most of its records and its name (see kindguess)."""
    return guess_kind(path).kind


def _is_metadata(kind: str, head: bytes) -> bool:
    if kind in METADATA_KINDS:
        return True
    if kind != "generic":
        return False
    keys = {k.decode() for k in _KEY.findall(head)}
    return "conversations" not in keys and bool(
        keys & {"url", "caption", "blip_caption", "image_url"}
    )


def discover_metadata_keys(head: bytes) -> dict[str, str]:
    """Standard field -> the key this file uses for it, from the keys of its first records."""
    keys = Counter(k.decode() for k in _KEY.findall(head))
    found: dict[str, str] = {}
    for standard, aliases in METADATA_ALIASES.items():
        key = next((a for a in aliases if a in keys), None)
        if key is not None:
            found[standard] = key
    return found


def _metadata_type(keys: dict[str, str]) -> type[MetadataRecord]:
    if all(standard == key for standard, key in keys.items()):
        return MetadataRecord
    fields = [(name, MetadataRecord.__annotations__[name], None) for name in keys]
    return msgspec.defstruct(  # type: ignore[return-value]
        "FileMetadataRecord",
        fields,
        bases=(MetadataRecord,),
        rename={standard: key for standard, key in keys.items()},
        gc=False,
    )


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


def record_type_for(kind: str, head: bytes) -> tuple[bool, dict[str, str], type[Any]]:
    """Whether ``head`` (a file's first bytes, or a shard's column names as JSON keys) is
    metadata, its key names, and the Struct its records decode into."""
    is_metadata = _is_metadata(kind, head)
    keys = discover_metadata_keys(head) if is_metadata else {}
    return is_metadata, keys, _metadata_type(keys) if is_metadata else StrictChatRecord


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


def load_records(path: Path, kind: str | None = None, *, dataset: str | None = None) -> LoadedFile:
    """Load a conversation or metadata file; raises UnreadableFileError when nothing is auditable.

    ``kind`` None detects it. Findings about the container (BOM, JSON Lines, bad UTF-8, ...) and
    about records that cannot be read as records are in ``LoadedFile.findings``.
    """
    if kind is not None and kind not in KINDS:
        raise InputError(str(path), f"unknown kind {kind!r} (known: {', '.join(KINDS)})")
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


def image_refs(path: Path, kind: str | None = None) -> list[ImageRef]:
    """Every record's `image` reference (string, non-empty), for the image probe."""
    loaded = load_records(path, kind)
    return [
        ImageRef(index=i, record_id=None if r.id is None else str(r.id), image=r.image)
        for i, r in loaded.items()
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
