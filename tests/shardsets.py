"""Writing records as shard sets (JSON Lines, Parquet in the Hugging Face layout) for tests, and
mapping a shard finding back to the record's position in the unsharded file.

Shared by the local-engine shard tests and the Spark engine's comparison tests.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from audit.findings import Finding


def _bounds(n: int, shards: int) -> list[int]:
    return [n * i // shards for i in range(shards + 1)]


def _name(i: int, shards: int, suffix: str) -> str:
    return f"train-{i:05d}-of-{shards:05d}{suffix}"


def write_jsonl(
    records: Sequence[Any], folder: Path, shards: int, gz: bool = False
) -> dict[str, int]:
    """``records`` as ``shards`` JSON Lines files in ``folder``; shard path -> its first record."""
    folder.mkdir(parents=True, exist_ok=True)
    bounds = _bounds(len(records), shards)
    offsets = {}
    for i in range(shards):
        path = folder / _name(i, shards, ".jsonl.gz" if gz else ".jsonl")
        text = "".join(json.dumps(r) + "\n" for r in records[bounds[i] : bounds[i + 1]])
        if gz:
            path.write_bytes(gzip.compress(text.encode("utf-8")))
        else:
            path.write_text(text, encoding="utf-8")
        offsets[str(path)] = bounds[i]
    return offsets


def write_parquet(records: Sequence[Any], folder: Path, shards: int) -> dict[str, int]:
    """``records`` as ``shards`` Parquet files under ``folder/data`` (the HF datasets layout:
    id, image, conversations as list<struct<from, value>>); shard path -> its first record."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    bounds = _bounds(len(records), shards)
    offsets = {}
    for i in range(shards):
        path = data / _name(i, shards, ".parquet")
        pq.write_table(pa.Table.from_pylist(list(records[bounds[i] : bounds[i + 1]])), path)
        offsets[str(path)] = bounds[i]
    return offsets


def global_keys(
    findings: Sequence[Finding], offsets: dict[str, int]
) -> list[tuple[str, int | None]]:
    """(code, position in the unsharded file) of every record-level finding, sorted."""
    return sorted(
        (str(f.code), offsets.get(f.file, 0) + f.index) for f in findings if f.index is not None
    )
