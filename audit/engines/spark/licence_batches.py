"""The licence stage on Spark: each record's provenance and verdicts in executors, over batches of
record views, through the local engine's own :func:`audit.licensing.stage.assessor` and
:class:`audit.licensing.totals.FileTally`.

The driver prepares everything the local engine prepares (policy, COCO and Visual Genome joins,
opt-outs, derivatives: :func:`audit.licensing.license_files`); :class:`SparkLicensing` stands in
for its per-file loop. Each partition tallies its records and sends back one compact partial
tally (counts per judgement, the first few labels per group); the driver merges them
(:meth:`FileTally.merge`) into the same totals and file-level findings as one local tally. The
per-record findings go to the Parquet table; only their counts and first examples come back.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import pyarrow as pa

from audit.config import EngineConfig
from audit.engines.spark.findingtable import ARROW_SCHEMA, SPARK_SCHEMA, publish, to_batch
from audit.engines.spark.session import session
from audit.licensing.provenance import RecordView
from audit.licensing.stage import assessor
from audit.licensing.totals import FileTally
from audit.licensing.verdicts import LicenceContext
from audit.models import Progress
from audit.results import LicenseResult

if TYPE_CHECKING:
    from pyspark import Broadcast
    from pyspark.sql import DataFrame, SparkSession

#: A record as the licence rules see it (:class:`RecordView`), one row per record.
VIEW_SCHEMA = pa.schema(
    [
        ("position", pa.int64()),
        ("record_id", pa.string()),
        ("image", pa.string()),
        ("url", pa.string()),
        ("instruction", pa.string()),
        ("blip_caption", pa.bool_()),
    ]
)
_TALLY = "_tally"  # a partition's pickled partial tally; null on finding rows
_OUT_SCHEMA = ARROW_SCHEMA.append(pa.field(_TALLY, pa.binary()))
_OUT_DDL = f"{SPARK_SCHEMA}, {_TALLY} binary"
#: Records per Arrow batch shipped to the executors (and per task, at most).
SLICE_ROWS = 20_000


@dataclass(frozen=True)
class FileJob:
    """What every executor needs for one file (broadcast once)."""

    ctx: LicenceContext
    kind: str
    source: str | None
    dataset: str
    file: str
    uses: tuple[str, ...]
    coco_joined: bool
    verdicts: bool  # send back each record's verdict for the first declared use


@dataclass
class Partial:
    """One partition's share of a file: its tally (per-record findings left out) and verdicts."""

    first: int  # the partition's first record position: partials merge in file order
    tally: FileTally
    verdicts: list[tuple[int, str]]


def assess_batches(
    job: Broadcast[FileJob], batches: Iterable[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """Executor side (mapInArrow): tally a partition's records through the local engine's
    functions; yield its findings as they come, then one row holding the partial tally."""
    spec = job.value
    assess = assessor(spec.ctx, spec.kind, spec.source)
    tally = FileTally(spec.dataset, spec.file, spec.uses, coco_joined=spec.coco_joined)
    declared = spec.uses[0]
    verdicts: list[tuple[int, str]] = []
    first: int | None = None
    for batch in batches:
        for row in batch.to_pylist():
            rec = assess(RecordView(**row))
            tally.add(rec)
            first = row["position"] if first is None else first
            if spec.verdicts:
                verdicts.append((row["position"], rec.judgement.verdicts[declared].verdict.value))
        if tally.findings:
            found = to_batch(tally.findings)
            tally.findings = []
            blobs = pa.nulls(found.num_rows, pa.binary())
            yield pa.RecordBatch.from_arrays([*found.columns, blobs], schema=_OUT_SCHEMA)
    if first is not None:  # one more row: the partial tally, the findings' columns null
        blob = pickle.dumps(Partial(first, tally, verdicts), protocol=pickle.HIGHEST_PROTOCOL)
        yield pa.RecordBatch.from_pylist([{_TALLY: blob}], schema=_OUT_SCHEMA)


class SparkLicensing:
    """A :class:`audit.licensing.stage.FileAssessor` running on Spark: pass it as
    ``assess_file``, then :meth:`publish` the findings of the stage's result."""

    def __init__(self, engine: EngineConfig) -> None:
        self.spark: SparkSession = session(engine)
        self._frames: list[DataFrame] = []  # each file's rows, cached until published
        self._jobs: list[Broadcast[FileJob]] = []

    def __call__(
        self,
        views: Iterator[RecordView],
        kind: str,
        ctx: LicenceContext,
        source: str | None,
        tally: FileTally,
        verdicts_out: dict[int, str] | None,
        progress: Progress,
    ) -> None:
        from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

        spec = FileJob(
            ctx=ctx,
            kind=kind,
            source=source,
            dataset=tally.dataset,
            file=tally.file,
            uses=tally.uses,
            coco_joined=tally.coco_joined,
            verdicts=verdicts_out is not None,
        )
        job = self.spark.sparkContext.broadcast(spec)
        self._jobs.append(job)
        records = self._records(views)
        out = records.mapInArrow(partial(assess_batches, job), _OUT_DDL).persist()
        tallied = out.where(F.col(_TALLY).isNotNull()).select(_TALLY).collect()
        parts = sorted((pickle.loads(row[_TALLY]) for row in tallied), key=lambda p: p.first)
        for part in parts:
            tally.merge(part.tally)
            if verdicts_out is not None:
                verdicts_out.update(part.verdicts)
        self._frames.append(out)
        progress.advance(tally.records)
        progress.finish()

    def _records(self, views: Iterator[RecordView]) -> DataFrame:
        """The file's record views as a DataFrame, one partition per slice (in file order)."""
        slices = []
        chunk: list[dict[str, Any]] = []
        for view in views:
            chunk.append(view._asdict())
            if len(chunk) == SLICE_ROWS:
                slices.append(pa.Table.from_pylist(chunk, schema=VIEW_SCHEMA))
                chunk = []
        slices.append(pa.Table.from_pylist(chunk, schema=VIEW_SCHEMA))
        table = pa.concat_tables(slices)
        partitions = max(1, -(-table.num_rows // SLICE_ROWS))
        return self.spark.createDataFrame(table).repartitionByRange(partitions, "position")

    def publish(self, result: LicenseResult, location: str | Path) -> LicenseResult:
        """``result`` (from license_files with this assessor) with its findings in the table at
        ``location``: the per-record ones from the executors and the file-level ones."""
        from audit.output.render.html import EXAMPLES_PER_CODE

        file_level = self.spark.createDataFrame(pa.Table.from_batches([to_batch(result.findings)]))
        frame = file_level
        for part in self._frames:
            frame = frame.unionByName(part.where(part[_TALLY].isNull()).drop(_TALLY))
        try:
            examples, totals = publish(frame, Path(location), examples_per_code=EXAMPLES_PER_CODE)
        finally:
            for part in self._frames:
                part.unpersist()
            for job in self._jobs:
                job.unpersist()
            self._frames, self._jobs = [], []
        return msgspec.structs.replace(result, findings=examples, finding_totals=totals)
