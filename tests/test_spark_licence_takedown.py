"""The licence and takedown stages on Spark give the local engine's findings and totals."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import pytest

from audit import config as config_mod
from audit import demodata
from audit.config import EngineConfig
from audit.demo import plant_takedown, write_config
from audit.findings import Finding
from audit.licensing import license_dataset
from audit.results import FindingTotals
from audit.store import Store
from audit.takedown import blocklist_findings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.spark

ENGINE = EngineConfig(name="spark", master="local[2]")
#: uses under which the demo's records are forbidden, conditional and unknown: per-record
#: findings as well as the grouped ones
USES = ["commercial/train", "research/redistribute-images", "commercial/redistribute-annotations"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> config_mod.Config:
    folder = tmp_path_factory.mktemp("spark-demo")
    datasets = demodata.build(folder, "http://127.0.0.1:9")
    config = config_mod.load(write_config(folder, datasets, "http://127.0.0.1:9"))
    plant_takedown(config)
    return config


def everything(findings: list[Finding], totals: FindingTotals | None) -> list[Finding]:
    """All findings of a Spark stage, read back from its table."""
    from audit.engines.spark.findingtable import read_back

    assert totals is not None, "the stage ran on Spark"
    return list(read_back(totals)) if totals.total else []


def table_verdicts(folder: Path) -> dict[int, str]:
    """The verdict table a Spark licence stage left (index, verdict) as the local engine's dict."""
    import pyarrow.parquet as pq

    rows = pq.read_table(folder).to_pylist()
    assert len({row["index"] for row in rows}) == len(rows), "one verdict per record"
    return {row["index"]: row["verdict"] for row in rows}


def multiset(found: list[Finding]) -> Counter[tuple[str, int | None, str, str]]:
    return Counter((f.file, f.index, f.code, f.message) for f in found)


def test_licence_verdicts_on_spark_equal_the_local_engines(
    spark: SparkSession, demo: config_mod.Config, tmp_path: Path
) -> None:
    from audit.engines.spark.licence_batches import SparkLicensing

    codes: Counter[str] = Counter()
    for ds in demo.datasets:
        local_verdicts: dict[int, str] = {}
        local = license_dataset(ds, demo, uses=USES, verdicts_out=local_verdicts)
        job = SparkLicensing(ENGINE, verdicts_table=tmp_path / f"{ds.name}-verdicts")
        result = license_dataset(ds, demo, uses=USES, assess_file=job)
        result = job.publish(result, tmp_path / ds.name)
        spark_verdicts = table_verdicts(tmp_path / f"{ds.name}-verdicts")
        found = everything(result.findings, result.finding_totals)
        assert multiset(found) == multiset(local.findings), ds.name
        assert result.finding_counts() == local.finding_counts()
        assert set(result.findings) <= set(local.findings), "examples are real findings"
        stripped = msgspec.structs.replace(result, findings=[], finding_totals=None)
        assert stripped == msgspec.structs.replace(local, findings=[]), "the same statistics"
        assert spark_verdicts == local_verdicts
        codes.update(f.code for f in found)
    assert codes["license.forbidden"] > 10, "per-record findings were made in executors"
    assert codes["license.conditional"] and codes["license.summary"] == len(demo.datasets)


def test_takedown_matches_on_spark_equal_the_local_engines(
    spark: SparkSession, demo: config_mod.Config, tmp_path: Path
) -> None:
    from audit.engines.spark.takedown_batches import SparkMatching

    present = 0
    with Store(demo.path(demo.state)) as store:
        for ds in demo.datasets:
            local = blocklist_findings(demo, store, datasets=[ds.name])
            match = SparkMatching(ENGINE, tmp_path / ds.name)
            result = blocklist_findings(demo, store, datasets=[ds.name], match_records=match)
            found = everything(result.findings, result.finding_totals)
            assert multiset(found) == multiset(local.findings), ds.name
            stripped = msgspec.structs.replace(result, findings=[], finding_totals=None)
            assert stripped == msgspec.structs.replace(local, findings=[])
            present += result.present
    assert present >= 1, "the demo's taken-down image is found"


def test_the_license_command_on_spark_prints_and_writes_what_the_local_one_does(
    spark: SparkSession,
    demo: config_mod.Config,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from audit.cli import main

    outputs = {}
    for engine in ("local", "spark"):
        found = tmp_path / f"{engine}.jsonl"
        args = ["license", "--config", str(demo.path("audit.toml")), "--purpose", "commercial"]
        code = main([*args, "--engine", engine, "--findings", str(found)])
        lines = sorted(found.read_text().splitlines())
        outputs[engine] = (code, capsys.readouterr().out, lines)
    assert outputs["spark"] == outputs["local"]
    assert outputs["spark"][0] == 1 and outputs["spark"][2], "forbidden records found"


#: a line of a shard that is not a record: the loader leaves it out with a finding, so the
#: positions after it are not the records' ordinals
NOT_A_RECORD = "[1, 2]"


@pytest.fixture(scope="module")
def shard_set(demo: config_mod.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's LCS chat records as three JSON Lines shards, one line in the second not a record."""
    lcs = next(ds for ds in demo.datasets if ds.name == "lcs")
    assert lcs.chat is not None
    records = json.loads(demo.path(lcs.chat).read_text())
    folder = tmp_path_factory.mktemp("lcs-shards")
    lines = [json.dumps(r) for r in records]
    shards = [lines[:10], [*lines[10:13], NOT_A_RECORD, *lines[13:20]], lines[20:]]
    for n, shard in enumerate(shards):
        (folder / f"train-{n:05d}-of-00003.jsonl").write_text("\n".join(shard) + "\n")
    return folder


def sharded(demo: config_mod.Config, folder: Path) -> tuple[config_mod.DatasetConfig, int]:
    """The LCS dataset with its chat records read from ``folder``, and the set's elements."""
    lcs = next(ds for ds in demo.datasets if ds.name == "lcs")
    elements = sum(len(p.read_text().splitlines()) for p in folder.iterdir())
    return msgspec.structs.replace(lcs, name="lcs-shards", chat=str(folder)), elements


def test_licences_of_a_shard_set_on_spark_equal_the_local_engines_and_name_the_shard(
    spark: SparkSession, demo: config_mod.Config, shard_set: Path, tmp_path: Path
) -> None:
    from audit.engines.spark.licence_batches import SparkLicensing

    ds, elements = sharded(demo, shard_set)
    local_verdicts: dict[int, str] = {}
    local = license_dataset(ds, demo, uses=USES, verdicts_out=local_verdicts)
    job = SparkLicensing(ENGINE, verdicts_table=tmp_path / "verdicts")
    result = license_dataset(ds, demo, uses=USES, assess_file=job)
    result = job.publish(result, tmp_path / "table")
    spark_verdicts = table_verdicts(tmp_path / "verdicts")
    found = everything(result.findings, result.finding_totals)
    assert multiset(found) == multiset(local.findings)
    stripped = msgspec.structs.replace(result, findings=[], finding_totals=None)
    assert stripped == msgspec.structs.replace(local, findings=[]), "the same statistics"
    assert result.records == elements - 1, "every record of every shard, the bad line left out"
    # verdicts are keyed by position in the whole set: every element but the bad line
    bad = 10 + 3
    assert spark_verdicts == local_verdicts
    assert sorted(spark_verdicts) == [p for p in range(elements) if p != bad]
    # a record's finding names its shard and its position within it (after the bad line too)
    per_record = [(f.file, f.index, f.record_id) for f in found if f.index is not None]
    assert {Path(file).parent for file, _, _ in per_record} == {shard_set}
    for file, index, record_id in per_record:
        line = Path(file).read_text().splitlines()[index or 0]
        assert str(json.loads(line)["id"]) == record_id, (file, index)
    after_bad = [i for file, i, _ in per_record if file.endswith("00001-of-00003.jsonl")]
    assert max(i or 0 for i in after_bad) > 3, "a finding after the second shard's bad line"


#: the paths this test process opened while the flag was up (Python-level opens: pyarrow's own
#: C++ reads are not seen, so the test uses JSON Lines shards, which Python opens)
_OPENED: list[str] = []
_WATCHING: list[bool] = [False]


def _watch_opens(event: str, args: tuple[object, ...]) -> None:
    if _WATCHING[0] and event == "open" and isinstance(args[0], str | os.PathLike):
        _OPENED.append(os.fspath(args[0]))


def test_on_spark_the_driver_never_opens_a_shard_of_the_licence_stage(
    spark: SparkSession, demo: config_mod.Config, shard_set: Path, tmp_path: Path
) -> None:
    """Executors run in their own Python processes (local mode too), so an audit hook in this
    process sees what the driver opens and nothing an executor does. As a control, the same
    hook sees the local engine open every shard."""
    from audit.engines.spark.licence_batches import SparkLicensing

    sys.addaudithook(_watch_opens)  # stays for the process; inert unless the flag is up
    ds, _ = sharded(demo, shard_set)  # its kind is configured: no shard is sampled for it
    shards = {str(p) for p in shard_set.iterdir()}
    opened = {}
    for engine in ("local", "spark"):
        job = SparkLicensing(ENGINE, tmp_path / "verdicts") if engine == "spark" else None
        _OPENED.clear()
        _WATCHING[0] = True
        try:
            result = license_dataset(ds, demo, uses=USES, assess_file=job)
        finally:
            _WATCHING[0] = False
        opened[engine] = shards & set(_OPENED)
        if job is not None:
            job.publish(result, tmp_path / "table")
        assert result.records > 20
    assert opened["local"] == shards, "the hook sees a shard being read"
    assert opened["spark"] == set(), "the Spark driver read no record"


def test_license_verdicts_file_on_spark_is_the_local_engines(
    spark: SparkSession,
    demo: config_mod.Config,
    shard_set: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from audit.cli import main

    lcs = next(ds for ds in demo.datasets if ds.name == "lcs")
    assert lcs.metadata is not None
    written = {}
    for engine in ("local", "spark"):
        out = tmp_path / f"{engine}.jsonl"
        args = ["license", str(shard_set), "--kind", "lcs-chat", "--source", "laion"]
        args += ["--metadata", str(demo.path(lcs.metadata)), "--purpose", "commercial"]
        code = main([*args, "--engine", engine, "--verdicts", str(out)])
        capsys.readouterr()
        written[engine] = (code, out.read_text())
    assert written["spark"] == written["local"]
    rows = [json.loads(line) for line in written["spark"][1].splitlines()]
    assert len(rows) == 24 and rows[0]["file"].endswith("train-00000-of-00003.jsonl")
    assert written["spark"][0] == 1 and {r["verdict"] for r in rows} == {"forbidden"}


@pytest.fixture(scope="module")
def cc3m_sharded(demo: config_mod.Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's CC-3M chat records as three JSON Lines shards (one line in the second not a
    record, before the taken-down image's record) and its metadata as one Parquet shard."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cc3m = next(ds for ds in demo.datasets if ds.name == "cc3m")
    assert cc3m.chat is not None and cc3m.metadata is not None
    folder = tmp_path_factory.mktemp("cc3m-shards")
    (folder / "chat").mkdir()
    lines = [json.dumps(r) for r in json.loads(demo.path(cc3m.chat).read_text())]
    shards = [lines[:7], [*lines[7:10], NOT_A_RECORD, *lines[10:17]], lines[17:]]
    for n, shard in enumerate(shards):
        (folder / "chat" / f"train-{n:05d}-of-00003.jsonl").write_text("\n".join(shard) + "\n")
    metadata = json.loads(demo.path(cc3m.metadata).read_text())
    pq.write_table(pa.Table.from_pylist(metadata), folder / "metadata.parquet")
    return folder


def test_takedown_matches_of_shard_sets_on_spark_equal_the_local_engines_and_name_the_shard(
    spark: SparkSession, demo: config_mod.Config, cc3m_sharded: Path, tmp_path: Path
) -> None:
    """Also: the Spark driver opens no shard (the audit hook of the licence test above; the
    local engine as its control). The blocklist holds content hashes: executors hash too."""
    from audit.engines.spark.takedown_batches import SparkMatching

    sys.addaudithook(_watch_opens)
    cc3m = next(ds for ds in demo.datasets if ds.name == "cc3m")
    ds = msgspec.structs.replace(
        cc3m,
        name="cc3m-shards",
        chat=str(cc3m_sharded / "chat"),
        metadata=str(cc3m_sharded / "metadata.parquet"),
    )
    config = msgspec.structs.replace(demo, datasets=[*demo.datasets, ds])
    shards = {str(p) for p in (cc3m_sharded / "chat").iterdir()}
    results, opened = {}, {}
    with Store(demo.path(demo.state)) as store:
        for engine in ("local", "spark"):
            match = SparkMatching(ENGINE, tmp_path) if engine == "spark" else None
            _OPENED.clear()
            _WATCHING[0] = True
            try:
                if match is None:
                    results[engine] = blocklist_findings(config, store, datasets=[ds.name])
                else:
                    results[engine] = blocklist_findings(
                        config, store, datasets=[ds.name], match_records=match
                    )
            finally:
                _WATCHING[0] = False
            opened[engine] = shards & set(_OPENED)
    local, result = results["local"], results["spark"]
    found = everything(result.findings, result.finding_totals)
    assert multiset(found) == multiset(local.findings)
    stripped = msgspec.structs.replace(result, findings=[], finding_totals=None)
    assert stripped == msgspec.structs.replace(local, findings=[])
    assert result.records == 39 and not result.unreadable
    named = {(Path(f.file).name, f.index, f.code) for f in found}
    assert named == {
        ("train-00001-of-00003.jsonl", 10, "takedown.present"),  # after the bad line
        ("metadata.parquet", 15, "takedown.present"),
    }
    assert opened["local"] == shards, "the hook sees a shard being read"
    assert opened["spark"] == set(), "the Spark driver read no record"


def test_an_unreadable_shard_is_one_line_and_exit_3_on_both_engines(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The executor's error comes back to the driver as the local engine's one line."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from audit.cli import main

    conversation = [
        {"from": "human", "value": "<image>\nWhat?"},
        {"from": "gpt", "value": "A cat."},
    ]
    rows = [
        {"id": str(i), "image": f"coco/train2017/{i:012d}.jpg", "conversations": conversation}
        for i in range(5)
    ]
    good = tmp_path / "set" / "train-00000-of-00002.parquet"
    good.parent.mkdir()
    pq.write_table(pa.Table.from_pylist(rows), good)
    data = good.read_bytes()  # the second: Parquet's magic at both ends, nothing readable
    (good.parent / "train-00001-of-00002.parquet").write_bytes(data[:4] + bytes(50) + data[-8:])
    said = {}
    for engine in ("local", "spark"):
        code = main(["license", str(good.parent), "--engine", engine])
        err = [line for line in capsys.readouterr().err.splitlines() if "llava-audit" in line]
        said[engine] = (code, err)
    assert said["spark"] == said["local"]
    assert said["spark"][0] == 3 and len(said["spark"][1]) == 1
    assert "train-00001-of-00002.parquet" in said["spark"][1][0]


def test_licences_joined_with_a_parquet_metadata_shard_on_spark_equal_the_local_engines(
    spark: SparkSession,
    demo: config_mod.Config,
    shard_set: Path,
    tmp_path: Path,
) -> None:
    """The metadata join made in executors gives the local verdicts: SBU's host (a URL from the
    join) decides a record's source, and a later entry of a key replaces an earlier one."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from audit.engines.spark.licence_batches import SparkLicensing

    lcs = next(ds for ds in demo.datasets if ds.name == "lcs")
    assert lcs.chat is not None
    records = json.loads(demo.path(lcs.chat).read_text())
    host = ["http://static.flickr.com/{}.jpg", "http://example.org/{}.jpg"]
    rows = [
        {"id": str(r["id"]), "image": r["image"], "url": host[n % 2].format(n)}
        for n, r in enumerate(records)
    ]
    rows += [{**row, "url": host[1].format("again")} for row in rows[:4]]  # the later one wins
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "meta.parquet")
    ds = msgspec.structs.replace(
        lcs, chat=str(shard_set), metadata=str(tmp_path / "meta.parquet"), source=None
    )
    local_verdicts: dict[int, str] = {}
    local = license_dataset(ds, demo, uses=USES, verdicts_out=local_verdicts)
    job = SparkLicensing(ENGINE, verdicts_table=tmp_path / "verdicts")
    result = license_dataset(ds, demo, uses=USES, assess_file=job)
    result = job.publish(result, tmp_path / "table")
    spark_verdicts = table_verdicts(tmp_path / "verdicts")
    assert multiset(everything(result.findings, result.finding_totals)) == multiset(local.findings)
    stripped = msgspec.structs.replace(result, findings=[], finding_totals=None)
    assert stripped == msgspec.structs.replace(local, findings=[])
    assert spark_verdicts == local_verdicts
    sbu = sum(local.by_source["sbu"]["commercial/train"].values())
    assert sbu == len(records) // 2 - 2, "SBU by the joined host, less the two replaced"
