"""The structure stage on Spark: the local engine's per-file worker, run in executors.

The unit of work is the local engine's task (one file; a chat file and its metadata file travel
together, since the cross-file check needs both). The driver plans the tasks exactly as
:func:`audit.structure.check_files` does and sends only their descriptors, one per partition;
each executor runs :func:`audit.structure.run_group` (the same function the local process pool
runs) and returns its findings as Arrow batches, plus one row per file with its statistics. The
findings become a Parquet table (:func:`audit.engines.spark.findings.publish`); the driver gets
the counts, the first examples, the per-file statistics and the file-level ``info`` lines only.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import pyarrow as pa

from audit.config import EngineConfig
from audit.engines.spark.findings import ARROW_SCHEMA, SPARK_SCHEMA, from_row, publish, to_batch
from audit.engines.spark.session import session
from audit.errors import UsageError
from audit.findings import Finding, Severity
from audit.models import Progress
from audit.results import FileStats, StructureResult

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: audit.structure.run_group: a group's tasks run in this process, their outcomes in order
RunGroup = Callable[[list[Any]], list[Any]]

#: the order of the local engine's findings: the rank of the file among those given (-1: the
#: planner's own findings) and the position within that file's findings; not written
ORDER = ("_task", "_seq")
_OUTCOME = "_outcome"  # msgpack of a file's statistics and unreadable messages (its own row)
_EXTRA = [("_task", pa.int32()), ("_seq", pa.int64()), (_OUTCOME, pa.binary())]
OUT_SCHEMA = pa.schema([*ARROW_SCHEMA, *(pa.field(n, t) for n, t in _EXTRA)])
OUT_DDL = f"{SPARK_SCHEMA}, _task int, _seq long, {_OUTCOME} binary"
_SLICE = 65_536  # findings per Arrow batch handed back to Spark


@dataclass(frozen=True)
class Group:
    """One executor's unit of work: tasks run in order in one process (a pair: chat first)."""

    tasks: list[Any]  # audit.structure.Task (a dataclass, pickled)
    ranks: list[int]  # each task's file among those given (the local engine's order)
    cwd: str  # the driver's folder: relative paths mean the same to every executor on it


class _FileOutcome(msgspec.Struct, frozen=True):
    stats: dict[str, Any]
    unreadable: list[str]


def check_on_spark(
    tasks: list[Any],
    problems: list[Finding],
    paths: list[str],
    progress: Progress,
    engine: EngineConfig,
    findings_dir: str | None,
    *,
    run: RunGroup,
) -> StructureResult:
    """:func:`audit.structure.check_files` on Spark: the planned ``tasks`` (audit.structure.Task,
    pairs with their handoff) of the ``paths`` given, each group run by ``run`` in an executor;
    the same result, its findings in Parquet under ``findings_dir`` (a new temporary folder when
    None; the caller owns it). ``run`` is passed in, so this module imports no audit.structure
    (which dispatches here)."""
    from audit.output.render.html import EXAMPLES_PER_CODE

    spark = session(engine)
    location = findings_dir or _new_folder(spark)
    order = {path: i for i, path in enumerate(paths)}
    total = sum(task.size for task in tasks)
    progress.start("structure", total or None)
    frame = _audited(spark, _groups(tasks, order), problems, run).persist()
    try:
        outcomes = frame.where(frame[_OUTCOME].isNotNull()).select("_task", _OUTCOME).collect()
        found = frame.where(frame[_OUTCOME].isNull()).drop(_OUTCOME)
        examples, totals = publish(
            found, Path(location), examples_per_code=EXAMPLES_PER_CODE, order=ORDER
        )
        info = _file_info(found)
    finally:
        frame.unpersist()
    progress.advance(total)
    progress.finish()
    files: dict[str, FileStats] = {}
    unreadable = [f.message for f in problems]
    for row in sorted(outcomes, key=lambda r: int(r["_task"])):
        outcome = msgspec.msgpack.decode(row[_OUTCOME], type=_FileOutcome)
        files.update(msgspec.convert(outcome.stats, dict[str, FileStats]))
        unreadable += outcome.unreadable
    return StructureResult(
        findings=[f for f in examples if not _is_file_info(f)] + info,
        finding_totals=totals,
        records=sum(f.records for f in files.values() if not f.metadata_keys),
        files=files,
        unreadable=unreadable,
    )


def _new_folder(spark: SparkSession) -> str:
    """A temporary folder for the table: only where the driver and executors share a disk."""
    if not str(spark.sparkContext.master).startswith("local"):
        raise UsageError(
            "on a cluster give the findings a folder every executor can write "
            "(--findings-dir on shared storage)"
        )
    return str(Path(tempfile.mkdtemp(prefix="llava-audit-findings-")) / "structure")


def _groups(tasks: list[Any], order: dict[str, int]) -> list[Group]:
    """One group per task, but a chat file and its metadata partner share one."""
    cwd = str(Path.cwd())
    groups: list[Group] = []
    pairs: dict[int, Group] = {}
    for task in tasks:
        rank = order.get(task.path, 0)
        number = task.handoff.number if task.handoff is not None else None
        if number is not None and number in pairs:
            pair = pairs[number]
            pair.tasks.append(task)
            pair.ranks.append(rank)
            continue
        group = Group([task], [rank], cwd)
        groups.append(group)
        if number is not None:
            pairs[number] = group
    return groups


def _audited(
    spark: SparkSession, groups: list[Group], problems: list[Finding], run: RunGroup
) -> DataFrame:
    """Every group audited in an executor (one per partition), with the planner's findings."""
    rows = [(n, pickle.dumps(group)) for n, group in enumerate(groups)]
    frame = None
    if rows:
        descriptors = spark.createDataFrame(
            spark.sparkContext.parallelize(rows, len(rows)), "group int, payload binary"
        )
        frame = descriptors.mapInArrow(partial(audit_groups, run), OUT_DDL)
    if problems or frame is None:
        given = spark.createDataFrame(pa.Table.from_batches([_with_order(problems, -1)]))
        frame = given if frame is None else frame.unionByName(given)
    return frame


def audit_groups(run: RunGroup, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Executor side (mapInArrow): each descriptor's files through the local engine's worker.

    The descriptors are this driver's own pickles of plain task dataclasses."""
    # polars' jemalloc keeps freed pages for 10 s by default (see audit.structure._init_worker)
    os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:200,muzzy_decay_ms:0")
    for batch in batches:
        for payload in batch.column("payload").to_pylist():
            yield from _audit_group(pickle.loads(payload), run)


def _audit_group(group: Group, run: RunGroup) -> Iterator[pa.RecordBatch]:
    if Path(group.cwd).is_dir() and str(Path.cwd()) != group.cwd:
        os.chdir(group.cwd)
    with tempfile.TemporaryDirectory(prefix="llava-audit-pair-") as here:
        tasks = [_handoff_in(task, Path(here)) for task in group.tasks]
        outcomes = run(tasks)
    for rank, outcome in zip(group.ranks, outcomes, strict=True):
        batch = _with_order(outcome.findings, rank)
        for start in range(0, batch.num_rows, _SLICE):
            yield batch.slice(start, _SLICE)
        done = msgspec.msgpack.encode(_FileOutcome(outcome.stats, outcome.unreadable))
        yield pa.RecordBatch.from_arrays(
            [pa.nulls(1, field.type) for field in ARROW_SCHEMA]
            + [pa.array([rank], pa.int32()), pa.array([0], pa.int64()), pa.array([done])],
            schema=OUT_SCHEMA,
        )


def _handoff_in(task: Any, folder: Path) -> Any:
    """The task with its pair's Arrow file in this executor's temporary folder."""
    if task.handoff is None:
        return task
    handoff = replace(task.handoff, path=str(folder / Path(task.handoff.path).name))
    return replace(task, handoff=handoff)


def _with_order(findings: list[Finding], rank: int) -> pa.RecordBatch:
    """Findings as rows of :data:`OUT_SCHEMA`, in their local order."""
    batch = to_batch(findings)
    n = batch.num_rows
    return pa.RecordBatch.from_arrays(
        [
            *batch.columns,
            pa.array([rank] * n, pa.int32()),
            pa.array(range(n), pa.int64()),
            pa.nulls(n, pa.binary()),
        ],
        schema=OUT_SCHEMA,
    )


def _file_info(found: DataFrame) -> list[Finding]:
    """Every file-level ``info`` line (a file's statistics): the console lists them all; there
    are a few per file, never one per record."""
    from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

    rows = (
        found.where(F.col("index").isNull() & (F.col("severity") == Severity.INFO.value))
        .orderBy(*ORDER)
        .collect()
    )
    return [from_row(row.asDict()) for row in rows]


def _is_file_info(finding: Finding) -> bool:
    return finding.severity is Severity.INFO and finding.index is None
