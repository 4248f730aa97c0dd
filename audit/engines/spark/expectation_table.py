"""The expectations stage's per-record table on Spark, built where the records are.

Each executor reads its own unit of the chat file (a file, or one shard of a set: a
:class:`RecordSource` descriptor, as the licence stage's tasks do) and makes each record's row
with the local engine's :func:`audit.probes.record_table.record_row`. The probes' findings are
read from their Parquet tables and reduced per record with :func:`record_outcome` in executors;
the rows are joined in Spark with those outcomes and with the licence stage's verdict table, and
finished (:func:`probe_cell`, markup-safe text) by a last Python pass. The table stays in Spark,
ordered by record index, for Great Expectations' Spark datasource: only the units' element
counts, and later the ids of a few example rows, reach the driver.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from audit.engines.spark.caches import literal
from audit.engines.spark.findingtable import SPARK_SCHEMA, to_batch
from audit.engines.spark.licence_join import descriptors, raised
from audit.errors import AuditError
from audit.findings import Code, Severity
from audit.licensing.inputs import RecordSource, load_unit, record_sources
from audit.loaders.shards import shard_starts
from audit.probes.record_table import (
    COLUMNS,
    NUMBER_COLUMNS,
    PROBE_COLUMNS,
    probe_cell,
    record_outcome,
    record_row,
)
from audit.results import ImagesResult, StructureResult, UrlsResult

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_RECORD = list(COLUMNS)[:9]
_ROWS_DDL = (
    "_unit int, _position long, id string, id_type string, image string, url string, "
    "n_turns long, first_from string, last_from string, image_token_count long, "
    "fingerprint string, _error string, _code int"
)
_ROWS = pa.schema(
    [
        ("_unit", pa.int32()),
        ("_position", pa.int64()),
        *((name, pa.int64() if name in NUMBER_COLUMNS else pa.string()) for name in _RECORD),
        ("_error", pa.string()),
        ("_code", pa.int32()),
    ]
)
_OUTCOME_DDL = "index long, _status string, _unavailable boolean"
_TABLE_DDL = (
    "index long, _id string, id string, id_type string, image string, url string, "
    "n_turns long, first_from string, last_from string, image_token_count long, "
    "fingerprint string, image_status string, image_available boolean, url_status string, "
    "url_alive boolean, license_verdict string"
)
#: Rows per Arrow batch an executor yields.
SLICE_ROWS = 20_000


@dataclass
class SparkTable:
    """The per-record table as a Spark DataFrame (ordered by ``index``, persisted), with the
    records' raw ids beside it for the findings' messages; release it when validated."""

    frame: DataFrame
    rows: int
    kind: str

    def validated(self) -> DataFrame:
        """What Great Expectations validates: the table's columns and the record index."""
        return self.frame.drop("_id")

    def ids_at(self, indexes: Sequence[int]) -> dict[int, str | None]:
        """The raw id of each of a few rows (the examples a finding names)."""
        from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

        if not indexes:
            return {}
        picked = self.frame.where(F.col("index").isin(list(indexes))).select("index", "_id")
        return {row["index"]: row["_id"] for row in picked.collect()}

    def has_values(self, column: str) -> bool:
        """Whether any row holds a value in ``column``."""
        from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

        return bool(self.frame.where(F.col(column).isNotNull()).limit(1).count())

    def first_repeated(self, column: str, count: int) -> list[tuple[int, Any]]:
        """The first ``count`` rows, by index, whose value in ``column`` another row holds too
        (index and value): the examples of a uniqueness rule in the local engine's order."""
        from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

        held = self.frame.where(F.col(column).isNotNull()).groupBy(column).count()
        repeated = held.where(F.col("count") > 1).select(column)
        first = self.frame.join(repeated, column).select("index", column).orderBy("index")
        return [(row["index"], row[column]) for row in first.limit(count).collect()]

    def release(self) -> None:
        self.frame.unpersist()


def spark_table(
    spark: SparkSession,
    chat: Path,
    kind: str | None,
    dataset: str,
    *,
    images: tuple[ImagesResult, StructureResult | None] | None,
    urls: UrlsResult | None,
    verdicts: str | None,
) -> SparkTable:
    """The table of ``chat`` (a file or a shard set) with the probes' outcomes (None: the probe
    did not run) and the licence verdict table (``index``, ``verdict``) when there is one."""
    from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

    units, found_kind = record_sources(chat, kind, dataset)
    cwd = str(Path.cwd())
    made = descriptors(spark, units).mapInArrow(partial(_unit_rows, cwd), _ROWS_DDL).persist()
    try:
        counted = made.groupBy("_unit").agg(
            F.count(F.lit(1)).alias("n"),
            F.first("_error", ignorenulls=True).alias("error"),
            F.first("_code", ignorenulls=True).alias("code"),
        )
        offsets, start = [], 0
        for row in sorted(counted.collect(), key=lambda r: r["_unit"]):
            if row["error"] is not None:
                raise raised(row["error"], row["code"])
            offsets.append((row["_unit"], start))
            start += row["n"]
        starts = spark.createDataFrame(offsets, "_unit int, _offset long")
        rows = made.join(F.broadcast(starts), "_unit").select(
            (F.col("_offset") + F.col("_position")).alias("index"), *_RECORD
        )
        joined = rows
        if images is not None:
            shards = [(Path(units[u].path), first) for u, first in offsets if units[u].shard]
            found = _image_findings(spark, *images, shards)
            joined = _with(joined, "_image", _outcomes(found))
        if urls is not None:
            joined = _with(joined, "_url", _outcomes(_url_findings(spark, urls, rows)))
        if verdicts is not None:
            table = spark.read.schema("index long, verdict string").parquet(literal(Path(verdicts)))
            joined = joined.join(table, "index", "left")
        probed = (images is not None, urls is not None, verdicts is not None)
        finished = joined.mapInArrow(partial(_finish, probed), _TABLE_DDL)
        frame = finished.orderBy("index").persist()
        frame.count()  # made now, so the record rows can go
    finally:
        made.unpersist()
    return SparkTable(frame, start, found_kind)


def _unit_rows(cwd: str, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Executor side: each unit's rows, one per element in file order (an unusable element
    gives the row of nothing, as the local table's), or one row naming why it cannot be read."""
    if Path(cwd).is_dir() and str(Path.cwd()) != cwd:
        os.chdir(cwd)
    for batch in batches:
        numbers, payloads = batch.column("unit").to_pylist(), batch.column("payload").to_pylist()
        for number, payload in zip(numbers, payloads, strict=True):
            unit: RecordSource = pickle.loads(payload)
            try:
                loaded = load_unit(unit)
            except AuditError as exc:  # the driver raises it: one line, its exit code
                error = {"_unit": number, "_error": exc.message, "_code": exc.exit_code}
                yield pa.RecordBatch.from_pylist([error], schema=_ROWS)
                continue
            placed = dict(loaded.items())
            for start in range(0, loaded.total, SLICE_ROWS):
                slice_ = range(start, min(start + SLICE_ROWS, loaded.total))
                made = [(p, record_row(placed.get(p))) for p in slice_]
                columns = [
                    pa.array([number] * len(made), pa.int32()),
                    pa.array([p for p, _ in made], pa.int64()),
                    *(
                        pa.array([r[i] for _, r in made], _ROWS.field(i + 2).type)
                        for i in range(len(_RECORD))
                    ),
                    pa.nulls(len(made), pa.string()),
                    pa.nulls(len(made), pa.int32()),
                ]
                yield pa.RecordBatch.from_arrays(columns, schema=_ROWS)


def _findings_frame(spark: SparkSession, result: Any) -> DataFrame:
    """A stage's findings as a DataFrame: its Parquet table when it ran on Spark, else its list."""
    totals = result.finding_totals
    if totals is not None:
        if not totals.total:
            return spark.createDataFrame([], SPARK_SCHEMA)
        return spark.read.schema(SPARK_SCHEMA).parquet(literal(Path(totals.location)))
    return spark.createDataFrame(pa.Table.from_batches([to_batch(result.findings)]))


def _image_findings(
    spark: SparkSession,
    images: ImagesResult,
    structure: StructureResult | None,
    shards: list[tuple[Path, int]],
) -> DataFrame:
    """The images stage's findings and the structure stage's ``image.path`` ones on the same
    file or on one of its ``shards`` (a path outside the roots: missing, reported by the
    structure stage), each at its row of the table.

    A shard set's findings name their shard and the index in it, while the table counts the
    set's records one after another: each is moved by its shard's first position (the few file
    names are read on the driver, the findings stay in Spark)."""
    from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

    frame = _findings_frame(spark, images)
    paths = None
    if structure is not None:
        paths = _findings_frame(spark, structure).where(F.col("code") == str(Code.IMAGE_PATH))
    starts: dict[str, int] = {}
    if shards:
        named = frame if paths is None else frame.unionByName(paths)
        names = [row["file"] for row in named.select("file").distinct().collect()]
        starts = shard_starts(names, shards)
    if paths is not None:
        frame = frame.unionByName(paths.where(F.col("file").isin([images.file, *starts])))
    if not starts:
        return frame
    moves = spark.createDataFrame(list(starts.items()), "file string, _start long")
    moved = frame.join(F.broadcast(moves), "file", "left")
    index = F.col("index") + F.coalesce(F.col("_start"), F.lit(0))
    return moved.withColumn("index", index).drop("_start")


def _url_findings(spark: SparkSession, urls: UrlsResult, rows: DataFrame) -> DataFrame:
    """URL findings carry metadata-file positions: each moved to the first chat record with
    its record id (a join of the ids, made in Spark)."""
    from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

    first = rows.where(F.col("id").isNotNull()).groupBy("id").agg(F.min("index").alias("_first"))
    found = _findings_frame(spark, urls).where(F.col("record_id").isNotNull())
    moved = found.join(first, found["record_id"] == first["id"])
    return moved.drop("index", "id").withColumnRenamed("_first", "index")


def _outcomes(findings: DataFrame) -> DataFrame:
    """One row per record a probe's findings name: its :func:`record_outcome`, reduced in
    executors over the record's findings in the order a run reads them back."""
    from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

    per = findings.where(F.col("index").isNotNull()).select("index", "file", "code", "severity")
    per = per.repartition("index").sortWithinPartitions("index", "file", "code")
    return per.mapInArrow(_reduce, _OUTCOME_DDL)


def _reduce(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Executor side: consecutive rows of one index reduced to that record's outcome."""
    out: list[tuple[int, str, bool]] = []
    current: int | None = None
    found: list[tuple[str, Severity]] = []

    def close() -> None:
        if current is not None and (outcome := record_outcome(found)) is not None:
            out.append((current, *outcome))

    for batch in batches:
        cols = batch.to_pydict()
        for index, code, severity in zip(
            cols["index"], cols["code"], cols["severity"], strict=True
        ):
            if index != current:
                close()
                current, found = index, []
            found.append((code, Severity(severity)))
    close()
    schema = pa.schema(
        [("index", pa.int64()), ("_status", pa.string()), ("_unavailable", pa.bool_())]
    )
    for start in range(0, len(out), SLICE_ROWS):
        part = out[start : start + SLICE_ROWS]
        yield pa.RecordBatch.from_arrays(
            [pa.array([o[i] for o in part]) for i in range(3)], schema=schema
        )


def _with(rows: DataFrame, prefix: str, outcomes: DataFrame) -> DataFrame:
    renamed = outcomes.withColumnRenamed("_status", f"{prefix}_status").withColumnRenamed(
        "_unavailable", f"{prefix}_unavailable"
    )
    return rows.join(renamed, "index", "left")


def _finish(
    probed: tuple[bool, bool, bool], batches: Iterable[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """Executor side: the probe cells (:func:`probe_cell`) and the text made markup-safe, as
    the local engine's table is before Great Expectations sees it."""
    from audit.probes.expectations import markup_safe

    images, urls, verdicts = probed
    schema = _table_schema()
    for batch in batches:
        cols = batch.to_pydict()
        n = batch.num_rows
        out: dict[str, list[Any]] = {name: [] for name in schema.names}
        for i in range(n):
            row = tuple(cols[name][i] for name in _RECORD)
            for probe, on in (("image", images), ("url", urls)):
                status_col, ok_col = PROBE_COLUMNS[probe]
                code = cols[f"_{probe}_status"][i] if on else None
                outcome = None if code is None else (code, cols[f"_{probe}_unavailable"][i])
                status, ok = probe_cell(row, probe, outcome) if on else (None, None)
                out[status_col].append(status)
                out[ok_col].append(ok)
            out["license_verdict"].append(cols["verdict"][i] if verdicts else None)
        out["index"] = cols["index"]
        out["_id"] = cols["id"]
        for name in _RECORD:
            out[name] = [markup_safe(name, v) for v in cols[name]]
        yield pa.RecordBatch.from_pydict(out, schema=schema)


def _table_schema() -> pa.Schema:
    fields = []
    for part in _TABLE_DDL.split(", "):
        name, kind = part.split(" ")
        fields.append(
            (name, {"long": pa.int64(), "string": pa.string(), "boolean": pa.bool_()}[kind])
        )
    return pa.schema(fields)
