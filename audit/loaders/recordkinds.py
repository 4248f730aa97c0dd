"""The typed records of conversation and metadata files: which kind of record a file holds, its
metadata key names, and the loaded file. Shared by the JSON reader (records) and the shard
reader (shardread), which import this module and not each other.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from audit.findings import Finding
from audit.models import ChatRecord, MetadataRecord

METADATA_KINDS = frozenset({"cc3m-metadata", "lcs-metadata"})
# The file's own key names accepted for each standard metadata field, most likely first.
METADATA_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("id", "index", "image_id", "key"),
    "image": ("image", "file_name", "filename", "image_path", "image_file"),
    "url": ("url", "image_url", "source_url", "URL"),
    "caption": ("caption", "original_caption", "cc3m_caption", "raw_caption", "text"),
    "blip_caption": ("blip_caption", "blip", "synthetic_caption"),
}
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
    #: a shard set's shards, each with the set position of its first element (in order)
    shards: list[tuple[Path, int]] = field(default_factory=list)

    def positions(self) -> list[int]:
        """The file position of every loaded record."""
        return list(range(len(self.records))) if self.index is None else self.index

    def items(self) -> Iterator[tuple[int, Any]]:
        return zip(self.positions(), self.records, strict=True)

    def placed(self) -> Iterator[tuple[str, int, Any]]:
        """Every loaded record with the file and index a finding on it names: for a shard set
        the shard and the position within it (as the structure stage's findings name them),
        else this file and the position in it."""
        if not self.shards:
            for position, record in self.items():
                yield str(self.path), position, record
            return
        ends = [first for _, first in self.shards[1:]]
        names = [str(shard) for shard, _ in self.shards]  # one string per shard, not per record
        part = 0
        for position, record in self.items():  # positions ascend: walk the shards once
            while part < len(ends) and position >= ends[part]:
                part += 1
            yield names[part], position - self.shards[part][1], record


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


def record_type_for(kind: str, head: bytes) -> tuple[bool, dict[str, str], type[Any]]:
    """Whether ``head`` (a file's first bytes, or a shard's column names as JSON keys) is
    metadata, its key names, and the Struct its records decode into."""
    is_metadata = _is_metadata(kind, head)
    keys = discover_metadata_keys(head) if is_metadata else {}
    return is_metadata, keys, _metadata_type(keys) if is_metadata else StrictChatRecord
