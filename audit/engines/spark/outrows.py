"""The rows the structure stage's executors hand back to Spark: findings (the findings table's
columns plus their place in the local engine's order) and, on rows of their own, a task's
outcome (statistics, unreadable messages, where it left its key table) or a pass's counts."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from audit.engines.spark.findingtable import ARROW_SCHEMA, SPARK_SCHEMA, to_batch
from audit.findings import Finding

#: the order of the local engine's findings, not written: the rank of the path given (-1: the
#: planner's own findings; set-level ones after every file's) and the position under it
ORDER_TYPES = {"_task": "int", "_seq": "long"}
ORDER = tuple(ORDER_TYPES)
OUTCOME = "_outcome"  # msgpack: a task's statistics and unreadable messages, or a pass's counts
#: where a task left its key table (Arrow IPC) for its set's cross-record checks
KEYS = "_keys"
#: on rows of their own, a task's key rows' digests (int64, little-endian; by id and by image
#: or URL) in one value range: counted to find the few rows a cross-record check can concern
#: (candidates.py)
RANGE, DIGESTS = "_range", "_digests"
_EXTRA = [
    ("_task", pa.int32()),
    ("_seq", pa.int64()),
    (OUTCOME, pa.binary()),
    (KEYS, pa.string()),
    (RANGE, pa.int32()),
    (DIGESTS, pa.binary()),
]
OUT_SCHEMA = pa.schema([*ARROW_SCHEMA, *(pa.field(n, t) for n, t in _EXTRA)])
OUT_DDL = (
    f"{SPARK_SCHEMA}, _task int, _seq long, {OUTCOME} binary, {KEYS} string, {RANGE} int, "
    f"{DIGESTS} binary"
)
#: the findings table's columns with the order ones (what publish takes)
FINDING_COLUMNS = [*(field.name for field in ARROW_SCHEMA), *ORDER]


def _batch(n: int, columns: dict[str, pa.Array]) -> pa.RecordBatch:
    """``n`` rows of :data:`OUT_SCHEMA`: the ``columns`` given, nulls in every other."""
    return pa.RecordBatch.from_arrays(
        [columns.get(field.name, pa.nulls(n, field.type)) for field in OUT_SCHEMA],
        schema=OUT_SCHEMA,
    )


def rows(findings: list[Finding], rank: int, seq: Sequence[int] | None = None) -> pa.RecordBatch:
    """Findings as rows of :data:`OUT_SCHEMA`, at ``rank``, by ``seq`` (default: as listed)."""
    batch = to_batch(findings)
    n = batch.num_rows
    return _batch(
        n,
        {
            **dict(zip(batch.schema.names, batch.columns, strict=True)),
            "_task": pa.array([rank] * n, pa.int32()),
            "_seq": pa.array(range(n) if seq is None else seq, pa.int64()),
        },
    )


def outcome_row(rank: int, number: int, payload: bytes, keys: str | None = None) -> pa.RecordBatch:
    """One row holding task ``number``'s outcome (or a pass's counts: rank and number -1), with
    where it left its key table when it left one."""
    return _batch(
        1,
        {
            "_task": pa.array([rank], pa.int32()),
            "_seq": pa.array([number], pa.int64()),
            OUTCOME: pa.array([payload], pa.binary()),
            KEYS: pa.array([keys], pa.string()),
        },
    )


def range_rows(ranges: dict[int, bytes]) -> pa.RecordBatch:
    """A task's digests, one row per value range (:data:`RANGE`, :data:`DIGESTS`)."""
    return _batch(
        len(ranges),
        {
            RANGE: pa.array(list(ranges), pa.int32()),
            DIGESTS: pa.array(list(ranges.values()), pa.binary()),
        },
    )
