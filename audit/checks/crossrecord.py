"""Cross-record checks over KEY TABLES: repeated ids and images, exact duplicate records.

A key table holds only what these rules need from each record (its id, image and a hash of the
whole record, plus where it is: ``file``, ``shard``, ``index``), so a dataset of many shards is
checked by concatenating its shards' key tables, never their records. Every function here gives
the same answer when run on hash partitions of its partition key (all rows of one key value in
one partition) and the results are concatenated or summed: the Spark engine runs them that way.
A plain JSON file is a set of one shard: :func:`audit.checks.stats.chat_stats` calls the same
functions on its own key table, so there is one implementation of each rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from audit import findings as fnd
from audit.checks.tables import ChatTables, FileRef
from audit.findings import Code, Finding

#: fixed seeds: a record hashes alike in every process of one run (same polars, from the lock)
_SEEDS = (0x5EED_0001, 0x5EED_0002)
_TURN_BITS = 1 << 32  # per-turn hashes are summed as 32-bit parts, so Int64 sums never overflow

CHAT_KEY_SCHEMA = {
    "file": pl.Utf8,
    "shard": pl.Int32,
    "index": pl.Int64,
    "id": pl.Utf8,
    "image": pl.Utf8,
    "h1": pl.UInt64,
    "h2": pl.UInt64,
    "answer_hash": pl.UInt64,
    "answer50": pl.Utf8,
}
METADATA_KEY_SCHEMA = {
    "file": pl.Utf8,
    "shard": pl.Int32,
    "index": pl.Int64,
    "id": pl.Utf8,
    "image": pl.Utf8,
    "url": pl.Utf8,
    "caption_hash": pl.UInt64,
    "caption50": pl.Utf8,
}


def _text_hash(column: str) -> pl.Expr:
    return pl.when(pl.col(column).is_not_null()).then(pl.col(column).hash(_SEEDS[0]))


def chat_keys(tables: ChatTables, file: str, shard: int = 0) -> pl.DataFrame:
    """The key table of one file or shard's conversation records (CHAT_KEY_SCHEMA)."""
    records, turns = tables.records, tables.turns
    sums = []
    for seed in _SEEDS:  # order-sensitive: each turn's hash includes its position
        part = (pl.struct("pos", "from", "value").hash(seed) % _TURN_BITS).cast(pl.Int64)
        cum = turns.select(part.cum_sum()).to_series()
        cum = pl.concat([pl.Series([0], dtype=pl.Int64), cum])
        start = records["start"].cast(pl.Int64)
        sums.append(cum.gather(start + records["n_turns"]) - cum.gather(start))
    answer = pl.Series("answer", [None] * records.height, dtype=pl.Utf8)
    if turns.height:
        row = (records["start"] + 1).clip(upper_bound=turns.height - 1)
        answer = pl.select(
            pl.when(records["n_turns"] > 1).then(turns["value"].gather(row)).alias("answer")
        ).to_series()
    frame = records.select("idx", "id", "image", "n_turns").with_columns(
        answer, c1=sums[0], c2=sums[1]
    )
    identity = ("id", "image", "n_turns")
    return frame.select(
        pl.lit(file, pl.Utf8).alias("file"),
        pl.lit(shard, pl.Int32).alias("shard"),
        pl.col("idx").cast(pl.Int64).alias("index"),
        "id",
        "image",
        h1=pl.struct(*identity, "c1").hash(_SEEDS[0]),
        h2=pl.struct(*identity, "c2").hash(_SEEDS[1]),
        answer_hash=_text_hash("answer"),
        answer50=pl.col("answer").str.slice(0, 50),
    )


def metadata_keys(frame: pl.DataFrame, file: str, shard: int = 0) -> pl.DataFrame:
    """The key table of one file or shard's metadata records (METADATA_KEY_SCHEMA)."""
    return frame.select(
        pl.lit(file, pl.Utf8).alias("file"),
        pl.lit(shard, pl.Int32).alias("shard"),
        pl.col("idx").cast(pl.Int64).alias("index"),
        "id",
        "image",
        "url",
        caption_hash=_text_hash("caption"),
        caption50=pl.col("caption").str.slice(0, 50),
    )


def exact_duplicates(keys: pl.DataFrame, dataset: str) -> list[Finding]:
    """``record.duplicate`` on every later copy of a record (same id, image and turns).

    Partition key: ``id`` (copies share their id). "Later" is by (shard, index).
    """
    copies = keys.filter(pl.struct("h1", "h2").is_duplicated())
    if not copies.height:
        return []
    copies = (
        copies.sort("shard", "index")
        .with_columns(
            first_file=pl.col("file").first().over("h1", "h2"),
            first_index=pl.col("index").first().over("h1", "h2"),
            nth=pl.int_range(pl.len()).over("h1", "h2"),
        )
        .filter(pl.col("nth") > 0)
    )
    out = []
    for file, index, rid, first_file, first_index in copies.select(
        "file", "index", "id", "first_file", "first_index"
    ).iter_rows():
        where = "" if first_file == file else f" of {first_file}"
        out.append(
            fnd.make(
                Code.RECORD_DUPLICATE,
                f"exact copy of record {first_index}{where}",
                dataset=dataset,
                file=file,
                index=index,
                record_id=rid,
            )
        )
    return out


def repeats(keys: pl.DataFrame, column: str) -> int:
    """Rows minus distinct values of ``column`` (a missing value counts as one value).

    Partition key: ``column``; partitions' results add up.
    """
    return keys.height - keys[column].n_unique()


def rows_sharing(keys: pl.DataFrame, column: str) -> int:
    """Rows whose (present) ``column`` value occurs more than once. Partition key: ``column``."""
    return int(keys[column].drop_nulls().is_duplicated().sum())


def duplicate_counts(keys: pl.DataFrame, dataset: str) -> tuple[list[Finding], dict[str, int]]:
    """All three duplicate rules on one whole (unpartitioned) chat key table."""
    found = exact_duplicates(keys, dataset)
    counts = {
        "repeated_ids": repeats(keys, "id"),
        "repeated_images": rows_sharing(keys, "image"),
        "exact_duplicates": len(found),
    }
    return found, counts


def duplicate_summary(counts: Mapping[str, Any], ref: FileRef) -> Finding:
    """The ``stats.duplicates`` line from the (summed) counts of :func:`duplicate_counts`."""
    return ref.finding(
        Code.STATS_DUPLICATES,
        f"{counts['repeated_ids']:,} repeated ids, {counts['repeated_images']:,} records with a "
        f"repeated image, {counts['exact_duplicates']:,} exact duplicate records",
    )
