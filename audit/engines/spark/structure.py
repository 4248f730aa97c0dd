"""The structure stage on Spark: the local engine's per-file worker, run in executors.

The unit of work is the local engine's task (one file or shard). The driver plans the tasks
exactly as :func:`audit.structure.check_files` does and broadcasts their descriptors, a few per
Spark task; each executor runs :func:`audit.structure.run_group` (what the local process pool
runs) on each and returns its findings as Arrow batches, plus one row per file with its
statistics, while its key table goes to a folder beside the findings table. The cross-record
checks of shard sets, and the comparison of a chat file with its metadata file, run over those
key tables (audit.engines.spark.keytables). The findings
become a Parquet table (:func:`audit.engines.spark.findingtable.publish`); the driver gets the
counts, the first examples, the per-file statistics and the file-level ``info`` lines only.
"""

from __future__ import annotations

import importlib
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import pyarrow as pa
import pyarrow.compute as pc

from audit.config import EngineConfig
from audit.engines.spark import candidates
from audit.engines.spark.candidates import RANGES_PER_PARTITION, by_range, read_keys
from audit.engines.spark.findingtable import Source, replaceable, write_findings
from audit.engines.spark.keytables import Pair, sets_on_spark
from audit.engines.spark.outrows import (
    KEYS,
    ORDER,
    ORDER_TYPES,
    OUT_DDL,
    OUTCOME,
    RANGE,
    outcome_row,
    range_rows,
    rows,
)
from audit.engines.spark.session import StartingSession, scoped_conf
from audit.engines.spark.taskprogress import tracked
from audit.errors import OutputError, UsageError
from audit.findings import Finding, Severity
from audit.models import Progress
from audit.results import FileStats, StructureResult

if TYPE_CHECKING:
    from pyspark import Broadcast
    from pyspark.sql import DataFrame, SparkSession

_SLICE = 65_536  # findings per Arrow batch handed back to Spark
_NO_DIGESTS = pa.array([], pa.int64())  # no shard set: no row of a pair is left out
_TASKS_PER_CORE = 2  # Spark tasks per core for the audit: few, yet two to even out

#: what the driver imports once the audit has run (about 0.4 s): imported while the JVM starts
_DRIVER_LATER = (
    "polars",
    "pyarrow.dataset",  # the driver's own rows of the findings table (findingtable.write_part)
    "audit.structure_sets",
    "audit.checks.crossrecord",  # the sets' summary lines
    "audit.checks.stats",
    "audit.output.render.html",
)

#: audit.structure.run_group: tasks run in this process, their outcomes in order
RunGroup = Callable[[list[Any]], list[Any]]


@dataclass(frozen=True)
class Unit:
    """One file or shard for an executor, as the local engine's worker takes it."""

    task: Any  # audit.structure.Task (a dataclass, pickled)
    number: int  # its number in the plan
    place: int  # and its place in the local engine's order
    cwd: str  # the driver's folder: relative paths mean the same to every executor on it


class FileOutcome(msgspec.Struct, frozen=True):
    """A task's outcome without its findings (those stay in Spark)."""

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
    spark: StartingSession,
) -> StructureResult:
    """:func:`audit.structure.check_files` on Spark: the planned ``tasks`` (audit.structure.Task,
    pairs with their handoff, shards with their set) of the ``paths`` given, each run by
    ``run`` in an executor, then the sets' cross-record checks over their key tables; the same
    result, its findings in Parquet under ``findings_dir`` (a new temporary folder when None; the
    caller owns it). ``run`` is passed in (this module imports no audit.structure, which
    dispatches here), and ``spark`` the session, started while the caller planned."""
    if findings_dir:
        replaceable(Path(findings_dir))  # before the audit, not after it
    for module in _DRIVER_LATER:  # while the JVM starts, a core is free for them
        importlib.import_module(module)
    session = spark.result()
    location = findings_dir or _new_folder(session)
    # every shuffle here has its partition count, and each query moves a few rows: adaptive
    # execution would only re-plan each stage (about a second of driver CPU)
    with scoped_conf(session, engine, {"spark.sql.adaptive.enabled": "false"}):
        return _checked(session, tasks, problems, paths, progress, location, run)


def _checked(
    spark: SparkSession,
    tasks: list[Any],
    problems: list[Finding],
    paths: list[str],
    progress: Progress,
    location: str,
    run: RunGroup,
) -> StructureResult:
    """:func:`check_on_spark` on its session, its findings table under ``location``."""
    from audit.output.render.html import EXAMPLES_PER_CODE
    from audit.structure_sets import entries

    total = sum(task.size for task in tasks)
    progress.start("structure", total or None)
    scratch = _scratch(Path(location))
    cached: list[DataFrame] = []
    try:
        units, pairs = _units(tasks, paths, scratch)
        frame = _audited(spark, units, problems, run).persist()
        cached.append(frame)
        done = frame.where(frame[OUTCOME].isNotNull())
        planned = entries(tasks)
        with_sets = any(entry.is_set for entry in planned)
        listed = done.select(*ORDER, OUTCOME, done[KEYS].isNotNull().alias("keyed"))
        if with_sets:  # one job runs the audit, counts its digests and lists the outcomes
            counted = candidates.counted(frame, spark.sparkContext.defaultParallelism)
            listed = listed.unionByName(counted, allowMissingColumns=True)
        with tracked(spark, progress, total, len(units)):
            table = listed.toArrow()
        repeats = _NO_DIGESTS
        if with_sets:
            is_digest = pc.is_valid(table["digest"])
            repeats = table.filter(is_digest)["digest"].combine_chunks()
            table = table.filter(pc.invert(is_digest))
        # by task number (as planned), in the local engine's order (_task)
        collected = sorted(table.to_pylist(), key=lambda r: int(r["_task"]))
        outcomes = {
            int(r["_seq"]): msgspec.msgpack.decode(r[OUTCOME], type=FileOutcome) for r in collected
        }
        keyed = {int(r["_seq"]) for r in collected if r["keyed"]}
        is_finding = frame[OUTCOME].isNull() & frame[RANGE].isNull()
        found = [Source(frame.where(is_finding))]
        sets = None
        if pairs or with_sets:
            sets = sets_on_spark(spark, frame, planned, outcomes, keyed, pairs, repeats)
            found.append(sets.findings)
        written = write_findings(
            found,
            Path(location),
            examples_per_code=EXAMPLES_PER_CODE,
            order=ORDER_TYPES,
            file_info=True,  # the console lists a file's statistics all, a few per file
            carried=OUTCOME,  # the sets' counts
        )
        summaries, set_stats = sets.summaries(written.carried) if sets else (None, {})
        examples, totals = written.published(summaries)
    finally:
        for cache in cached:
            cache.unpersist()
        shutil.rmtree(scratch, ignore_errors=True)
    progress.finish()
    files: dict[str, FileStats] = {}
    unreadable = [f.message for f in problems]
    for number in outcomes:
        files.update(msgspec.convert(outcomes[number].stats, dict[str, FileStats]))
        unreadable += outcomes[number].unreadable
    for name, stats in set_stats.items():  # as audit.structure.check_files merges them
        old = msgspec.to_builtins(files[name]) if name in files else {}
        files[name] = msgspec.convert(old | stats, FileStats)
    return StructureResult(
        findings=[f for f in examples if not _is_file_info(f)]
        + [f for f in examples if _is_file_info(f)],
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


def _scratch(location: Path) -> Path:
    """A new folder beside the findings table (so as shared as it is) for the tasks' key
    tables, removed at the end: they never pass through the JVM."""
    try:
        location.parent.mkdir(parents=True, exist_ok=True)
        made = tempfile.mkdtemp(prefix=f".{location.name}-keys-", dir=location.parent)
    except OSError as exc:
        raise OutputError(
            f"{location}: cannot write beside the findings table ({exc.strerror or exc})"
        ) from None
    return Path(made).resolve()


def _units(tasks: list[Any], paths: list[str], scratch: Path) -> tuple[list[Unit], list[Pair]]:
    """A unit per task, each numbered by its place in the local engine's order (the path
    given, then the plan's); a chat file and its metadata file no longer meet in their workers
    but leave their key tables in ``scratch`` for the same comparison as a set's (the pairs
    returned)."""
    order = {path: i for i, path in enumerate(paths)}

    def given(number: int) -> tuple[int, int]:
        task = tasks[number]
        return order.get(task.path if task.shard is None else task.shard.source, 0), number

    place = {number: n for n, number in enumerate(sorted(range(len(tasks)), key=given))}
    cwd = str(Path.cwd())
    units: list[Unit] = []
    pairs: list[Pair] = []
    for number, task in enumerate(tasks):
        if task.handoff is not None and task.handoff.role == "metadata":
            pairs.append(Pair(task.handoff.chat[0], task.path, place[number]))
        if task.handoff is not None or task.keys_file is not None:
            task = replace(task, handoff=None, keys_file=str(scratch / f"keys-{number}.arrow"))
        units.append(Unit(task, number, place[number], cwd))
    return units, pairs


def _audited(
    spark: SparkSession, units: list[Unit], problems: list[Finding], run: RunGroup
) -> DataFrame:
    """Every unit audited in an executor, with the planner's findings.

    The units travel as one broadcast and the Spark tasks take their numbers from
    ``spark.range``, so the input costs no Python round trip; a few units per Spark task
    (balanced by size), since each Python task costs Spark about a tenth of a second whatever it
    does."""
    frame = None
    if units:
        slices = min(len(units), _TASKS_PER_CORE * spark.sparkContext.defaultParallelism)
        order = _balanced(units, slices)
        shared = spark.sparkContext.broadcast([pickle.dumps(units[n]) for n in order])
        numbers = spark.range(0, len(units), 1, slices)
        ranges = RANGES_PER_PARTITION * spark.sparkContext.defaultParallelism
        frame = numbers.mapInArrow(partial(audit_units, run, shared, ranges), OUT_DDL)
    if problems or frame is None:
        given = spark.createDataFrame(pa.Table.from_batches([rows(problems, -1)]))
        frame = given if frame is None else frame.unionByName(given)
    return frame


def _balanced(units: list[Unit], slices: int) -> list[int]:
    """The units in an order whose ``slices`` even runs (as ``spark.range`` cuts them) hold
    about the same bytes: largest first, each to the lightest run with room."""
    sizes = [unit.task.size for unit in units]
    room = [(n + 1) * len(units) // slices - n * len(units) // slices for n in range(slices)]
    runs: list[list[int]] = [[] for _ in range(slices)]
    weight = [0] * slices
    for number in sorted(range(len(units)), key=lambda n: -sizes[n]):
        lightest = min((n for n in range(slices) if len(runs[n]) < room[n]), key=weight.__getitem__)
        runs[lightest].append(number)
        weight[lightest] += sizes[number]
    return [number for run in runs for number in run]


def audit_units(
    run: RunGroup, shared: Broadcast[list[bytes]], ranges: int, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """Executor side (mapInArrow): each numbered unit's file through the local engine's
    worker, then its digests in ``ranges`` value ranges (candidates.by_range).

    The units are this driver's own pickles of plain task dataclasses."""
    # polars' jemalloc keeps freed pages for 10 s by default (see audit.structure._init_worker)
    os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:200,muzzy_decay_ms:0")
    for batch in batches:
        for number in batch.column("id").to_pylist():
            yield from _audit_unit(pickle.loads(shared.value[number]), run, ranges)


def _audit_unit(unit: Unit, run: RunGroup, ranges: int) -> Iterator[pa.RecordBatch]:
    if Path(unit.cwd).is_dir() and str(Path.cwd()) != unit.cwd:
        os.chdir(unit.cwd)
    (outcome,) = run([unit.task])
    batch = rows(outcome.findings, unit.place)
    for start in range(0, batch.num_rows, _SLICE):
        yield batch.slice(start, _SLICE)
    done = msgspec.msgpack.encode(FileOutcome(outcome.stats, outcome.unreadable))
    yield outcome_row(unit.place, unit.number, done, outcome.keys or None)
    if outcome.keys:
        yield range_rows(by_range(read_keys(outcome.keys), ranges))


def _is_file_info(finding: Finding) -> bool:
    return finding.severity is Severity.INFO and finding.index is None
