"""Which key rows reach the Spark cross-record shuffles: every row a rule can concern (its id,
or its image, seen more than once), and every row of a pair's side; no other."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

pytest.importorskip("pyarrow")  # the spark extra's

import pyarrow as pa

from audit.engines.spark import candidates


@dataclass
class Shared:  # stands in for a Spark broadcast: executors read ``.value``
    value: object


def _keys(folder: Path, ids: list[str | None], images: list[str | None]) -> str:
    """A key table as a shard's worker leaves it (Arrow IPC), and where."""
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
    path = folder / f"keys-{len(list(folder.iterdir()))}.arrow"
    frame.write_ipc(path)
    return str(path)


def _repeated(*tables: str, ranges: int = 3) -> pa.Array:
    """What the counting job gives: every table's digests cut into ranges, each range counted."""
    cut: dict[int, list[bytes]] = {}
    for path in tables:
        for number, blob in candidates.by_range(candidates.read_keys(path), ranges).items():
            cut.setdefault(number, []).append(blob)
    twice: list[int] = []
    for blobs in cut.values():  # a range per partition (Spark may put several in one)
        batch = pa.RecordBatch.from_pydict({"_digests": pa.array(blobs, pa.binary())})
        for out in candidates.seen_twice(iter([batch])):
            twice += out.column("digest").to_pylist()
    return pa.array(twice, pa.int64())


def _rows(tables: dict[int, str], whole: frozenset[int] = frozenset()) -> list[tuple]:
    """(entry, index, in the pass by id, in the pass by image) of each candidate row."""
    batch = pa.RecordBatch.from_pydict(  # an outcome row per task, as the workers leave them
        {"_seq": list(tables), "_keys": list(tables.values())}
    )
    wanted = Shared(_repeated(*tables.values()))
    entries = frozenset(tables)
    passes = candidates.Passes(by_id=entries, by_second=entries - whole, whole=whole)
    out = pa.Table.from_batches(
        list(candidates.explode({n: n for n in tables}, passes, wanted, iter([batch])))  # type: ignore[arg-type]
    )
    found: dict[tuple[int, int], set[int]] = {}
    for entry, index, which in zip(
        out["_entry"].to_pylist(),
        out["index"].to_pylist(),
        out[candidates.PASS].to_pylist(),
        strict=True,
    ):
        found.setdefault((entry, index), set()).add(which)
    return sorted(
        (*row, candidates.BY_ID in which, candidates.BY_SECOND in which)
        for row, which in found.items()
    )


def test_only_rows_sharing_an_id_or_an_image_across_shards_go_on(tmp_path: Path) -> None:
    first = _keys(tmp_path, ["a", "b", "c", None], ["x.jpg", "y.jpg", "z.jpg", None])
    second = _keys(tmp_path, ["a", "d", "e", None], ["w.jpg", "y.jpg", "v.jpg", "u.jpg"])
    assert _rows({0: first, 1: second}) == [
        (0, 0, True, False),  # id a, again in the second shard
        (0, 1, False, True),  # y.jpg, again in the second shard
        (0, 3, True, False),  # a missing id counts as one value (crossrecord.repeats)
        (1, 0, True, False),
        (1, 1, False, True),
        (1, 3, True, False),
    ]


def test_an_id_equal_to_an_image_name_is_not_a_repeat(tmp_path: Path) -> None:
    assert _rows({0: _keys(tmp_path, ["x.jpg", "b"], ["y.jpg", "x.jpg"])}) == []


def test_a_pair_side_keeps_every_row_for_the_comparison(tmp_path: Path) -> None:
    rows = _rows({0: _keys(tmp_path, ["a", "b"], ["x.jpg", "y.jpg"])}, whole=frozenset({0}))
    assert rows == [(0, 0, True, False), (0, 1, True, False)]
