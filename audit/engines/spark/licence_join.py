"""The licence stage's metadata join on Spark: each chat unit gets the part of the join its
records look up, without the metadata file or the records passing through the driver.

Executors read the metadata units and emit the join's entries
(:func:`audit.licensing.inputs.url_pairs`, a later entry of a key replacing an earlier one, as in
the local engine's dict), and read the chat units for the keys each record looks up
(:func:`audit.licensing.inputs.join_keys`). Spark keeps the last entry per key and joins them with
the keys; each chat unit's task then gets its own small dict, and the local engine's
:func:`audit.licensing.inputs.record_views` does the lookup itself, so the rule is written once.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from audit.errors import AuditError
from audit.licensing.inputs import (
    RecordSource,
    join_keys,
    load_unit,
    read_unit,
    record_sources,
    url_pairs,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: a join entry, or (key null) the error that stopped reading a metadata unit
_ENTRIES = "key string, url string, unit int, seq long, error string, code int"
_KEYS = "unit int, key string"
_ENTRY_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("url", pa.string()),
        ("unit", pa.int32()),
        ("seq", pa.int64()),
        ("error", pa.string()),
        ("code", pa.int32()),
    ]
)
_KEY_SCHEMA = pa.schema([("unit", pa.int32()), ("key", pa.string())])
_ROWS = 50_000


def descriptors(spark: SparkSession, units: Sequence[RecordSource]) -> DataFrame:
    """One row per unit (its number and pickled descriptor), one unit per partition."""
    payloads = [(n, pickle.dumps(unit)) for n, unit in enumerate(units)]
    return spark.createDataFrame(
        spark.sparkContext.parallelize(payloads, max(1, len(payloads))),
        "unit int, payload binary",
    )


def with_join(
    spark: SparkSession, units: Sequence[RecordSource], metadata: str, cwd: str
) -> tuple[DataFrame, DataFrame]:
    """The chat units' descriptors, each with the join entries its records look up (``pairs``),
    in unit order (a range partition per unit, as :func:`descriptors` gives), and the cached
    entries to release once the stage's job has run. A metadata unit that cannot be read is
    raised here, as the local engine raises it."""
    from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

    meta_units, _ = record_sources(Path(metadata), None, None)
    entries = descriptors(spark, meta_units).mapInArrow(partial(_entries, cwd), _ENTRIES)
    entries = entries.persist()
    failed = entries.where(F.col("error").isNotNull()).select("error", "code").limit(1).collect()
    if failed:
        entries.unpersist()
        raise raised(failed[0]["error"], failed[0]["code"])
    latest = entries.groupBy("key").agg(F.max_by("url", F.struct("unit", "seq")).alias("url"))
    chat = descriptors(spark, units)
    keys = chat.mapInArrow(partial(_keys, cwd), _KEYS).distinct()
    pairs = (
        keys.join(latest, "key")
        .groupBy("unit")
        .agg(F.collect_list(F.struct("key", "url")).alias("pairs"))
    )
    joined = chat.join(pairs, "unit", "left")
    ordered = joined.repartitionByRange(max(1, len(units)), "unit").sortWithinPartitions("unit")
    return ordered, entries


def raised(message: str, exit_code: int) -> AuditError:
    """An executor's :class:`AuditError` again on the driver (its class does not travel)."""
    error = AuditError(message)
    error.exit_code = exit_code
    return error


def unit_urls(pairs: list[dict[str, str]] | None) -> dict[str, str]:
    """A unit's part of the join as the dict :func:`record_views` looks URLs up in."""
    return {pair["key"]: pair["url"] for pair in pairs or ()}


def _entries(cwd: str, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Executor side: each metadata unit's join entries, numbered in file order."""
    in_cwd(cwd)
    for number, unit in units_of(batches):
        try:
            found = list(url_pairs(load_unit(unit)))
        except AuditError as exc:
            failed = {"error": exc.message, "code": exc.exit_code}
            yield pa.RecordBatch.from_pylist([failed], schema=_ENTRY_SCHEMA)
            continue
        rows = [
            {"key": key, "url": url, "unit": number, "seq": seq}
            for seq, (key, url) in enumerate(found)
        ]
        for start in range(0, len(rows), _ROWS):
            yield pa.RecordBatch.from_pylist(rows[start : start + _ROWS], schema=_ENTRY_SCHEMA)


def _keys(cwd: str, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Executor side: the keys each chat unit's records look their URL up by (a unit that
    cannot be read has none: the stage's own read of it reports why)."""
    in_cwd(cwd)
    for number, unit in units_of(batches):
        try:
            views, _, _ = read_unit(unit, None)
            keys = {key for view in views() for key in join_keys(view.record_id, view.image)}
        except AuditError:
            continue
        rows = [{"unit": number, "key": key} for key in sorted(keys)]
        for start in range(0, len(rows), _ROWS):
            yield pa.RecordBatch.from_pylist(rows[start : start + _ROWS], schema=_KEY_SCHEMA)


def units_of(batches: Iterable[pa.RecordBatch]) -> Iterator[tuple[int, RecordSource]]:
    """Executor side: each unit :func:`descriptors` sent, with its number."""
    for batch in batches:
        payloads = batch.column("payload").to_pylist()
        for number, payload in zip(batch.column("unit").to_pylist(), payloads, strict=True):
            yield number, pickle.loads(payload)


def in_cwd(cwd: str) -> None:
    """Relative paths mean in an executor what they mean on the driver."""
    if Path(cwd).is_dir() and str(Path.cwd()) != cwd:
        os.chdir(cwd)
