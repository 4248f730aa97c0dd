"""Findings on Spark: rows in executors, a Parquet table partitioned by dataset and code, and only
their counts and first examples back on the driver (:class:`audit.results.FindingTotals`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from audit.errors import ProbeError
from audit.findings import Code, Finding, Severity, make
from audit.results import FindingTotals

if TYPE_CHECKING:
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

    Two Spark actions: one query brings the examples with their groups' counts, then the
    write (every action on a cluster costs planning, code generation and scheduling)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

    frame = frame.persist()
    try:
        by_file = [F.col("file"), F.col("index").asc_nulls_first()]
        sort = [F.col(c) for c in order] or [*by_file, F.col("message")]
        group = Window.partitionBy("code", "severity")
        wanted = F.col("_n") <= examples_per_code
        first = (
            frame.withColumn("_n", F.row_number().over(group.orderBy(*sort)))
            .withColumn("_of", F.count(F.lit(1)).over(group))
            .where(wanted if also is None else wanted | also)
            .orderBy(*([F.col(c) for c in order] or [*by_file, F.col("code")]))
            .collect()
        )
        counts: dict[str, dict[str, int]] = {}
        for row in first:
            counts.setdefault(row["code"], {})[row["severity"]] = int(row["_of"])
        # each task writes a file per (dataset, code) it holds: a few findings spread over
        # every partition of the audit would make as many tiny files (and seconds of commits)
        tasks = -(-sum(sum(c.values()) for c in counts.values()) // ROWS_PER_WRITER)
        table = frame.drop(*order).coalesce(max(1, tasks))
        table.write.mode("overwrite").partitionBy("dataset", "code").parquet(str(location))
    finally:
        frame.unpersist()
    examples = [from_row(row.asDict()) for row in first]
    return examples, FindingTotals(counts=counts, location=str(location))


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
