"""Findings on Spark: rows in executors, a Parquet table partitioned by dataset and code, and only
their counts and first examples back on the driver (:class:`audit.results.FindingTotals`)."""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from audit.errors import OutputError, ProbeError, UsageError
from audit.findings import Code, Finding, Severity, make
from audit.results import FindingTotals

if TYPE_CHECKING:
    import polars as pl
    from pyspark.sql import DataFrame

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


_OF = "_of"  # on a group's count row: the count (its other columns are null)
_GROUP = ["code", "severity"]
_STAGING = "_writing-"  # a task's files before they move into the table ("_": readers skip it)


def publish(
    frame: DataFrame, location: Path, *, examples_per_code: int
) -> tuple[list[Finding], FindingTotals]:
    """Write ``frame`` as the findings table under ``location`` and bring back its counts and
    first examples (:func:`write_findings`, then :meth:`Written.published`)."""
    written = write_findings([Source(frame)], location, examples_per_code=examples_per_code)
    return written.published()


#: executor side: a partition's rows made into finding rows
Making = Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]


@dataclass(frozen=True)
class Source:
    """Finding rows for the table: ``frame``'s rows, or what ``making`` makes of them in the
    Python task that writes them (a second Python step in a task would start a second Python
    worker for it, and import everything again)."""

    frame: DataFrame
    making: Making | None = None


@dataclass(frozen=True)
class Layout:
    """How a findings table is written and summed up (each executor gets a copy)."""

    location: Path  # absolute: the executors write there
    examples_per_code: int
    order: tuple[str, ...]  # helper columns giving the local engine's order, not written
    file_info: bool  # a file's own info lines (no index) all come back
    carried: str | None  # a binary column whose rows are no findings, handed back as they are

    @property
    def sort(self) -> list[str]:
        return list(self.order) or ["file", "index", "message"]

    @property
    def columns(self) -> list[str]:
        """The columns a source's rows hand over: the findings', the order, the carried."""
        return [*ARROW_SCHEMA.names, *self.order, *([self.carried] if self.carried else [])]


@dataclass(frozen=True)
class Written:
    """A table the executors wrote: each partition's first rows and counts, to merge."""

    layout: Layout
    partials: pa.Table
    carried: list[bytes]  # the carried column's values

    def published(self, driver_rows: pa.Table | None = None) -> tuple[list[Finding], FindingTotals]:
        """The table's counts per code and severity and first examples, with ``driver_rows``
        (the same columns: a few findings made on the driver, a shard set's summary lines)
        written into it and merged here."""
        import polars as pl

        layout = self.layout  # its carried rows are apart already
        given = driver_rows.to_batches() if driver_rows is not None else []
        here = [pa.Table.from_batches([b]) for b in written_part(layout, None, iter(given))]
        rows = pa.concat_tables([self.partials, *here], promote_options="permissive")
        merged = pl.from_arrow(rows)
        assert isinstance(merged, pl.DataFrame)
        first, counts = _merged(merged, layout)
        examples = [from_row(row) for row in first]
        return examples, FindingTotals(counts=counts, location=str(layout.location))


def write_findings(
    sources: Sequence[Source],
    location: Path,
    *,
    examples_per_code: int,
    order: Mapping[str, str] | None = None,
    file_info: bool = False,
    carried: str | None = None,
) -> Written:
    """Write the ``sources``' finding rows (of :data:`SPARK_SCHEMA`, plus the ``order``
    columns, named with their Spark types) as a Parquet table under ``location`` (replacing
    what was there), partitioned by dataset and code, and bring back only what gives the counts
    per code and severity and the first ``examples_per_code`` findings of each code and
    severity (as the console and the page group them), in the order the local engine's report
    shows them: by file and index, or by the ``order`` columns (not written: the structure
    stage's file given and position in it). With ``file_info`` a file's own info lines (no
    index) come back too, however many (the console lists a file's statistics). Rows whose
    ``carried`` column (binary) is set are not findings: its values come back as they are (the
    structure stage's cross-record counts, so that they need no job of their own).

    One Spark job: each partition's Python task writes its rows and returns its own first rows
    and counts (:func:`written_part`). Spark's own writer would be a second job, and cost more
    than the table's few rows (planning, a commit per task)."""
    order = order or {}
    layout = Layout(_fresh(location), examples_per_code, tuple(order), file_info, carried)
    ddl = [SPARK_SCHEMA, *(f"{name} {kind}" for name, kind in order.items()), f"{_OF} long"]
    ddl += [f"{carried} binary"] if carried else []
    parts = []
    for source in sources:
        given = source.frame
        if source.making is None:
            given = given.select(*layout.columns)
        slots = given.sparkSession.sparkContext.defaultParallelism
        part = functools.partial(written_part, layout, source.making)
        # a few Python tasks: each costs more than its rows here
        parts.append(given.coalesce(slots).mapInArrow(part, ", ".join(ddl)))
    try:
        rows = functools.reduce(lambda a, b: a.unionByName(b), parts).toArrow()
    finally:  # what a failed task attempt left
        for leftover in layout.location.glob(f"{_STAGING}*"):
            shutil.rmtree(leftover, ignore_errors=True)
    if carried is None:
        return Written(layout, rows, [])
    partials, values = _carried_apart(rows, carried)
    return Written(replace(layout, carried=None), partials, values.to_pylist())


def _carried_apart(table: pa.Table, carried: str) -> tuple[pa.Table, pa.ChunkedArray]:
    """The rows that are findings (without the ``carried`` column), and the carried values."""
    is_carried = pc.is_valid(table[carried])
    findings = table.filter(pc.invert(is_carried)).drop_columns([carried])
    return findings, table.filter(is_carried)[carried]


#: what a findings table's folder holds (Spark's writer also left a marker file)
_TABLE_ENTRIES = ("dataset=", _STAGING, "_SUCCESS", "._SUCCESS.crc")


def replaceable(location: Path) -> None:
    """Raise :class:`UsageError` when ``location`` is a folder holding anything but a findings
    table (``--findings-dir .`` must not empty the working folder): a caller can ask before
    its run rather than after."""
    target = location.absolute()
    if target.is_dir() and not target.is_symlink():
        other = next(
            (p.name for p in target.iterdir() if not p.name.startswith(_TABLE_ENTRIES)), None
        )
        if other is not None:
            raise UsageError(
                f"{location}: holds {other!r}, so it is not a findings table to replace; "
                "give the findings an empty or new folder"
            )


def _fresh(location: Path) -> Path:
    """``location`` as a new empty folder, absolute (the executors write there): the table of
    an earlier run there is replaced, as Spark's overwrite mode would (:func:`replaceable`)."""
    replaceable(location)
    target = location.absolute()
    try:
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        target.mkdir(parents=True)
    except OSError as exc:
        raise OutputError(
            f"{location}: cannot write the findings table there ({exc.strerror or exc})"
        ) from None
    return target


def written_part(
    layout: Layout, making: Making | None, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """Executor side: a partition's finding rows (those ``making`` makes of its rows, if given)
    written under the layout's location (:func:`write_part`), then its first rows by group
    (:func:`firsts`) and one row per group holding only its count (:data:`_OF`); then its
    carried rows, as they are."""
    if making is not None:
        batches = making(batches)
    given = [batch for batch in batches if batch.num_rows]
    if not given:
        return
    table = pa.Table.from_batches(given).select(layout.columns)
    carried = None
    if layout.carried is not None:
        table, carried = _carried_apart(table, layout.carried)
    if table.num_rows:
        write_part(table.drop_columns(list(layout.order)), layout.location)
    out = firsts(layout.examples_per_code, layout.sort, layout.file_info, table)
    if carried is None:
        yield from out.to_batches()
        return
    out = out.append_column(
        pa.field(layout.carried, pa.binary()), pa.nulls(out.num_rows, pa.binary())
    )
    yield from out.to_batches()
    held = [pa.nulls(len(carried), field.type) for field in list(out.schema)[:-1]]
    yield pa.RecordBatch.from_arrays([*held, carried.combine_chunks()], schema=out.schema)


def write_part(table: pa.Table, location: Path) -> None:
    """Executor side: ``table`` as Parquet files under ``location``, one per dataset and code,
    named for the Spark partition (the driver's own rows: ``driver``).

    The files are written in a folder of their own, then each is moved into place: a retried or
    speculative attempt of the same partition writes the same rows under the same names, and a
    reader never sees half a file."""
    import pyarrow.dataset as pads  # (it imports pandas: only where it writes)
    from pyspark import TaskContext

    task = TaskContext.get()
    name = f"{task.partitionId():05d}" if task is not None else "driver"
    attempt = f"{task.attemptNumber()}-{task.taskAttemptId()}" if task is not None else "0"
    staging = location / f"{_STAGING}{name}-{attempt}"
    pads.write_dataset(
        table,
        staging,
        format="parquet",
        partitioning=["dataset", "code"],
        partitioning_flavor="hive",
        basename_template=f"part-{name}-{{i}}.parquet",
    )
    for written in staging.rglob("*.parquet"):
        target = location / written.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        written.replace(target)
    shutil.rmtree(staging, ignore_errors=True)


def firsts(limit: int, sort: list[str], file_info: bool, table: pa.Table) -> pa.Table:
    """Rows of the table as :func:`publish` brings them back: the first ``limit`` of each code
    and severity by ``sort`` (nulls first, as Spark orders ascending) and, with ``file_info``,
    every file's own info lines; then one row per group holding only its count (:data:`_OF`)."""
    import polars as pl

    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    counts = frame.group_by(_GROUP).len(name=_OF).with_columns(pl.col(_OF).cast(pl.Int64))
    also = _is_file_info() if file_info else pl.lit(False)
    kept = _firsts(frame, limit, sort, also).with_columns(pl.lit(None, pl.Int64).alias(_OF))
    out = pl.concat([kept, counts], how="diagonal_relaxed").to_arrow()
    fields = [field.with_nullable(True) for field in table.schema]  # a count row's are null
    return out.cast(pa.schema([*fields, pa.field(_OF, pa.int64())]))


def _is_file_info() -> pl.Expr:
    import polars as pl

    return pl.col("index").is_null() & (pl.col("severity") == Severity.INFO.value)


def _firsts(frame: pl.DataFrame, limit: int, sort: list[str], also: pl.Expr) -> pl.DataFrame:
    """The first ``limit`` rows of each group by ``sort``, and the rows where ``also`` holds."""
    import polars as pl

    ordered = frame.sort(sort, nulls_last=False, maintain_order=True)
    place = pl.int_range(pl.len()).over(_GROUP)
    return ordered.filter((place < limit) | also)


def _merged(
    partials: pl.DataFrame, layout: Layout
) -> tuple[list[dict[str, object]], dict[str, dict[str, int]]]:
    """Driver side: the partitions' rows as the whole table's: its first rows (in the order
    the report lists them), the file info lines with ``file_info``, and its counts by code and
    severity."""
    import polars as pl

    if partials.is_empty():
        return [], {}
    is_count = pl.col(_OF).is_not_null()
    counts: dict[str, dict[str, int]] = {}
    totals = partials.filter(is_count).group_by(_GROUP).agg(pl.col(_OF).sum())
    for code, severity, total in totals.iter_rows():
        counts.setdefault(code, {})[severity] = int(total)
    also = _is_file_info() if layout.file_info else pl.lit(False)
    kept = _firsts(partials.filter(~is_count), layout.examples_per_code, layout.sort, also)
    listing = list(layout.order) or ["file", "index", "code"]
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
