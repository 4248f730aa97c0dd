"""Writing an export (I/O): each dataset's files, ``dropped.jsonl``, ``refetch.parquet``,
``LICENSES.md``, and ``manifest.json``; every file atomically (audit.atomic).

A re-run replaces each file whole; a reader never sees a half-written one. A subset goes to disk
straight from the input's bytes (``writev`` of the kept records and separators: no joined copy),
and a dataset's files are written by two threads (write and fsync release the GIL), so the disk
works while the next file is prepared.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

import msgspec

from audit.atomic import atomic_binary, write_atomic
from audit.errors import OutputError
from audit.export.select import Dropped

DROPPED_FILE = "dropped.jsonl"
REFETCH_FILE = "refetch.parquet"
LICENSES_FILE = "LICENSES.md"
MANIFEST_FILE = "manifest.json"

_ENCODER = msgspec.json.Encoder()
_IOV_MAX = 1024  # buffers per writev call (Linux's IOV_MAX)


class RefetchRow(msgspec.Struct, frozen=True):
    """One record img2dataset can download again (the parquet's columns)."""

    url: str
    caption: str | None
    key: str | None  # the record id
    image: str  # the path the trainer expects, relative to the image folder


def write(path: Path, data: bytes) -> None:
    """One output file, atomically; a failure is one line naming it (exit 3)."""
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise _failed(path, exc) from None


def write_parts(path: Path, parts: Sequence[Any]) -> None:
    """One output file from its bytes-like parts in order, atomically, without joining them."""
    try:
        with atomic_binary(path) as fh:
            fh.flush()
            _writev(fh.fileno(), parts)
    except OSError as exc:
        raise _failed(path, exc) from None


def _writev(fd: int, parts: Sequence[Any]) -> None:
    for start in range(0, len(parts), _IOV_MAX):
        batch = parts[start : start + _IOV_MAX]
        done = os.writev(fd, batch)
        if done < sum(map(len, batch)):  # a short write (a signal, a nearly full disk)
            rest = memoryview(b"".join(batch))[done:]
            while rest:
                rest = rest[os.write(fd, rest) :]


def _failed(path: Path, exc: OSError) -> OutputError:
    return OutputError(f"{path}: cannot write the export: {exc.strerror or exc}")


class Writer:
    """A dataset's output files, written by background threads; leaving the block waits for
    every write and raises the first failure (one line naming the file, exit 3)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="export-write")
        self._pending: list[Future[None]] = []

    def file(self, path: Path, data: bytes) -> None:
        self._pending.append(self._pool.submit(write, path, data))

    def parts(self, path: Path, parts: Sequence[Any]) -> None:
        self._pending.append(self._pool.submit(write_parts, path, parts))

    def __enter__(self) -> Writer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._pool.shutdown(wait=True)
        if kind is None:
            for future in self._pending:
                future.result()


def dropped_jsonl(dropped: Sequence[Dropped]) -> bytes:
    return _ENCODER.encode_lines(dropped)


def refetch_parquet(rows: Sequence[RefetchRow]) -> bytes:
    """The re-fetch list as Parquet (img2dataset --input_format parquet)."""
    import polars as pl

    columns = {
        "url": [r.url for r in rows],
        "caption": [r.caption for r in rows],
        "key": [r.key for r in rows],
        "image": [r.image for r in rows],
    }
    frame = pl.DataFrame(columns, schema={name: pl.String for name in columns})
    buf = io.BytesIO()
    frame.write_parquet(buf)
    return buf.getvalue()


def manifest_json(manifest: object) -> bytes:
    return msgspec.json.format(_ENCODER.encode(manifest), indent=2) + b"\n"
