"""Cache of local image probe results, so a nightly run decodes only the images that changed.

A result is keyed by root and name and is valid while the signature matches: size and mtime for a
file, size and CRC-32 for a zip member (a re-packed zip with the same bytes keeps its cache). The level
records how deep the probe looked, so a cached header check never stands in for a full decode.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from audit.errors import StoreError
from audit.store import Store, register_schema

register_schema(
    "images",
    """
    CREATE TABLE IF NOT EXISTS image_probe (
        root TEXT NOT NULL,
        name TEXT NOT NULL,
        signature TEXT NOT NULL,
        level INTEGER NOT NULL,
        status TEXT NOT NULL,
        format TEXT,
        width INTEGER,
        height INTEGER,
        detail TEXT NOT NULL DEFAULT '',
        probed_at REAL NOT NULL,
        PRIMARY KEY (root, name)
    ) WITHOUT ROWID;
    """,
)

_LOOKUP_CHUNK = 500  # names per IN (...) query: well under SQLite's variable limit
_WHOLE_ROOT_ABOVE = 20_000  # past this many names one scan of the root beats chunked lookups

#: A cached outcome: (name, signature, level, status, format, width, height, detail). A plain
#: tuple, as SQLite returns it, since a nightly run reads 600K of them.
Cached = tuple[str, str, int, str, str | None, int | None, int | None, str]


class ImageResult(NamedTuple):
    """One probed image: what the probe saw, and under which signature and level."""

    root: str
    name: str
    signature: str
    level: int
    status: str
    format: str | None
    width: int | None
    height: int | None
    detail: str


_COLUMNS = "name, signature, level, status, format, width, height, detail"


def lookup(store: Store, root: str, names: Sequence[str]) -> dict[str, Cached]:
    """Cached results for ``names`` under ``root`` (callers check signature and level)."""
    try:
        return _lookup(store, root, names)
    except sqlite3.Error as exc:
        raise StoreError(f"{store.path}: cannot read the image cache: {exc}") from None


def _lookup(store: Store, root: str, names: Sequence[str]) -> dict[str, Cached]:
    if len(names) > _WHOLE_ROOT_ABOVE:  # names not asked for are harmless extras
        rows = store.conn.execute(f"SELECT {_COLUMNS} FROM image_probe WHERE root = ?", (root,))
        return {row[0]: row for row in rows}
    found: dict[str, Cached] = {}
    for start in range(0, len(names), _LOOKUP_CHUNK):
        chunk = names[start : start + _LOOKUP_CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = store.conn.execute(
            f"SELECT {_COLUMNS} FROM image_probe WHERE root = ? AND name IN ({marks})",
            (root, *chunk),
        )
        found.update((row[0], row) for row in rows)
    return found


def save(store: Store, results: Iterable[ImageResult]) -> None:
    """Record results in one transaction: a killed run keeps every batch it finished."""
    now = time.time()
    try:
        with store.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO image_probe "
                "(root, name, signature, level, status, format, width, height, detail, probed_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(*r, now) for r in results],
            )
    except sqlite3.Error as exc:  # disk full, read-only file: one clear line, batches kept so far
        raise StoreError(f"{store.path}: cannot record image results: {exc}") from None
