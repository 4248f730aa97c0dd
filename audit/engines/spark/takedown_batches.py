"""The takedown blocklist check on Spark: every record matched in executors, over batches of
candidates, by the local engine's :func:`audit.checks.takedown.find_matches` and
:func:`present_findings` against the same :class:`Blocklist` (broadcast once).

The driver reads each record's identifying keys and, when the blocklist has content hashes, the
image hashes (cached in the state store), as the local engine does
(:func:`audit.takedown.blocklist_findings`); :class:`SparkMatching` stands in for
:func:`audit.takedown_search.match_here`. The findings go to the Parquet table; only their counts
and first examples come back.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import pyarrow as pa

from audit.checks.takedown import Blocklist, Candidate, find_matches, present_findings
from audit.config import EngineConfig
from audit.engines.spark.findingtable import SPARK_SCHEMA, publish, to_batch
from audit.engines.spark.session import session
from audit.findings import Finding
from audit.results import FindingTotals

if TYPE_CHECKING:
    from pyspark import Broadcast

#: A record as matching sees it (:class:`Candidate`), one row per record.
CANDIDATE_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("file", pa.string()),
        ("index", pa.int64()),
        ("record_id", pa.string()),
        ("image", pa.string()),
        ("url", pa.string()),
        ("sha256", pa.string()),
        ("md5", pa.string()),
        ("phash", pa.string()),
    ]
)
#: Records per Arrow batch shipped to the executors (and per task, at most).
SLICE_ROWS = 50_000


def match_batches(
    job: Broadcast[tuple[Blocklist, dict[str, bool]]], batches: Iterable[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """Executor side (mapInArrow): the findings of a batch of candidates, as the local engine
    makes them."""
    blocklist, applied = job.value
    for batch in batches:
        candidates = [Candidate(**row) for row in batch.to_pylist()]
        found = present_findings(find_matches(blocklist, candidates), applied)
        if found:
            yield to_batch(found)


class SparkMatching:
    """A :data:`audit.takedown_search.MatchRecords` running on Spark, writing its findings to
    the table at ``location``."""

    def __init__(self, engine: EngineConfig, location: str | Path) -> None:
        self.engine = engine
        self.location = Path(location)

    def __call__(
        self, blocklist: Blocklist, applied: Mapping[str, bool], candidates: list[Candidate]
    ) -> tuple[list[Finding], FindingTotals]:
        from audit.output.render.html import EXAMPLES_PER_CODE

        spark = session(self.engine)
        job = spark.sparkContext.broadcast((blocklist, dict(applied)))
        rows: list[dict[str, Any]] = [msgspec.structs.asdict(c) for c in candidates]
        table = pa.Table.from_pylist(rows, schema=CANDIDATE_SCHEMA)
        partitions = max(1, -(-table.num_rows // SLICE_ROWS))
        records = spark.createDataFrame(table).repartitionByRange(partitions, "file", "index")
        found = records.mapInArrow(partial(match_batches, job), SPARK_SCHEMA)
        try:
            return publish(found, self.location, examples_per_code=EXAMPLES_PER_CODE)
        finally:
            job.unpersist()
