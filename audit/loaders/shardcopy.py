"""A shard rewritten without some of its records (takedown ``apply``, ``export``), streamed.

The copy has the shard's own format: JSON Lines stay JSON Lines (gzipped when the shard is),
each kept line copied byte for byte (its line ending written as ``\\n``); Parquet stays Parquet
with the shard's schema (its metadata included), each kept row's values unchanged. A record's
position is the one :mod:`audit.loaders.shardread` gives it (JSON Lines: the non-blank line's
ordinal; Parquet: the row), so findings' indexes say which records go. The shard is read a
batch at a time and the copy written as it is read, through :mod:`audit.atomic` (it appears
whole or not at all); a copy that keeps nothing is still written, empty (Parquet: the schema).
"""

from __future__ import annotations

import gzip
from collections.abc import Container
from pathlib import Path
from typing import IO, Any

from audit.atomic import atomic_binary
from audit.errors import OutputError
from audit.loaders.shardread import BATCH_ROWS, raw_batches
from audit.loaders.shards import shard_format


def copy_shard(
    source: Path,
    target: Path,
    dropped: Container[int],
    *,
    dataset: str = "",
    batch_rows: int = BATCH_ROWS,
) -> tuple[int, int]:
    """Write ``target`` with the records of ``source`` but those at the ``dropped`` positions.

    Returns (records read, records written). A shard that breaks while being read is the
    reader's :class:`~audit.loaders.jsonfile.UnreadableFileError` (one line, exit 3) and
    ``target`` stays as it was; a target that cannot be written is an :class:`OutputError`.
    """
    try:
        with atomic_binary(target) as out:
            if shard_format(source) == "parquet":
                return _parquet(source, out, dropped, dataset, batch_rows)
            return _jsonl(source, out, dropped, dataset, batch_rows)
    except OSError as exc:
        raise OutputError(
            f"{target}: cannot write the cleaned shard: {exc.strerror or exc}"
        ) from None


def _jsonl(
    source: Path, out: IO[bytes], dropped: Container[int], dataset: str, rows: int
) -> tuple[int, int]:
    sink: Any = gzip.GzipFile("", "wb", fileobj=out, mtime=0) if _gzipped(source) else out
    read = written = 0
    for lines in raw_batches(source, rows, dataset):
        kept = [line + b"\n" for i, line in enumerate(lines, read) if i not in dropped]
        sink.writelines(kept)
        read += len(lines)
        written += len(kept)
    if sink is not out:
        sink.close()  # the gzip trailer; ``out`` itself stays open for atomic_binary
    return read, written


def _parquet(
    source: Path, out: IO[bytes], dropped: Container[int], dataset: str, rows: int
) -> tuple[int, int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from audit.loaders.shardread import parquet_schema

    writer = pq.ParquetWriter(out, parquet_schema(source, dataset))
    read = written = 0
    for batch in raw_batches(source, rows, dataset):
        mask = pa.array([i not in dropped for i in range(read, read + batch.num_rows)], pa.bool_())
        kept = batch.filter(mask)
        writer.write_batch(kept)
        read += batch.num_rows
        written += kept.num_rows
    writer.close()  # the footer; a Python file object is not closed by it
    return read, written


def _gzipped(path: Path) -> bool:
    return path.name.lower().endswith(".gz")
