"""The takedown blocklist check on Spark: each executor reads its own units (a dataset file, or
one shard of a set) and matches them through the local engine's :func:`match_unit` (the
loaders, then :func:`audit.checks.takedown.find_matches` and :func:`present_findings`) against
the same :class:`Blocklist`, broadcast once with the configuration.

The driver sends only descriptors (one unit per task); no record passes through it. When the
blocklist holds content hashes, executors hash the images they find under the dataset's image
roots (a shared path) without the state store's cache, which only the driver can reach. The
findings go to the Parquet table; only their counts and first examples come back, with each
unit's record count and whether it could be read.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from audit.config import EngineConfig
from audit.engines.spark.findingtable import ARROW_SCHEMA, SPARK_SCHEMA, publish, to_batch
from audit.engines.spark.session import session
from audit.models import NoProgress, Progress
from audit.store import Store
from audit.takedown_units import Matched, MatchJob, MatchUnit, match_unit

if TYPE_CHECKING:
    from pyspark import Broadcast

_DONE = "_done"  # a unit's pickled (number, records, unreadable); null on finding rows
_OUT_SCHEMA = ARROW_SCHEMA.append(pa.field(_DONE, pa.binary()))
_OUT_DDL = f"{SPARK_SCHEMA}, {_DONE} binary"
#: Findings per Arrow batch an executor yields.
SLICE_ROWS = 50_000


def match_units(
    job: Broadcast[tuple[MatchJob, str]], batches: Iterable[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """Executor side (mapInArrow): each descriptor's unit matched as the local engine does."""
    spec, cwd = job.value
    if Path(cwd).is_dir() and str(Path.cwd()) != cwd:
        os.chdir(cwd)  # relative paths mean what they mean on the driver
    for batch in batches:
        numbers = batch.column("unit").to_pylist()
        for number, payload in zip(numbers, batch.column("payload").to_pylist(), strict=True):
            done = match_unit(spec, pickle.loads(payload), None, NoProgress())
            found = to_batch(done.findings)
            for start in range(0, found.num_rows, SLICE_ROWS):
                part = found.slice(start, SLICE_ROWS)
                nulls = pa.nulls(part.num_rows, pa.binary())
                yield pa.RecordBatch.from_arrays([*part.columns, nulls], schema=_OUT_SCHEMA)
            blob = pickle.dumps((number, done.records, done.unreadable))
            yield pa.RecordBatch.from_pylist([{_DONE: blob}], schema=_OUT_SCHEMA)


class SparkMatching:
    """A :data:`audit.takedown_units.MatchRecords` running on Spark, writing its findings to
    the table at ``location``."""

    def __init__(self, engine: EngineConfig, location: str | Path) -> None:
        self.engine = engine
        self.location = Path(location)

    def __call__(
        self, job: MatchJob, units: list[MatchUnit], store: Store, progress: Progress
    ) -> Matched:
        from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

        from audit.output.render.html import EXAMPLES_PER_CODE

        spark = session(self.engine)
        spec = spark.sparkContext.broadcast((job, str(Path.cwd())))
        payloads = [(n, pickle.dumps(unit)) for n, unit in enumerate(units)]
        descriptors = spark.createDataFrame(
            spark.sparkContext.parallelize(payloads, max(1, len(payloads))),
            "unit int, payload binary",
        )
        out = descriptors.mapInArrow(partial(match_units, spec), _OUT_DDL).persist()
        try:
            done = [pickle.loads(r[_DONE]) for r in out.where(F.col(_DONE).isNotNull()).collect()]
            found = out.where(F.col(_DONE).isNull()).drop(_DONE)
            examples, totals = publish(found, self.location, examples_per_code=EXAMPLES_PER_CODE)
        finally:
            out.unpersist()
            spec.unpersist()
        done.sort()
        return Matched(
            examples,
            totals,
            records=sum(records for _, records, _ in done),
            unreadable=[message for _, _, messages in done for message in messages],
        )
