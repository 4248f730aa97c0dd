"""Findings on Spark: rows in executors, a Parquet table partitioned by dataset and code, and only
their counts and first examples back on the driver (:class:`audit.results.FindingTotals`)."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from audit.errors import ProbeError
from audit.findings import Code, Finding, Severity, make
from audit.results import FindingTotals

if TYPE_CHECKING:
    import polars as pl
    from pyspark.sql import Column, DataFrame

#: The columns of the findings table: the DESIGN.md findings contract, one row per finding.
ARROW_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("file", pa.string()),
        ("index", pa.int64()),
        ("record_id", pa.string()),
        ("code", pa.string()),
        ("severity", pa.string()),
        ("message", pa.string()),
    ]
)
#: The same, as the DDL string Spark's mapInArrow and createDataFrame take.
SPARK_SCHEMA = (
    "dataset string, file string, index long, record_id string, code string, "
    "severity string, message string"
)


def to_batch(findings: Iterable[Finding]) -> pa.RecordBatch:
    """Executor side: findings as one Arrow batch of :data:`ARROW_SCHEMA`."""
    rows = list(findings)
    return pa.RecordBatch.from_arrays(
        [
            pa.array([f.dataset for f in rows], pa.string()),
            pa.array([f.file for f in rows], pa.string()),
            pa.array([f.index for f in rows], pa.int64()),
            pa.array([f.record_id for f in rows], pa.string()),
            pa.array([str(f.code) for f in rows], pa.string()),
            pa.array([f.severity.value for f in rows], pa.string()),
            pa.array([f.message for f in rows], pa.string()),
        ],
        schema=ARROW_SCHEMA,
    )


def from_row(row: dict[str, object]) -> Finding:
    """A collected row (one of the few examples) back into a :class:`Finding`."""
    index = row["index"]
    record_id = row["record_id"]
    return make(
        Code(str(row["code"])),
        str(row["message"]),
        dataset=str(row["dataset"]),
        file=str(row["file"]),
        index=int(index) if isinstance(index, int) else None,
        record_id=str(record_id) if record_id is not None else None,
        severity=Severity(str(row["severity"])),
    )


#: findings per writing task, at most: a small table is one file per dataset and code
ROWS_PER_WRITER = 500_000
_ALSO, _OF = "_also", "_of"  # a row wanted whatever its place; a group's count (its own rows)


def publish(
    frame: DataFrame,
    location: Path,
    *,
    examples_per_code: int,
    order: Sequence[str] = (),
    also: Column | None = None,
) -> tuple[list[Finding], FindingTotals]:
    """Write ``frame`` (rows of :data:`SPARK_SCHEMA`) under ``location`` and bring back only the
    counts per code and severity and the first ``examples_per_code`` findings of each code and
    severity (as the console and the page group them) by file and index, the order the local
    engine's report shows them; ``order`` names helper columns of ``frame`` (not written) that
    give the local engine's order instead (the structure stage: file given, position in it).
    Rows where ``also`` holds come back too (a few per file: the structure stage's statistics).

    Two Spark jobs of one stage each: every partition's own first rows and counts per group
    (:func:`firsts`, a handful of rows each, merged here), then the write (every job on a
    cluster costs planning and scheduling; a window over the groups took five)."""
    import polars as pl
    from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

    frame = frame.persist()
    sort = list(order) or ["file", "index", "message"]
    try:
        flagged = frame.withColumn(_ALSO, also if also is not None else F.lit(False))
        slots = frame.sparkSession.sparkContext.defaultParallelism
        types = dict(frame.dtypes)
        ddl = [SPARK_SCHEMA, *(f"{n} {types[n]}" for n in order), f"{_ALSO} boolean, {_OF} long"]
        partial_rows = (
            flagged.select(*ARROW_SCHEMA.names, *order, _ALSO)
            .coalesce(slots)  # a few Python tasks: each costs more than its rows here
            .mapInArrow(functools.partial(firsts, examples_per_code, sort), ", ".join(ddl))
            .toArrow()
        )
        merged = pl.from_arrow(partial_rows)
        assert isinstance(merged, pl.DataFrame)
        first, counts = _merged(merged, examples_per_code, sort, order)
        # each task writes a file per (dataset, code) it holds: a few findings spread over
        # every partition of the audit would make as many tiny files (and seconds of commits)
        tasks = -(-sum(sum(c.values()) for c in counts.values()) // ROWS_PER_WRITER)
        table = frame.drop(*order).coalesce(max(1, tasks))
        table.write.mode("overwrite").partitionBy("dataset", "code").parquet(str(location))
    finally:
        frame.unpersist()
    examples = [from_row(row) for row in first]
    return examples, FindingTotals(counts=counts, location=str(location))


def firsts(
    limit: int, sort: list[str], batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """Executor side: a partition's first ``limit`` rows of each code and severity by ``sort``
    (nulls first, as Spark orders ascending) and its rows flagged :data:`_ALSO`, then one row
    per group holding only its count (:data:`_OF`)."""
    import polars as pl

    given = [batch for batch in batches if batch.num_rows]
    if not given:
        return
    table = pa.Table.from_batches(given)
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    counts = frame.group_by(_GROUP).len(name=_OF).with_columns(pl.col(_OF).cast(pl.Int64))
    kept = _firsts(frame, limit, sort).with_columns(pl.lit(None, pl.Int64).alias(_OF))
    out = pl.concat([kept, counts], how="diagonal_relaxed").to_arrow()
    fields = [field.with_nullable(True) for field in table.schema]  # a count row's are null
    yield from out.cast(pa.schema([*fields, pa.field(_OF, pa.int64())])).to_batches()


_GROUP = ["code", "severity"]


def _firsts(frame: pl.DataFrame, limit: int, sort: list[str]) -> pl.DataFrame:
    """The first ``limit`` rows of each group by ``sort``, and the rows flagged :data:`_ALSO`."""
    import polars as pl

    ordered = frame.sort(sort, nulls_last=False, maintain_order=True)
    place = pl.int_range(pl.len()).over(_GROUP)
    return ordered.filter((place < limit) | pl.col(_ALSO))


def _merged(
    partials: pl.DataFrame, limit: int, sort: list[str], order: Sequence[str]
) -> tuple[list[dict[str, object]], dict[str, dict[str, int]]]:
    """Driver side: the partitions' rows as the whole table's: its first rows (in the order
    the report lists them) and its counts by code and severity."""
    import polars as pl

    if partials.is_empty():
        return [], {}
    is_count = pl.col(_OF).is_not_null()
    counts: dict[str, dict[str, int]] = {}
    totals = partials.filter(is_count).group_by(_GROUP).agg(pl.col(_OF).sum())
    for code, severity, total in totals.iter_rows():
        counts.setdefault(code, {})[severity] = int(total)
    kept = _firsts(partials.filter(~is_count), limit, sort)
    listing = list(order) or ["file", "index", "code"]
    rows = kept.sort(listing, nulls_last=False, maintain_order=True)
    return rows.select(ARROW_SCHEMA.names).to_dicts(), counts


def read_back(totals: FindingTotals) -> Iterator[Finding]:
    """Driver side: every finding of a published table, batch by batch (``--findings OUT.jsonl``
    of a command run on Spark), grouped by dataset and code rather than in the local order.

    Raises :class:`ProbeError` when this machine does not see the whole table (it was written
    to executors' own disks): the counts would then disagree with the file."""
    import pyarrow.dataset as pads

    table = pads.dataset(totals.location, format="parquet", partitioning="hive")
    if table.count_rows() != totals.total:
        raise ProbeError(
            f"{totals.location}: the findings table is not all on this machine's disk; give "
            "--findings-dir a folder the driver and every executor share"
        )
    columns = [field.name for field in ARROW_SCHEMA]
    for batch in table.to_batches(columns=columns):
        for row in batch.to_pylist():
            yield from_row(row)
