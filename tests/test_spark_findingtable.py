"""What a Spark command's report gets back from its findings table: per code and severity the
count and the first examples in the local engine's order, however the rows were partitioned."""

from __future__ import annotations

import random
from collections import Counter

import polars as pl
import pytest

pytest.importorskip("pyarrow")  # the spark extra's

import itertools
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from audit.engines.spark import findingtable
from audit.engines.spark.findingtable import ARROW_SCHEMA, Layout
from audit.errors import OutputError, UsageError

_SCHEMA = pa.schema([*ARROW_SCHEMA, ("_task", pa.int32()), ("_seq", pa.int64())])


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
        }
        for i in range(n)
    ]
    return pa.Table.from_pylist(rows, schema=_SCHEMA)


def _published(table: pa.Table, partitions: int, order: list[str]) -> tuple[list, dict]:
    """Each partition's rows through the executors' step, then the driver's merge."""
    sort = order or ["file", "index", "message"]
    cuts = [k * len(table) // partitions for k in range(partitions + 1)]
    parts = [table.slice(a, b - a) for a, b in itertools.pairwise(cuts)]
    kept = [findingtable.firsts(4, sort, True, part) for part in parts]
    merged = pl.from_arrow(pa.concat_tables(kept))
    assert isinstance(merged, pl.DataFrame)
    return findingtable._merged(merged, Layout(Path(), 4, tuple(order), True, None))


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
        .filter(
            (pl.int_range(pl.len()).over(["code", "severity"]) < 4)
            | (pl.col("index").is_null() & (pl.col("severity") == "info"))
        )
        .sort(["file", "index", "code"], nulls_last=False, maintain_order=True)
    )
    assert [r["record_id"] for r in rows] == expected["record_id"].to_list()
    assert any(r["index"] is None for r in rows)


def test_a_partition_without_findings_writes_and_gives_nothing(tmp_path: Path) -> None:
    layout = Layout(tmp_path, 4, (), False, None)
    assert list(findingtable.written_part(layout, None, iter([]))) == []
    assert list(tmp_path.iterdir()) == []


def _rows(table: pa.Table) -> Counter[tuple]:
    return Counter(zip(*(table[name].to_pylist() for name in ARROW_SCHEMA.names), strict=True))


def _rows_on_disk(location: Path) -> Counter[tuple]:
    return _rows(pads.dataset(location, format="parquet", partitioning="hive").to_table())


def test_a_partition_is_written_by_dataset_and_code_and_read_back_whole(tmp_path: Path) -> None:
    table = _findings(500, seed=5)
    names = ["plain", "a/b c", "100%=é", "..", "x\\y?#"]
    table = table.set_column(0, "dataset", pa.array([names[i % 5] for i in range(500)]))
    counts = pa.Table.from_pylist(  # a count row rides along, not a finding
        [{"_outcome": b"counts", "_task": -1}],
        schema=table.schema.append(pa.field("_outcome", pa.binary())),
    )
    given = pa.concat_tables([table.append_column("_outcome", pa.nulls(500, pa.binary())), counts])
    layout = Layout(tmp_path, 4, ("_task", "_seq"), False, "_outcome")
    rows = pa.Table.from_batches(
        list(findingtable.written_part(layout, None, iter(given.to_batches(max_chunksize=64))))
    )
    assert rows.filter(pc.is_valid(rows["_outcome"]))["_outcome"].to_pylist() == [b"counts"]
    assert rows.filter(pc.is_null(rows["_outcome"])).num_rows  # first rows and counts, to merge
    # every row came back under its own name, nothing was written outside the table
    assert _rows_on_disk(tmp_path) == _rows(table)
    assert {p.name for p in tmp_path.iterdir()} == {
        f"dataset={name}" for name in ("plain", "a%2Fb%20c", "100%25%3D%C3%A9", "..", "x%5Cy%3F%23")
    }
    polars_rows = pl.scan_parquet(
        tmp_path / "**" / "*.parquet", hive_partitioning=True
    ).collect()  # as the gate reads a baseline's table
    assert sorted(polars_rows["dataset"].unique().to_list()) == sorted(names)
    assert polars_rows.height == 500


def test_a_retried_partition_replaces_its_files_rather_than_adding_rows(tmp_path: Path) -> None:
    table = _findings(200, seed=9).drop_columns(["_task", "_seq"])
    findingtable.write_part(table, tmp_path)
    findingtable.write_part(table, tmp_path)
    assert _rows_on_disk(tmp_path).total() == 200
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(findingtable._STAGING)]


def test_an_earlier_table_is_replaced_and_a_file_in_the_way_is_one_error(tmp_path: Path) -> None:
    old = tmp_path / "table"
    findingtable.write_part(_findings(50, seed=1).drop_columns(["_task", "_seq"]), old)
    assert findingtable._fresh(old) == old.absolute()
    assert list(old.iterdir()) == []
    in_the_way = tmp_path / "file"
    in_the_way.write_text("not a folder")
    with pytest.raises(OutputError, match="cannot write the findings table"):
        findingtable._fresh(in_the_way)


def test_a_folder_holding_other_files_is_refused_not_emptied(tmp_path: Path) -> None:
    precious = tmp_path / "notes.txt"
    precious.write_text("mine")
    with pytest.raises(UsageError, match="not a findings table"):
        findingtable._fresh(tmp_path)
    assert precious.read_text() == "mine"
