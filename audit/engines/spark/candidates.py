"""The few key rows a shard set's cross-record checks can concern, found by counting digests.

Every cross-record rule (audit.checks.crossrecord) gives nothing for a row whose partition key
(its id; its image or URL) occurs once: repeats and rows_sharing count rows beyond the first of
a value, and an exact copy shares its id. So each task's worker leaves its key table in a folder
every executor sees (never in the JVM: moving every key row through Spark cost more than the
audit itself) and, with its outcome, a 64-bit digest of each row's id and of its second key
(seeded apart), cut into value ranges (:func:`by_range`: a few large rows per task, cheap for the
JVM to move). :func:`counted` shuffles them by range and counts each range in Python; only the
digests seen more than once come back (a collision only adds a row the rules then ignore).
:func:`explode` then reads each key table keeping only those rows, so the two shuffles by key
move the candidates, not every record. A chat file and its metadata file compared as a pair keep
every row: the comparison counts the matches too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from audit.engines.spark.outrows import DIGESTS, KEYS, RANGE

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
BY_ID, BY_SECOND = 0, 1  # the passes (:data:`PASS`): by id, and by image or URL
#: a candidate key row: its pass, what the pass groups it by (an id; an entry and an image or
#: URL), its entry and the key fields (a row both passes want comes twice)
PASS, KEY = "_pass", "_key"
CANDIDATES_DDL = (
    f"{PASS} int, {KEY} string, _entry int, file string, shard int, index long, id string, "
    "image string, h1 long, h2 long, answer_hash long, answer50 string, url string, "
    "caption_hash long, caption50 string"
)
CANDIDATE_SCHEMA = pa.schema(
    [(PASS, pa.int32()), (KEY, pa.string()), ("_entry", pa.int32()), *KEY_FIELDS]
)


@dataclass(frozen=True)
class Passes:
    """Which entries' rows each pass takes: ``by_id`` (sets and pair sides), ``by_second``
    (sets), and the pair sides whose every row goes to the pass by id (``whole``)."""

    by_id: frozenset[int]
    by_second: frozenset[int]
    whole: frozenset[int]


def _second_key(frame: pl.DataFrame) -> str:
    return "url" if "url" in frame.columns else "image"


def _digest(column: pl.Series, seed: int) -> pl.Series:
    return column.hash(seed).reinterpret(signed=True)


def read_keys(path: str) -> pl.DataFrame:
    """A key table a worker left (Arrow IPC)."""
    import polars as pl

    return pl.read_ipc(path)


def _digests(keys: pl.DataFrame) -> pl.Series:
    """A key table's digests by id, then by second key."""
    import polars as pl

    by_id = _digest(keys["id"], _SEEDS[0])
    return pl.concat([by_id, _digest(keys[_second_key(keys)], _SEEDS[1])])


#: value ranges per partition counting them: Spark hashes a range to its partition, so with
#: one range each, two could share a partition while another has none
RANGES_PER_PARTITION = 4


def by_range(keys: pl.DataFrame, ranges: int) -> dict[int, bytes]:
    """Executor side: a key table's digests cut into ``ranges`` value ranges (int64 bytes)."""
    import polars as pl

    values = _digests(keys)
    cut = pl.DataFrame({"d": values, "r": values.reinterpret(signed=False) % ranges})
    parts = cut.partition_by("r", as_dict=True, include_key=False)
    return {
        int(key[0]): part["d"].to_numpy().astype("<i8").tobytes() for key, part in parts.items()
    }


def seen_twice(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Executor side: the digests of one partition's ranges that occur more than once (sorted
    then compared with the next: a third of the time a hash count takes)."""
    import numpy as np

    blobs = b"".join(blob for batch in batches for blob in batch.column(DIGESTS).to_pylist())
    ordered = np.sort(np.frombuffer(blobs, dtype="<i8"))
    twice = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    yield pa.RecordBatch.from_pydict({"digest": pa.array(twice, pa.int64())})


def counted(frame: DataFrame, partitions: int) -> DataFrame:
    """The digests (column ``digest``) of ``frame``'s range rows (:func:`by_range`) seen more
    than once, counted per range in ``partitions`` partitions; only those reach the driver."""
    from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

    cut = frame.where(F.col(RANGE).isNotNull()).select(RANGE, DIGESTS)
    return cut.repartition(partitions, RANGE).mapInArrow(seen_twice, "digest long")


def explode(
    entry_of: dict[int, int],
    passes: Passes,
    wanted: Broadcast[pa.Array],
    batches: Iterator[pa.RecordBatch],
) -> Iterator[pa.RecordBatch]:
    """Executor side: each task's key table (read from the path in its outcome row) as the
    candidate rows (:data:`CANDIDATE_SCHEMA`) of each pass that can concern them: a row whose
    digest is repeated, and every row of a pair's side for the pass by id."""
    import polars as pl

    seen = pl.Series(wanted.value).implode()
    for batch in batches:
        for number, path in zip(
            batch.column("_seq").to_pylist(), batch.column(KEYS).to_pylist(), strict=True
        ):
            frame = read_keys(path)
            entry = entry_of[number]
            found = _digests(frame).is_in(seen)  # by id, then by second key
            by_id, by_second = found.head(frame.height), found.tail(frame.height)
            if entry in passes.whole:
                by_id = pl.repeat(True, frame.height, eager=True)
            second = pl.format("{}\x00{}", pl.lit(entry), pl.col(_second_key(frame)))
            chosen = [
                frame.filter(by_id).with_columns(pl.lit(BY_ID).alias(PASS), pl.col("id").alias(KEY))
                if entry in passes.by_id
                else frame.clear(),
                frame.filter(by_second).with_columns(
                    pl.lit(BY_SECOND).alias(PASS), second.alias(KEY)
                )
                if entry in passes.by_second
                else frame.clear(),
            ]
            table = pl.concat(chosen, how="diagonal").to_arrow()
            n = table.num_rows
            columns = []
            for field in CANDIDATE_SCHEMA:
                if field.name == "_entry":
                    columns.append(pa.array([entry] * n, pa.int32()))
                elif field.name in table.column_names:
                    column = table.column(field.name).combine_chunks()
                    columns.append(column.cast(field.type, safe=False))
                else:
                    columns.append(pa.nulls(n, field.type))
            yield pa.RecordBatch.from_arrays(columns, schema=CANDIDATE_SCHEMA)
