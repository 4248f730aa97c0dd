"""An input file's records as their exact bytes, and a subset written in the file's own layout (I/O).

A LLaVA JSON array keeps its indentation: the bytes before the first record, between two
records and after the last are taken from the file itself, and each kept record is copied byte
for byte, so ``json.dump(indent=2)`` files stay ``indent=2`` and key order, escapes and number
spelling never change. JSON Lines stay one record per line.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import msgspec

from audit.loaders import read_input
from audit.loaders.records import raw_records

_Keys = msgspec.defstruct(
    "_Keys",
    [
        ("id", Any, None),
        ("image", Any, None),
        ("url", Any, None),
        ("caption", Any, None),
        ("blip_caption", Any, None),
    ],
    gc=False,
)
_KEYS: msgspec.json.Decoder[list[Any]] = msgspec.json.Decoder(list[_Keys])  # type: ignore[valid-type]
_ONE = msgspec.json.Decoder(_Keys)
_RAW = msgspec.json.Decoder(list[msgspec.Raw])
_WS = b" \t\r\n"


@dataclass
class RawFile:
    """One input file: its hash, each element's bytes and keys, and the text around them."""

    path: Path
    sha256: str
    elements: list[Any]  # bytes-like (msgspec.Raw or bytes), one per element in file order
    keys: list[Any]  # _Keys or None (an element that is not an object)
    prefix: bytes
    sep: bytes
    suffix: bytes
    jsonl: bool

    @cached_property
    def ids(self) -> list[str | None]:
        """Each element's id as the findings spell it (an integer id as its digits)."""
        return [
            k.id if k is not None and type(k.id) is str else _text(k.id if k is not None else None)
            for k in self.keys
        ]

    @cached_property
    def has_image(self) -> list[bool]:
        return [k is not None and k.image is not None for k in self.keys]

    def url(self, index: int) -> str | None:
        """The element's ``url`` key (the standard metadata key; other spellings: None)."""
        k = self.keys[index]
        return k.url if k is not None and isinstance(k.url, str) and k.url else None

    def caption(self, index: int) -> str | None:
        k = self.keys[index]
        text = (k.caption or k.blip_caption) if k is not None else None
        return text if isinstance(text, str) else None

    def image(self, index: int) -> str | None:
        k = self.keys[index]
        return k.image if k is not None and isinstance(k.image, str) else None

    def subset(self, kept: list[int]) -> bytes:
        """The kept elements in the file's layout (an empty array stays an array)."""
        if not kept:
            return b"" if self.jsonl else b"[]" + (b"\n" if self.suffix.endswith(b"\n") else b"")
        body = self.sep.join(self.elements[i] for i in kept)
        return self.prefix + body + self.suffix


def read_raw(path: Path, what: str = "dataset file") -> RawFile:
    """Read one conversation or metadata file (the loaders' container handling as fallback)."""
    data = read_input(path, what)
    digest = hashlib.sha256(data).hexdigest()
    jsonl = False
    try:
        elements: list[Any] = _RAW.decode(data)
    except msgspec.DecodeError:  # BOM, JSON Lines, a damaged record: the loaders salvage it
        container, raw = raw_records(path)
        elements, jsonl = list(raw), container == "jsonl"
    try:
        keys: list[Any] = _KEYS.decode(data) if not jsonl else [_one(e) for e in elements]
    except msgspec.DecodeError:
        keys = [_one(e) for e in elements]
    if len(keys) != len(elements):
        keys = [_one(e) for e in elements]
    prefix, sep, suffix = _layout(data, elements, jsonl)
    return RawFile(path, digest, elements, keys, prefix, sep, suffix, jsonl)


def _one(element: Any) -> Any:
    try:
        return _ONE.decode(element)
    except (msgspec.DecodeError, RecursionError):
        return None


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value)


def _layout(data: bytes, elements: list[Any], jsonl: bool) -> tuple[bytes, bytes, bytes]:
    """The bytes before the first element, between two, and after the last, as in ``data``."""
    if jsonl:
        return b"", b"\n", b"\n"
    canonical = (b"[\n", b",\n", b"\n]\n")
    if not elements:
        return canonical
    first, last = bytes(elements[0]), bytes(elements[-1])
    start = data.find(first)
    end_last = data.rfind(last) + len(last)
    prefix, suffix = data[:start], data[end_last:]
    if start < 0 or prefix.strip(_WS + b"\xef\xbb\xbf") != b"[" or suffix.strip(_WS) != b"]":
        return canonical
    if len(elements) == 1:  # no separator to copy: the one json.dump would write
        return prefix, b"," + prefix[prefix.find(b"[") + 1 :], suffix
    after = start + len(first)
    second = data.find(bytes(elements[1]), after)
    sep = data[after:second]
    return (prefix, sep, suffix) if sep.strip(_WS) == b"," else canonical
