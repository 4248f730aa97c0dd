"""What a Spark command's report gets back from its findings table: per code and severity the
count and the first examples in the local engine's order, however the rows were partitioned."""

from __future__ import annotations

import random

import polars as pl
import pytest

pytest.importorskip("pyarrow")  # the spark extra's

import itertools

import pyarrow as pa

from audit.engines.spark import findingtable
from audit.engines.spark.findingtable import ARROW_SCHEMA

#: as Spark hands the rows over: ``_also`` from a literal is not nullable
_SCHEMA = pa.schema([*ARROW_SCHEMA, ("_task", pa.int32()), ("_seq", pa.int64())]).append(
    pa.field("_also", pa.bool_(), nullable=False)
)


def _findings(n: int, seed: int) -> pa.Table:
    rng = random.Random(seed)
    rows = [
        {
            "dataset": "d",
            "file": f"s{rng.randrange(3)}.jsonl",
            "index": rng.choice([None, *range(50)]),
            "record_id": str(i),
            "code": rng.choice(["turn.role", "image.missing", "file.stats"]),
            "severity": rng.choice(["error", "info"]),
            "message": f"m{rng.randrange(5)}",
            "_task": rng.randrange(4),
            "_seq": i,
            "_also": rng.random() < 0.05,
        }
        for i in range(n)
    ]
    return pa.Table.from_pylist(rows, schema=_SCHEMA)


def _published(table: pa.Table, partitions: int, order: list[str]) -> tuple[list, dict]:
    """Each partition's rows through the executors' step, then the driver's merge."""
    sort = order or ["file", "index", "message"]
    cuts = [k * len(table) // partitions for k in range(partitions + 1)]
    parts = [table.slice(a, b - a) for a, b in itertools.pairwise(cuts)]
    kept = [b for part in parts for b in findingtable.firsts(4, sort, iter(part.to_batches()))]
    merged = pl.from_arrow(pa.Table.from_batches(kept))
    assert isinstance(merged, pl.DataFrame)
    return findingtable._merged(merged, 4, sort, order)


@pytest.mark.parametrize("order", [["_task", "_seq"], []])
def test_counts_and_first_examples_do_not_depend_on_the_partitions(order: list[str]) -> None:
    table = _findings(2_000, seed=7)
    whole = pl.from_arrow(table)
    assert isinstance(whole, pl.DataFrame)
    counts = {
        (code, severity): n
        for code, severity, n in whole.group_by(["code", "severity"]).len().iter_rows()
    }
    one_partition = _published(table, 1, order)
    assert {(c, s): n for c, by in one_partition[1].items() for s, n in by.items()} == counts
    for partitions in (2, 5, 13):
        assert _published(table, partitions, order) == one_partition


def test_examples_are_the_first_by_file_and_index_with_missing_indexes_first() -> None:
    table = _findings(300, seed=3)
    rows, _ = _published(table, 3, [])
    whole = pl.from_arrow(table)
    assert isinstance(whole, pl.DataFrame)
    expected = (
        whole.sort(["file", "index", "message"], nulls_last=False, maintain_order=True)
        .filter((pl.int_range(pl.len()).over(["code", "severity"]) < 4) | pl.col("_also"))
        .sort(["file", "index", "code"], nulls_last=False, maintain_order=True)
    )
    assert [r["record_id"] for r in rows] == expected["record_id"].to_list()
    assert any(r["index"] is None for r in rows)


def test_a_partition_without_findings_gives_nothing() -> None:
    assert list(findingtable.firsts(4, ["file"], iter([]))) == []
