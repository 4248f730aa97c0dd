"""The cross-record functions over key tables give the same answer on hash partitions of their
partition key (how the Spark engine runs them) as on the whole table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import realsamples

from audit.checks import crossfile, crossrecord
from audit.checks.tables import FileRef, chat_tables, metadata_table
from audit.loaders.records import load_records


def _keys(tmp_path: Path) -> pl.DataFrame:
    """Chat key tables of two 'shards' of real records with copies and repeats across them."""
    records: list[dict[str, Any]] = realsamples.load(realsamples.LCS_CHAT)
    records += [json.loads(json.dumps(records[i])) for i in (1, 2, 2, 7)]  # exact copies
    records[20]["conversations"][1]["value"] += "!"  # same id and image, other turns
    records[5]["image"] = records[6]["image"]  # a repeated image, different ids
    tables = []
    for shard, part in enumerate((records[:12], records[12:])):
        path = tmp_path / f"part-{shard}.json"
        path.write_text(json.dumps(part), encoding="utf-8")
        loaded = load_records(path, "lcs-chat")
        tables.append(crossrecord.chat_keys(chat_tables(loaded.records, None), str(path), shard))
    return pl.concat(tables)


def _partitions(keys: pl.DataFrame, column: str, n: int = 3) -> list[pl.DataFrame]:
    bucket = keys[column].hash(7) % n
    return [keys.filter(bucket == i) for i in range(n)]


def test_duplicate_rules_per_partition_equal_the_whole(tmp_path: Path) -> None:
    keys = _keys(tmp_path)
    whole, counts = crossrecord.duplicate_counts(keys, "d")
    assert counts == {"repeated_ids": 4, "repeated_images": 9, "exact_duplicates": 3}
    by_id = _partitions(keys, "id")
    parts = [f for p in by_id for f in crossrecord.exact_duplicates(p, "d")]
    assert sorted(parts, key=lambda f: (f.file, f.index or 0)) == sorted(
        whole, key=lambda f: (f.file, f.index or 0)
    )
    assert sum(crossrecord.repeats(p, "id") for p in by_id) == counts["repeated_ids"]
    by_image = _partitions(keys, "image")
    assert sum(crossrecord.rows_sharing(p, "image") for p in by_image) == counts["repeated_images"]


@pytest.mark.parametrize("n", [1, 2, 5])
def test_crossfile_compare_per_id_partition_equals_the_whole(tmp_path: Path, n: int) -> None:
    chat: list[dict[str, Any]] = realsamples.load(realsamples.CC3M_CHAT)
    meta = [
        {"id": r["id"], "image": r["image"], "caption": r["conversations"][1]["value"], "url": "u"}
        for r in chat
    ]
    meta[2]["caption"] = "other"
    meta[4]["image"] = "other.jpg"
    del meta[0]
    chat_path, meta_path = tmp_path / "chat.json", tmp_path / "metadata.json"
    chat_path.write_text(json.dumps(chat), encoding="utf-8")
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    chat_keys = crossrecord.chat_keys(
        chat_tables(load_records(chat_path, "cc3m-chat").records, None), str(chat_path)
    )
    loaded = load_records(meta_path, "cc3m-metadata")
    meta_keys = crossrecord.metadata_keys(metadata_table(loaded.records, None), str(meta_path))
    refs = (
        FileRef("d", str(chat_path), "cc3m-chat"),
        FileRef("d", str(meta_path), "cc3m-metadata"),
    )
    whole, stats = crossfile.compare(chat_keys, refs[0], meta_keys, refs[1])
    found, summed = [], dict.fromkeys(stats, 0)
    for left, right in zip(
        _partitions(chat_keys, "id", n), _partitions(meta_keys, "id", n), strict=True
    ):
        part, part_stats = crossfile.compare(left, refs[0], right, refs[1])
        found += part
        summed = {k: summed[k] + part_stats[k] for k in summed}
    assert sorted(found, key=repr) == sorted(whole, key=repr)
    assert summed == stats
    assert {str(f.code) for f in whole} == {
        "xfile.caption_mismatch",
        "xfile.image_mismatch",
        "xfile.missing_metadata",
    }
