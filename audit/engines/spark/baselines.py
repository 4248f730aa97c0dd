"""`gate --baseline` on a run whose findings are Spark tables: the new ones found by a join.

The local gate matches findings against the baseline's as multisets on
:func:`audit.gate.finding_key`, in :func:`audit.gate.in_record_order`. Here the same key is
computed in executors (the same function, over rows made back into findings), the baseline's
key counts are joined (broadcast when the baseline's findings are all held on the driver; a
baseline audited on Spark has its tables keyed and counted on Spark), and a finding is new when its
rank among the findings of its key, in that same order, is past the baseline's count of the key.
Only the counts per code and severity and the first examples of each come back to the driver:
the :class:`audit.gate.Tally` the gate's rules read, equal to the local engine's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from audit.config import EngineConfig
from audit.engines.spark.findingtable import ARROW_SCHEMA, SPARK_SCHEMA, from_row, to_batch
from audit.engines.spark.session import session
from audit.errors import AuditError, ProbeError
from audit.findings import Finding, Severity
from audit.gate import Tally, finding_key, record_order
from audit.output.baseline import Baseline, findings_table
from audit.output.model import AuditReport, ordered_stages
from audit.output.render.html import EXAMPLES_PER_CODE

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, Row, SparkSession, WindowSpec

COLUMNS = [field.name for field in ARROW_SCHEMA]
#: a finding's stage, in the report's stage order (findings are matched stage by stage)
_STAGED = pa.schema([*ARROW_SCHEMA, pa.field("_stage", pa.int32())])
#: :func:`audit.gate.finding_key` as columns: dataset and code are the finding's own
KEY = ["dataset", "_name", "code", "_where"]
_KEYED = pa.schema([*_STAGED, pa.field("_name", pa.string()), pa.field("_where", pa.string())])
_KEYED_DDL = f"{SPARK_SCHEMA}, _stage int, _name string, _where string"
_KEYS = pa.schema([pa.field(c, pa.string()) for c in KEY])
_KEYS_DDL = "dataset string, _name string, code string, _where string"
_ALLOWED = pa.schema([*(pa.field(c, pa.string()) for c in KEY), pa.field("_allowed", pa.int64())])
_ALLOWED_DDL = "dataset string, _name string, code string, _where string, _allowed long"


def new_tallies(
    report: AuditReport,
    run_dir: str | Path,
    baseline: Baseline,
    engine: EngineConfig,
    *,
    file_name: Callable[[str], str] = str,
) -> dict[str, Tally]:
    """Dataset -> its findings not in ``baseline``: counts and first examples per code.

    ``run_dir`` is the published run (its tables are named relative to it); ``file_name``
    spells a table's file as the report does (relative to the config's folder)."""
    spark = session(engine)
    try:
        return _match(spark, report, Path(run_dir), baseline, file_name)
    except AuditError:
        raise
    except Exception as exc:  # py4j and Spark failures (a damaged table) have no common type
        raise ProbeError(
            f"{run_dir}: its findings tables could not be matched against the baseline on "
            f"Spark ({type(exc).__name__})"
        ) from None


def _match(
    spark: SparkSession,
    report: AuditReport,
    run_dir: Path,
    baseline: Baseline,
    file_name: Callable[[str], str],
) -> dict[str, Tally]:
    from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

    found, expected = _findings(spark, report, run_dir)
    if found is None:
        return {}
    found = _renamed(spark, found, file_name)
    allowed = _allowance(spark, baseline)
    ranked = (
        found.mapInArrow(keyed, _KEYED_DDL)
        .join(allowed, KEY, "left")
        .withColumn("_r", F.row_number().over(_window(*KEY)))
        .withColumn("_new", F.col("_r") > F.coalesce(F.col("_allowed"), F.lit(0)))
        .drop("_r", "_allowed", "_name", "_where")
    ).persist()
    try:
        counts = ranked.groupBy("dataset", "code", "severity", "_new").count().collect()
        if sum(int(r["count"]) for r in counts) != expected:
            raise ProbeError(
                f"{run_dir}: the run's findings tables are not all on this machine's disk; "
                "gate on a machine that sees the whole run folder"
            )
        first = (
            ranked.where("_new")
            .withColumn("_n", F.row_number().over(_window("dataset", "code", "severity")))
            .where(F.col("_n") <= EXAMPLES_PER_CODE)
            .collect()
        )
    finally:
        ranked.unpersist()
        allowed.unpersist()
    return _tallies(counts, first)


def keyed(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Executor side: each finding row with its :func:`audit.gate.finding_key` (name, where)."""
    for batch in batches:
        keys = [finding_key(from_row(row)) for row in batch.to_pylist()]
        yield pa.RecordBatch.from_arrays(
            [
                *batch.select(_STAGED.names).columns,
                pa.array([name for _, name, _, _ in keys], pa.string()),
                pa.array([where for _, _, _, where in keys], pa.string()),
            ],
            schema=_KEYED,
        )


def _findings(
    spark: SparkSession, report: AuditReport, run_dir: Path
) -> tuple[DataFrame | None, int]:
    """Every finding of the run, with its stage's rank: a table per stage run on Spark, the
    report's own findings for the others; and how many there are."""
    from pyspark.sql import functions as F  # noqa: N812

    frames, here, expected = [], [], 0
    for ds in report.datasets:
        for rank, name in enumerate(ordered_stages(ds.stages)):
            result = ds.stages[name].result
            totals = result.finding_totals if result is not None else None
            if result is None:
                continue
            if totals is None:
                here += [_staged(result.findings, rank)]
                expected += len(result.findings)
                continue
            if not totals.total:
                continue
            table = findings_table(totals.location, run_dir, ds.name, name)
            frames.append(
                spark.read.schema(SPARK_SCHEMA)
                .parquet(str(table))
                .where(F.col("dataset") == ds.name)
                .select(*COLUMNS)
                .withColumn("_stage", F.lit(rank).cast("int"))
            )
            expected += totals.total
    if here:
        frames.append(spark.createDataFrame(pa.Table.from_batches(here, schema=_STAGED)))
    if not frames:
        return None, 0
    found = frames[0]
    for frame in frames[1:]:
        found = found.unionByName(frame)
    return found, expected


def _staged(findings: Sequence[Finding], rank: int) -> pa.RecordBatch:
    batch = to_batch(findings)
    stage = pa.array([rank] * batch.num_rows, pa.int32())
    return pa.RecordBatch.from_arrays([*batch.columns, stage], schema=_STAGED)


def _renamed(spark: SparkSession, found: DataFrame, file_name: Callable[[str], str]) -> DataFrame:
    """``file`` as the report spells it: the order of examples and of a key's findings is the
    report's (the distinct files are few: one a shard at most)."""
    from pyspark.sql import functions as F  # noqa: N812

    files = [row["file"] for row in found.select("file").distinct().collect()]
    names = pa.table(
        {"file": files, "_file": [file_name(f) for f in files]},
        schema=pa.schema([("file", pa.string()), ("_file", pa.string())]),
    )
    if not files:
        return found
    mapping = F.broadcast(spark.createDataFrame(names))
    renamed = F.coalesce(F.col("_file"), F.col("file"))
    return found.join(mapping, "file", "left").withColumn("file", renamed).drop("_file")


def _allowance(spark: SparkSession, baseline: Baseline) -> DataFrame:
    """The baseline's findings counted per key (a multiset: a key twice allows two): those held
    on the driver, broadcast, and those of its tables counted on Spark."""
    from pyspark.sql import functions as F  # noqa: N812

    counts = Counter(finding_key(f) for f in baseline.findings)
    columns = list(zip(*counts, strict=True)) if counts else [(), (), (), ()]
    table = pa.Table.from_arrays(
        [*(pa.array(c, pa.string()) for c in columns), pa.array(counts.values(), pa.int64())],
        schema=_ALLOWED,
    )
    held = spark.createDataFrame(table) if counts else spark.createDataFrame([], _ALLOWED_DDL)
    if not baseline.tables:
        return F.broadcast(held)
    rows = [
        spark.read.schema(SPARK_SCHEMA)
        .parquet(str(t.location))
        .where(F.col("dataset") == t.dataset)
        .select(*COLUMNS)
        for t in baseline.tables
    ]
    union = rows[0]
    for frame in rows[1:]:
        union = union.unionByName(frame)
    counted = (
        union.mapInArrow(keys_only, _KEYS_DDL).groupBy(*KEY).agg(F.count("*").alias("_allowed"))
    )
    allowed = counted.unionByName(held).groupBy(*KEY).agg(F.sum("_allowed").alias("_allowed"))
    allowed = allowed.persist()
    seen = allowed.agg(F.sum("_allowed")).first()
    expected = sum(t.total for t in baseline.tables) + counts.total()
    if seen is None or (seen[0] or 0) != expected:
        allowed.unpersist()
        raise ProbeError(
            f"{baseline.tables[0].location}: the baseline's findings tables are not all on "
            "this machine's disk; gate on a machine that sees the whole baseline run folder"
        )
    return allowed


def keys_only(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Executor side: a baseline table's rows as their :func:`audit.gate.finding_key` only."""
    for batch in batches:
        keys = [finding_key(from_row(row)) for row in batch.to_pylist()]
        yield pa.RecordBatch.from_arrays(
            [pa.array([key[i] for key in keys], pa.string()) for i in range(4)],
            schema=_KEYS,
        )


def _window(*partition: str) -> WindowSpec:
    """Rows of each ``partition`` in :func:`audit.gate.in_record_order`."""
    from pyspark.sql import Window

    return Window.partitionBy(*partition).orderBy(*_order())


def _order() -> list[Column]:
    from pyspark.sql import functions as F  # noqa: N812

    return [
        F.col("_stage"),
        F.col("file"),
        F.col("index").asc_nulls_last(),
        F.col("code"),
        F.col("message"),
    ]


def _tallies(counts: list[Row], first: list[Row]) -> dict[str, Tally]:
    """Per dataset: the new findings' counts by (code, severity), and their first examples in
    the local engine's order (stage, then :func:`audit.gate.record_order`)."""
    tallies: dict[str, tuple[Counter[tuple[str, Severity]], list[tuple[int, Finding]]]] = {}
    for row in counts:
        n, _ = tallies.setdefault(row["dataset"], (Counter(), []))
        if row["_new"]:
            n[(row["code"], Severity(row["severity"]))] += int(row["count"])
    for row in first:
        finding = from_row(row.asDict())
        tallies[finding.dataset][1].append((int(row["_stage"]), finding))
    return {
        name: Tally(+n, [f for _, f in sorted(ex, key=lambda e: (e[0], record_order(e[1])))])
        for name, (n, ex) in tallies.items()
    }
