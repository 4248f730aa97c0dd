"""The URL stage's references on Spark, read in the executors: the driver sends one descriptor
per unit (each shard of a set, else the file itself: the licence stage's
:class:`audit.licensing.inputs.RecordSource` and :func:`licence_join.descriptors`) and each
executor reads its unit with the local engine's own reader
(:func:`audit.loaders.urlsources.shard_url_refs`, or :func:`load_url_refs` for a single file),
so no URL of a shard set or of a LAION Parquet file passes through the driver. A COCO join
(a chat file's image ids against the annotation file's URLs) is made the same way: the
annotation file's id -> URL map is broadcast and each executor reads its chat unit (the
licence stage's :func:`record_sources` units and :func:`load_unit` reader) and joins it
(:func:`audit.loaders.urlsources.coco_refs`).

The references are staged once (a shard read again by every action could have changed in
between, and would be read three times); one small aggregate then brings back their count
and the first unit's error, raised on the driver as the local engine raises it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from audit.engines.spark import caches
from audit.engines.spark import urlsteps as steps
from audit.engines.spark.licence_join import descriptors, in_cwd, raised, units_of
from audit.errors import AuditError
from audit.licensing.inputs import RecordSource, load_unit, record_sources
from audit.loaders.coco import load_coco_urls
from audit.loaders.records import refs_of
from audit.loaders.shards import expand, is_shard_set
from audit.loaders.urlsources import BATCH_ROWS, coco_refs, load_url_refs, shard_url_refs
from audit.models import UrlRef
from audit.probes.urls import UrlSource

if TYPE_CHECKING:
    from pyspark import Broadcast
    from pyspark.sql import DataFrame, SparkSession

#: a reference: its position (in its shard, for a set), id, URL, the URL's :func:`steps.home`
#: (what the preparing pass groups by) and its shard (null: the source's file itself)
REF_SCHEMA = pa.schema(
    [
        ("index", pa.int64()),
        ("record_id", pa.string()),
        ("url", pa.string()),
        ("home", pa.string()),
        ("file", pa.string()),
    ]
)
_KINDS = {pa.int64(): "long", pa.int32(): "int", pa.string(): "string"}
#: a reference, or (url null) the error that stopped reading unit ``unit``
_READ_SCHEMA = REF_SCHEMA.append(pa.field("unit", pa.int32()))
_READ_SCHEMA = _READ_SCHEMA.append(pa.field("error", pa.string()))
_READ_SCHEMA = _READ_SCHEMA.append(pa.field("code", pa.int32()))
URL_LIST = "url-list"  # the kind of a URL source's unit (its column is the stage's to give)


def ddl(schema: pa.Schema) -> str:
    """``schema`` as Spark's DDL string."""
    return ", ".join(f"{f.name} {_KINDS[f.type]}" for f in schema)


def url_units(src: UrlSource) -> list[RecordSource]:
    """The units of a URL source: each shard of a set (in :func:`expand` order; only names
    are listed, and a Parquet shard's first bytes checked, on the driver), else the file. A
    COCO-joined chat's units are the licence stage's (its kind guessed, as there, from the
    first records of its first shard)."""
    if src.coco_annotations:
        return record_sources(Path(src.path), None, src.dataset)[0]
    if is_shard_set(src.path):
        shards = expand(src.path, what="URL list")
        return [RecordSource(str(s), URL_LIST, src.dataset, shard=True) for s in shards]
    return [RecordSource(src.path, URL_LIST, src.dataset)]


def source_refs(
    spark: SparkSession, src: UrlSource, folder: Path, cwd: str | None = None
) -> tuple[DataFrame, int]:
    """A source's references (rows of :data:`REF_SCHEMA`) staged into ``folder`` (a
    :func:`caches.scratch` folder that must outlive the frame), and how many there are. A
    unit that cannot be read is raised here, the first in unit order, before any probe."""
    from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

    coco = None  # the local engine's order: the annotation file, then the chat
    if src.coco_annotations:
        coco = spark.sparkContext.broadcast(load_coco_urls(src.coco_annotations))
    try:
        read = functools.partial(_read, src.column, coco, cwd or str(Path.cwd()))
        frame = descriptors(spark, url_units(src)).mapInArrow(read, ddl(_READ_SCHEMA))
        staged = caches.staged(spark, frame, folder, ddl(_READ_SCHEMA))
    finally:
        if coco is not None:
            coco.unpersist()
    failed = F.when(F.col("error").isNotNull(), F.struct("unit", "error", "code"))
    row = staged.agg(F.count("url").alias("urls"), F.min(failed).alias("failed")).collect()[0]
    if row["failed"] is not None:
        raise raised(row["failed"]["error"], row["failed"]["code"])
    return staged.where(F.col("url").isNotNull()).select(*REF_SCHEMA.names), row["urls"]


def from_refs(spark: SparkSession, refs: Sequence[UrlRef]) -> DataFrame:
    """References a library caller holds as the same frame."""
    if not refs:
        return spark.createDataFrame([], ddl(REF_SCHEMA))
    return spark.createDataFrame(pa.Table.from_batches([_batch(refs)]))


def _read(
    column: str,
    coco: Broadcast[dict[int, str]] | None,
    cwd: str,
    batches: Iterable[pa.RecordBatch],
) -> Iterator[pa.RecordBatch]:
    """Executor side: each unit's references a batch at a time, or the error that stopped it."""
    in_cwd(cwd)
    for number, unit in units_of(batches):
        try:
            for refs in _unit_refs(unit, column, coco):
                n = len(refs)
                extra = [
                    pa.array([number] * n, pa.int32()),
                    pa.nulls(n, pa.string()),
                    pa.nulls(n, pa.int32()),
                ]
                columns = [*_batch(refs).columns, *extra]
                yield pa.RecordBatch.from_arrays(columns, schema=_READ_SCHEMA)
        except AuditError as exc:
            failed = {"unit": number, "error": exc.message, "code": exc.exit_code}
            yield pa.RecordBatch.from_pylist([failed], schema=_READ_SCHEMA)


def _unit_refs(
    unit: RecordSource, column: str, coco: Broadcast[dict[int, str]] | None
) -> Iterator[list[UrlRef]]:
    """A URL shard a batch at a time; a single file (one task: a JSON array cannot be read
    from part-way) or a COCO-joined chat unit whole, then in batches."""
    if coco is not None:  # a shard's references name it, at their positions in it
        refs = coco_refs(refs_of(load_unit(unit)), coco.value)
    elif unit.shard:
        yield from shard_url_refs(Path(unit.path), column)
        return
    else:
        refs = load_url_refs(unit.path, column)
    for start in range(0, len(refs), BATCH_ROWS):
        yield refs[start : start + BATCH_ROWS]


def _batch(refs: Sequence[UrlRef]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {
            "index": [r.index for r in refs],
            "record_id": [r.record_id for r in refs],
            "url": [r.url for r in refs],
            "home": [steps.home(r.url) for r in refs],
            "file": [r.file for r in refs],
        },
        schema=REF_SCHEMA,
    )
