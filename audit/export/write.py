"""Writing an export (I/O): each dataset's files, ``dropped.jsonl``, ``refetch.parquet``,
``LICENSES.md``, and ``manifest.json``; every file atomically (audit.atomic).

A re-run replaces each file whole; a reader never sees a half-written one.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import msgspec

from audit.atomic import write_atomic
from audit.errors import OutputError
from audit.export.select import Dropped

DROPPED_FILE = "dropped.jsonl"
REFETCH_FILE = "refetch.parquet"
LICENSES_FILE = "LICENSES.md"
MANIFEST_FILE = "manifest.json"

_ENCODER = msgspec.json.Encoder()


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
        raise OutputError(f"{path}: cannot write the export: {exc.strerror or exc}") from None


def dropped_jsonl(dropped: Sequence[Dropped]) -> bytes:
    return b"".join(_ENCODER.encode(d) + b"\n" for d in dropped)


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
