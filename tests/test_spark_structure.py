"""The structure stage on Spark (local[2]) finds what the local engine finds: the same
(file, index, code) multiset in its Parquet table, the same statistics, console and exit code."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.dataset as pads
import pytest
import realsamples
from shardsets import write_jsonl, write_parquet

from audit import demodata
from audit.cli import main
from audit.config import EngineConfig
from audit.results import StructureResult
from audit.structure import check_files

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.spark
SPARK = EngineConfig(name="spark", master="local[2]")
Key = tuple[str, int | None, str]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    demodata.build(root, "http://127.0.0.1:9")
    return root


def _table(location: str) -> Counter[Key]:
    table = pads.dataset(location, format="parquet", partitioning="hive").to_table()
    columns = (table[name].to_pylist() for name in ("file", "index", "code"))
    return Counter((str(f), i, str(c)) for f, i, c in zip(*columns, strict=True))


def _same(paths: list[Path], tmp_path: Path) -> tuple[StructureResult, StructureResult]:
    """Both engines on ``paths``; asserts everything but the findings' order is the same."""
    local = check_files(paths, workers=1)
    spark = check_files(paths, engine=SPARK, findings_dir=str(tmp_path / "findings"))
    assert spark.finding_totals is not None
    assert _table(spark.finding_totals.location) == Counter(
        (f.file, f.index, f.code) for f in local.findings
    )
    assert spark.finding_counts() == local.finding_counts()
    assert (spark.files, spark.records, spark.unreadable) == (
        local.files,
        local.records,
        local.unreadable,
    )
    return local, spark


def test_demo_datasets_give_the_local_findings(
    spark: SparkSession, demo: Path, tmp_path: Path
) -> None:
    for folder in sorted(p for p in demo.iterdir() if p.is_dir()):
        # chat and metadata files together: the pair's cross-file checks run on Spark too
        paths = sorted(p for p in folder.glob("*.json"))
        local, on_spark = _same(paths, tmp_path / folder.name)
        assert local.findings, folder  # every demo dataset has planted defects
        if len(paths) > 1:
            assert any(stats.crossfile for stats in on_spark.files.values()), folder
        # few findings: the examples are all of them (file-level lines included)
        assert Counter(on_spark.findings) == Counter(local.findings)


def test_broken_real_records_give_the_local_findings(spark: SparkSession, tmp_path: Path) -> None:
    records = realsamples.load(realsamples.LCS_CHAT)
    records[3]["conversations"][1]["from"] = "assistant"
    records[5]["conversations"][0]["value"] = "no image token here"
    records[8]["id"] = 8
    del records[11]["image"]
    broken = tmp_path / "blip_laion_cc_sbu_558k.json"
    broken.write_text(json.dumps(records), encoding="utf-8")
    paths = [broken, realsamples.CC3M_CHAT, realsamples.INSTRUCT]
    local, _ = _same(paths, tmp_path)
    assert {f.code for f in local.findings} >= {"turn.role", "image_token.count"}


def test_many_findings_reach_the_driver_as_counts_and_examples(
    spark: SparkSession, tmp_path: Path
) -> None:
    records = realsamples.load(realsamples.LCS_CHAT) * 30  # 600 records, 580 repeated ids
    for record in records[::2]:
        record["conversations"][1]["from"] = "assistant"
    path = tmp_path / "blip_laion_cc_sbu_558k.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    local, on_spark = _same([path], tmp_path)
    roles = [f for f in on_spark.findings if f.code == "turn.role"]
    assert on_spark.finding_counts()[("turn.role", roles[0].severity)] == 300
    # only the first examples of each code reach the driver, in the local engine's order
    assert roles == [f for f in local.findings if f.code == "turn.role"][:8]


def test_check_console_and_exit_code_match_the_local_engine(
    spark: SparkSession, demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = demo / "LLaVA-Pretrain"
    paths = [str(p) for p in sorted(folder.glob("*.json"))]
    outputs = []
    for engine in ([], ["--engine", "spark", "--master", "local[2]"]):
        out = tmp_path / f"findings{len(engine)}.jsonl"
        code = main(["check", *paths, "--findings", str(out), *engine])
        lines = Counter(out.read_text(encoding="utf-8").splitlines())
        outputs.append((code, capsys.readouterr().out, lines))
    assert outputs[0][0] == 1
    assert outputs[1] == outputs[0]


def test_check_json_summary_matches_and_findings_dir_keeps_the_table(
    spark: SparkSession, demo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = [str(p) for p in sorted((demo / "LLaVA-CC3M-Pretrain-595K").glob("*.json"))]
    assert main(["check", *paths, "--json"]) == 1
    local = capsys.readouterr().out
    table = tmp_path / "table"
    args = ["check", *paths, "--json", "--engine", "spark", "--findings-dir", str(table)]
    assert main(args) == 1
    assert capsys.readouterr().out == local
    by_code = json.loads(local)["by_code"]
    assert sum(_table(str(table)).values()) == sum(by_code.values())


def test_unreadable_file_is_exit_3_on_spark_too(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "chat.json"
    bad.write_bytes(b"\xff\xfe not json at all")
    args = ["check", str(bad), realsamples.CC3M_CHAT.as_posix()]
    local = (main(args), capsys.readouterr())
    on_spark = (main([*args, "--engine", "spark"]), capsys.readouterr())
    assert local[0] == on_spark[0] == 3
    assert local[1].out == on_spark[1].out
    assert local[1].err.splitlines()[-1] == on_spark[1].err.splitlines()[-1]


def _planted_shards(tmp_path: Path) -> list[Path]:
    """LCS records in 3 JSON Lines shards (a copy and a repeated id across shards), and a CC-3M
    chat set in 2 Parquet shards with its metadata in 2 JSON Lines shards (cross-file defects)."""
    records = realsamples.load(realsamples.LCS_CHAT)
    records[2]["conversations"][0]["from"] = "bot"
    records[16] = json.loads(json.dumps(records[1]))  # an exact copy, in another shard
    records[18]["id"] = records[4]["id"]
    write_jsonl(records, tmp_path / "lcs", 3)
    chat = realsamples.load(realsamples.CC3M_CHAT)
    meta = [
        {
            "id": r["id"],
            "image": r["image"],
            "caption": r["conversations"][1]["value"],
            "url": f"http://example.org/{r['id']}.jpg",
        }
        for r in chat
    ]
    meta[3]["caption"] = "a different caption"
    meta[1]["image"] = "GCC_train_000000000.jpg"
    meta.append({**meta[0], "id": "GCC_train_999999999"})
    meta.append({**meta[2]})  # a repeated id and URL in the metadata set
    write_parquet(chat, tmp_path / "chat", 2)
    write_jsonl(meta, tmp_path / "meta", 2)
    return [tmp_path / "lcs", tmp_path / "chat", tmp_path / "meta"]


def test_shard_sets_give_the_local_findings_and_cross_record_counts(
    spark: SparkSession, tmp_path: Path
) -> None:
    paths = _planted_shards(tmp_path / "in")
    local, on_spark = _same(paths, tmp_path)
    codes = {f.code for f in local.findings}
    assert {"record.duplicate", "xfile.caption_mismatch", "xfile.missing_chat"} <= codes
    meta = on_spark.files[str(paths[2])]
    assert meta.crossfile is not None and meta.crossfile.only_in_metadata == 1
    assert meta.repeated_urls == 2  # the missing_chat row reuses record 0's URL, and the copy
    duplicates = on_spark.files[str(paths[0])].duplicates
    assert duplicates is not None and duplicates.exact_duplicates == 1
    assert Counter(on_spark.findings) == Counter(local.findings)


def test_findings_dir_without_spark_is_one_usage_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["check", str(realsamples.CC3M_CHAT), "--findings-dir", str(tmp_path / "t")]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "--findings-dir applies to the spark engine only" in captured.err
    assert not (tmp_path / "t").exists()


def test_a_findings_dir_under_a_file_is_one_line_and_leaves_nothing(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The key tables wait beside the findings table: where that cannot be written, one line
    and exit 3 before any audit, never a traceback."""
    (tmp_path / "a-file").write_text("x", encoding="utf-8")
    table = tmp_path / "a-file" / "findings"
    args = ["check", str(realsamples.CC3M_CHAT), "--engine", "spark", "--findings-dir", str(table)]
    assert main(args) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"llava-audit: {table}: cannot write beside the findings table (File exists)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
