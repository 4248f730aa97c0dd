"""An input file's records as their exact bytes, and a subset written in the file's own layout (I/O).

A LLaVA JSON array keeps its indentation: the bytes before the first record, between two
records and after the last are taken from the file itself, and each kept record is copied byte
for byte, so ``json.dump(indent=2)`` files stay ``indent=2`` and key order, escapes and number
spelling never change. JSON Lines stay one record per line.

Reading is two C-speed passes over the bytes (element boundaries, then each element's ``id`` and
``image``) while a thread hashes them (hashlib releases the GIL); the keys the re-fetch list
needs (``url``, captions) are decoded only for the few records it lists.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from itertools import repeat
from operator import attrgetter, is_not
from pathlib import Path
from typing import Any

import msgspec

from audit.loaders import read_input
from audit.loaders.records import raw_records

_Keys = msgspec.defstruct("_Keys", [("id", Any, None), ("image", Any, None)], gc=False)
#: the keys read per record on demand (the re-fetch list's URL and caption)
_Extra = msgspec.defstruct(
    "_Extra", [("url", Any, None), ("caption", Any, None), ("blip_caption", Any, None)]
)
_KEYS: msgspec.json.Decoder[list[Any]] = msgspec.json.Decoder(list[_Keys])  # type: ignore[valid-type]
_ONE = msgspec.json.Decoder(_Keys)
_EXTRA = msgspec.json.Decoder(_Extra)
_RAW = msgspec.json.Decoder(list[msgspec.Raw])
_WS = b" \t\r\n"
_ID_TYPES = {str, type(None)}
_ID, _IMAGE = attrgetter("id"), attrgetter("image")


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
        if None not in self.keys:
            ids: list[Any] = list(map(_ID, self.keys))
            if set(map(type, ids)) <= _ID_TYPES:
                return ids
        return [_text(k.id if k is not None else None) for k in self.keys]

    @cached_property
    def has_image(self) -> list[bool]:
        if None not in self.keys:
            return list(map(is_not, map(_IMAGE, self.keys), repeat(None)))
        return [k is not None and k.image is not None for k in self.keys]

    def url(self, index: int) -> str | None:
        """The element's ``url`` key (the standard metadata key; other spellings: None)."""
        k = self._extra(index)
        return k.url if k is not None and isinstance(k.url, str) and k.url else None

    def has_url_key(self, index: int) -> bool:
        """Whether the element has a non-null ``url`` key."""
        k = self._extra(index)
        return k is not None and k.url is not None

    def caption(self, index: int) -> str | None:
        k = self._extra(index)
        text = (k.caption or k.blip_caption) if k is not None else None
        return text if isinstance(text, str) else None

    def image(self, index: int) -> str | None:
        k = self.keys[index]
        return k.image if k is not None and isinstance(k.image, str) else None

    def subset(self, kept: list[int]) -> bytes:
        """The kept elements in the file's layout (an empty array stays an array)."""
        return b"".join(self.subset_parts(kept))

    def subset_parts(self, kept: list[int]) -> list[Any]:
        """:meth:`subset` as bytes-like parts (views of the input's bytes) to write in order."""
        if not kept:
            return [b"" if self.jsonl else b"[]" + (b"\n" if self.suffix.endswith(b"\n") else b"")]
        parts = [self.sep] * (2 * len(kept) + 1)
        parts[1::2] = map(self.elements.__getitem__, kept)
        parts[0], parts[-1] = self.prefix, self.suffix
        return parts

    def _extra(self, index: int) -> Any:
        try:
            return _EXTRA.decode(self.elements[index])
        except (msgspec.DecodeError, RecursionError):
            return None


def read_raw(path: Path, what: str = "dataset file") -> RawFile:
    """Read one conversation or metadata file (the loaders' container handling as fallback)."""
    data = read_input(path, what)
    with ThreadPoolExecutor(1) as pool:
        digest = pool.submit(lambda: hashlib.sha256(data).hexdigest())
        elements, keys, jsonl = _decode(path, data)
        prefix, sep, suffix = _layout(data, elements, jsonl)
        return RawFile(path, digest.result(), elements, keys, prefix, sep, suffix, jsonl)


def _decode(path: Path, data: bytes) -> tuple[list[Any], list[Any], bool]:
    """Each element's bytes and keys, and whether the file is JSON Lines."""
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
    return elements, keys, jsonl


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
