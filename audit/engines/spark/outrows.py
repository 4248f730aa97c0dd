"""The rows the structure stage's executors hand back to Spark: findings (the findings table's
columns plus their place in the local engine's order) and, on rows of their own, a task's
outcome (statistics, unreadable messages, its key table) or a pass's counts."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from audit.engines.spark.findingtable import ARROW_SCHEMA, SPARK_SCHEMA, to_batch
from audit.findings import Finding

#: the order of the local engine's findings, not written: the rank of the path given (-1: the
#: planner's own findings; set-level ones after every file's) and the position under it
ORDER = ("_task", "_seq")
OUTCOME = "_outcome"  # msgpack: a task's statistics and unreadable messages, or a pass's counts
KEYS = "_keys"  # a task's key table (Arrow IPC) for its set's cross-record checks
#: a task's key rows' digests, by id then by image (chat) or URL (metadata): the JVM counts
#: them to find the few rows a cross-record check can concern (candidates.py)
DIGESTS = "_digests"
_DIGEST = pa.list_(pa.int64())
_EXTRA = [
    ("_task", pa.int32()),
    ("_seq", pa.int64()),
    (OUTCOME, pa.binary()),
    (KEYS, pa.binary()),
    (DIGESTS, _DIGEST),
]
OUT_SCHEMA = pa.schema([*ARROW_SCHEMA, *(pa.field(n, t) for n, t in _EXTRA)])
OUT_DDL = (
    f"{SPARK_SCHEMA}, _task int, _seq long, {OUTCOME} binary, {KEYS} binary, "
    f"{DIGESTS} array<bigint>"
)
#: the findings table's columns with the order ones (what publish takes)
FINDING_COLUMNS = [*(field.name for field in ARROW_SCHEMA), *ORDER]


def rows(findings: list[Finding], rank: int, seq: Sequence[int] | None = None) -> pa.RecordBatch:
    """Findings as rows of :data:`OUT_SCHEMA`, at ``rank``, by ``seq`` (default: as listed)."""
    batch = to_batch(findings)
    n = batch.num_rows
    return pa.RecordBatch.from_arrays(
        [
            *batch.columns,
            pa.array([rank] * n, pa.int32()),
            pa.array(range(n) if seq is None else seq, pa.int64()),
            pa.nulls(n, pa.binary()),
            pa.nulls(n, pa.binary()),
            pa.nulls(n, _DIGEST),
        ],
        schema=OUT_SCHEMA,
    )


def outcome_row(
    rank: int,
    number: int,
    payload: bytes,
    keys: bytes | None = None,
    digests: pa.Array | None = None,
) -> pa.RecordBatch:
    """One row holding task ``number``'s outcome (or a pass's counts: rank and number -1), with
    its key table and that table's digests (:data:`DIGESTS`) when it left one."""
    listed = (
        pa.ListArray.from_arrays(pa.array([0, len(digests)], pa.int32()), digests)
        if digests is not None
        else pa.nulls(1, _DIGEST)
    )
    return pa.RecordBatch.from_arrays(
        [pa.nulls(1, field.type) for field in ARROW_SCHEMA]
        + [
            pa.array([rank], pa.int32()),
            pa.array([number], pa.int64()),
            pa.array([payload], pa.binary()),
            pa.array([keys], pa.binary()),
            listed,
        ],
        schema=OUT_SCHEMA,
    )
