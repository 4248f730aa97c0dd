"""Results of the deterministic stages, reused while nothing they depend on changed.

A nightly run on unchanged data must cost a small fraction of the first (DESIGN.md performance).
The probes keep per-image and per-URL caches; the stages that are pure functions of their input
files, settings and code (structure, licence, takedown with an unchanged ledger, expectations over
an unchanged table) are cached here whole: one row per (stage, dataset) holding the key of the
inputs it was computed from and the compressed result. The key covers each input file's path,
size and mtime_ns, the settings the stage reads, and this package's version and files, so any
change to data, config, policy or code misses and the stage runs again.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sqlite3
import time
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from audit import __version__
from audit.results import AnyStageResult
from audit.store import Store, register_schema

register_schema(
    "stagecache",
    """
    CREATE TABLE IF NOT EXISTS stage_cache (
        stage TEXT NOT NULL,
        dataset TEXT NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        saved_at REAL NOT NULL,
        PRIMARY KEY (stage, dataset)
    ) WITHOUT ROWID;
    """,
)

#: Bumped when the stored value's layout changes, so old rows simply miss (2: typed results).
_FORMAT = "2"


class CachedStage(msgspec.Struct, kw_only=True):
    """A stage's typed result plus what the stage found out on the way (the detected kind)."""

    result: AnyStageResult
    kind: str | None = None  # the chat file's detected kind (report header, expectations)
    extra: str | None = None  # stage-specific check of outside state (e.g. a Data Docs cache key)


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(CachedStage)


def file_state(path: str | Path) -> tuple[Any, ...]:
    """What identifies a file's content cheaply: path, size, mtime (ns), inode and ctime (ns).

    Inode and ctime catch what size and mtime alone miss: a same-size file replaced within the
    clock's resolution, or rewritten and given its old mtime back (``touch -d``, ``rsync -t``).
    """
    try:
        st = Path(path).stat()
    except OSError:
        return (str(path), None)
    return (str(path), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def folder_state(folder: str | Path) -> list[tuple[Any, ...]]:
    """:func:`file_state` of every file directly in ``folder`` (e.g. expectation suites)."""
    try:
        names = sorted(e.path for e in os.scandir(folder) if e.is_file())
    except OSError:
        return []
    return [file_state(name) for name in names]


@functools.cache
def code_state() -> str:
    """A digest of this package's version and of every file in it (code, packaged policy).

    The version alone is not enough: a development checkout changes code under one version.
    """
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.blake2b(digest_size=16)
    digest.update(__version__.encode())
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            state = file_state(Path(folder) / name)
            digest.update(os.path.relpath(state[0], root).encode() + repr(state[1:]).encode())
    return digest.hexdigest()


def make_key(
    stage: str,
    dataset: str,
    *,
    files: Iterable[str | Path],
    settings: Iterable[Any] = (),
    extra: Iterable[Any] = (),
) -> str:
    """The key of one stage's inputs: files by state, settings (config Structs) and other parts."""
    parts = [
        _FORMAT,
        stage,
        dataset,
        code_state(),
        [file_state(p) for p in files],
        list(settings),
        list(extra),
    ]
    return hashlib.blake2b(msgspec.json.encode(parts), digest_size=20).hexdigest()


def digest(value: Any) -> str:
    """A short digest of any JSON-able value (findings, verdicts) for use inside a key."""
    return hashlib.blake2b(msgspec.json.encode(value), digest_size=16).hexdigest()


def load(store: Store, stage: str, dataset: str, key: str) -> CachedStage | None:
    """The stored entry when it was computed from inputs with this key, else None."""
    row = store.conn.execute(
        "SELECT key, value FROM stage_cache WHERE stage = ? AND dataset = ?", (stage, dataset)
    ).fetchone()
    if row is None or row[0] != key:
        return None
    try:
        return _DECODER.decode(zlib.decompress(row[1]))
    except (zlib.error, msgspec.DecodeError):  # ValidationError is a DecodeError
        return None  # an unreadable entry costs a recomputation, never the run


def save(store: Store, stage: str, dataset: str, key: str, entry: CachedStage) -> None:
    """Replace the (stage, dataset) entry; one row each keeps the store from growing per run."""
    value = zlib.compress(_ENCODER.encode(entry), 1)
    try:
        with store.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO stage_cache VALUES (?, ?, ?, ?, ?)",
                (stage, dataset, key, value, time.time()),
            )
    except sqlite3.Error:
        pass  # a full disk or a locked store costs the cache, not the audit
