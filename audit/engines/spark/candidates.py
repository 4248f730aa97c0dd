"""The few key rows a shard set's cross-record checks can concern, found by counting in the JVM.

Every cross-record rule (audit.checks.crossrecord) gives nothing for a row whose partition key
(its id; its image or URL) occurs once: repeats and rows_sharing count rows beyond the first of
a value, and an exact copy shares its id. So each task's worker leaves, beside its key table,
a 64-bit digest of each row's id and of its second key (:data:`audit.engines.spark.outrows.
DIGESTS`, seeded apart); the JVM counts the digests and only those seen more than once come back
(a collision only adds a row the rules then ignore). The key tables are then exploded keeping
only those rows, matched by the same digests, so the two shuffles by key move the candidates,
not every record. A chat file and its
metadata file compared as a pair keep every row: the comparison counts the matches too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pyarrow as pa

from audit.engines.spark.outrows import DIGESTS, KEYS

if TYPE_CHECKING:
    import polars as pl
    from pyspark import Broadcast
    from pyspark.sql import DataFrame

#: any fixed seeds: a value digests alike in every executor (polars is locked); one per key, so
#: an id and an image with the same text are not counted as one value
_SEEDS = (0x5EED_0003, 0x5EED_0004)
#: one schema for chat and metadata key rows (the other kind's columns are null); the 64-bit
#: hashes travel as Spark longs (same bits) and are read back as the contract's UInt64
KEY_FIELDS = [
    ("file", pa.string()),
    ("shard", pa.int32()),
    ("index", pa.int64()),
    ("id", pa.string()),
    ("image", pa.string()),
    ("h1", pa.int64()),
    ("h2", pa.int64()),
    ("answer_hash", pa.int64()),
    ("answer50", pa.string()),
    ("url", pa.string()),
    ("caption_hash", pa.int64()),
    ("caption50", pa.string()),
]
BY_ID, BY_SECOND = "_in_by_id", "_in_by_second"  # which pass a candidate row goes to
#: a candidate key row (audit.engines.spark.candidates): the key fields, and its passes
CANDIDATES_DDL = (
    "_entry int, file string, shard int, index long, id string, image string, h1 long, "
    "h2 long, answer_hash long, answer50 string, url string, caption_hash long, caption50 string, "
    f"{BY_ID} boolean, {BY_SECOND} boolean"
)
CANDIDATE_SCHEMA = pa.schema(
    [("_entry", pa.int32()), *KEY_FIELDS, (BY_ID, pa.bool_()), (BY_SECOND, pa.bool_())]
)


def _second_key(frame: pl.DataFrame) -> str:
    return "url" if "url" in frame.columns else "image"


def _digest(column: pl.Series, seed: int) -> pl.Series:
    return column.hash(seed).reinterpret(signed=True)


def _by_id(frame: pl.DataFrame) -> pl.Series:
    return _digest(frame["id"], _SEEDS[0])


def _by_second(frame: pl.DataFrame) -> pl.Series:
    return _digest(frame[_second_key(frame)], _SEEDS[1])


def digests(keys: bytes) -> pa.Array:
    """Executor side: a key table's (Arrow IPC) digests by id, then by second key."""
    import polars as pl

    frame = pl.from_arrow(pa.ipc.open_file(pa.py_buffer(keys)).read_all())
    assert isinstance(frame, pl.DataFrame)
    return pl.concat([_by_id(frame), _by_second(frame)]).to_arrow()


def repeated(frame: DataFrame) -> pa.Array:
    """Driver side: the digests of ``frame``'s outcome rows seen more than once, counted in
    one JVM job; only those reach the driver."""
    from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

    every = frame.where(F.col(KEYS).isNotNull()).select(F.explode(DIGESTS).alias("digest"))
    counted = every.groupBy("digest").count().where(F.col("count") > 1)
    return counted.select("digest").toArrow()["digest"].combine_chunks()


def explode(
    entry_of: dict[int, int],
    whole: frozenset[int],
    wanted: Broadcast[pa.Array],
    batches: Iterator[pa.RecordBatch],
) -> Iterator[pa.RecordBatch]:
    """Executor side: each task's key table (Arrow IPC bytes in its outcome row) as the key
    rows of :data:`CANDIDATE_SCHEMA` a pass can concern: every row of an entry in ``whole``
    (a pair's side), else the rows whose digest (the row's own, from :func:`digests`) is
    repeated, flagged with their pass."""
    import polars as pl

    seen = pl.Series(wanted.value).implode()
    for batch in batches:
        for number, blob, both in zip(
            batch.column("_seq").to_pylist(),
            batch.column(KEYS).to_pylist(),
            batch.column(DIGESTS).to_pylist(),
            strict=True,
        ):
            frame = pl.from_arrow(pa.ipc.open_file(pa.py_buffer(blob)).read_all())
            assert isinstance(frame, pl.DataFrame)
            entry = entry_of[number]
            found = pl.Series(both, dtype=pl.Int64).is_in(seen)  # by id, then by second key
            by_id, by_second = found.head(frame.height), found.tail(frame.height)
            if entry in whole:
                by_id = pl.repeat(True, frame.height, eager=True)
            table = (
                frame.with_columns(by_id.alias(BY_ID), by_second.alias(BY_SECOND))
                .filter(by_id | by_second)
                .to_arrow()
            )
            n = table.num_rows
            columns = [pa.array([entry] * n, pa.int32())]
            for field in CANDIDATE_SCHEMA.remove(0):  # after _entry
                if field.name in table.column_names:
                    column = table.column(field.name).combine_chunks()
                    columns.append(column.cast(field.type, safe=False))
                else:
                    columns.append(pa.nulls(n, field.type))
            yield pa.RecordBatch.from_arrays(columns, schema=CANDIDATE_SCHEMA)
