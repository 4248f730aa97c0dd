"""Which key rows reach the Spark cross-record shuffles: every row a rule can concern (its id,
or its image, seen more than once), and every row of a pair's side; no other."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import polars as pl
import pytest

pytest.importorskip("pyarrow")  # the spark extra's

import pyarrow as pa

from audit.engines.spark import candidates


@dataclass
class Shared:  # stands in for a Spark broadcast: executors read ``.value``
    value: object


def _keys(ids: list[str | None], images: list[str | None]) -> bytes:
    n = len(ids)
    frame = pl.DataFrame(
        {
            "file": ["s.jsonl"] * n,
            "shard": [0] * n,
            "index": list(range(n)),
            "id": ids,
            "image": images,
            "h1": [1] * n,
            "h2": [2] * n,
            "answer_hash": [3] * n,
            "answer50": ["a"] * n,
        },
        schema_overrides={"h1": pl.UInt64, "h2": pl.UInt64, "answer_hash": pl.UInt64},
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, frame.to_arrow().schema) as writer:
        writer.write_table(frame.to_arrow())
    return sink.getvalue().to_pybytes()


def _repeated(*tables: bytes) -> pa.Array:
    """What the JVM's count gives: the digests seen more than once over every table."""
    counts = Counter(d for t in tables for d in candidates.digests(t).to_pylist())
    return pa.array([d for d, n in counts.items() if n > 1], pa.int64())


def _rows(tables: dict[int, bytes], whole: frozenset[int] = frozenset()) -> list[tuple]:
    batch = pa.RecordBatch.from_pydict(  # an outcome row per task, as the workers leave them
        {
            "_seq": list(tables),
            "_keys": list(tables.values()),
            "_digests": pa.array(
                [candidates.digests(t).to_pylist() for t in tables.values()],
                pa.list_(pa.int64()),
            ),
        }
    )
    wanted = Shared(_repeated(*tables.values()))
    out = pa.Table.from_batches(
        list(candidates.explode({n: n for n in tables}, whole, wanted, iter([batch])))  # type: ignore[arg-type]
    )
    return sorted(
        zip(
            out["_entry"].to_pylist(),
            out["index"].to_pylist(),
            out[candidates.BY_ID].to_pylist(),
            out[candidates.BY_SECOND].to_pylist(),
            strict=True,
        )
    )


def test_only_rows_sharing_an_id_or_an_image_across_shards_go_on() -> None:
    first = _keys(["a", "b", "c", None], ["x.jpg", "y.jpg", "z.jpg", None])
    second = _keys(["a", "d", "e", None], ["w.jpg", "y.jpg", "v.jpg", "u.jpg"])
    assert _rows({0: first, 1: second}) == [
        (0, 0, True, False),  # id a, again in the second shard
        (0, 1, False, True),  # y.jpg, again in the second shard
        (0, 3, True, False),  # a missing id counts as one value (crossrecord.repeats)
        (1, 0, True, False),
        (1, 1, False, True),
        (1, 3, True, False),
    ]


def test_an_id_equal_to_an_image_name_is_not_a_repeat() -> None:
    assert _rows({0: _keys(["x.jpg", "b"], ["y.jpg", "x.jpg"])}) == []


def test_a_pair_side_keeps_every_row_for_the_comparison() -> None:
    rows = _rows({0: _keys(["a", "b"], ["x.jpg", "y.jpg"])}, whole=frozenset({0}))
    assert rows == [(0, 0, True, False), (0, 1, True, False)]
