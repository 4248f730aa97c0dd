"""The URL stage's references of a shard set and of a LAION Parquet file: read in the Spark
executors (the driver opens no shard), with the local engine's findings, each naming its shard
and the index in it on both engines."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from httpserver import JPEG, HttpServer, Reply

from audit.config import EngineConfig, UrlConfig
from audit.errors import AuditError
from audit.findings import Finding
from audit.probes.urls import UrlSource, audit_urls
from audit.results import UrlsResult

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.spark

ENGINE = EngineConfig(name="spark", master="local[2]")
IMAGE = {"Content-Type": "image/jpeg"}
URLS = 300


@pytest.fixture(scope="module")
def server() -> Iterator[HttpServer]:
    """Every third path an image of its own, every seventh opted out; the rest are 404s."""
    with HttpServer() as srv:
        for i in range(0, URLS, 3):
            headers = {**IMAGE, "X-Robots-Tag": "noai"} if i % 7 == 0 else IMAGE
            srv.route(f"/img/{i}.jpg", Reply(200, headers, JPEG[:-2] + str(i).encode() + JPEG[-2:]))
        yield srv


def settings() -> UrlConfig:
    return UrlConfig(
        allow_networks=["127.0.0.0/8"], timeout_seconds=3.0, backoff_seconds=0.01, workers=8
    )


def metadata(server: HttpServer) -> list[dict[str, object]]:
    """Metadata records: a URL each (one repeated), a few without one, one not a URL."""
    rows: list[dict[str, object]] = []
    for i in range(URLS):
        rows.append({"id": f"r{i}", "url": server.url(f"/img/{i}.jpg"), "caption": "a cat"})
        if i % 50 == 10:
            rows.append({"id": f"n{i}", "caption": "no URL"})
    rows.append({"id": "again", "url": server.url("/img/3.jpg")})
    rows.append({"id": "bad", "url": "not a url"})
    return rows


def jsonl_set(rows: list[dict[str, object]], folder: Path, shards: int = 3) -> Path:
    """``rows`` as JSON Lines shards; a blank line in the middle of the second (not a record)."""
    folder.mkdir(parents=True)
    cut = [len(rows) * n // shards for n in range(shards + 1)]
    for n in range(shards):
        lines = [json.dumps(r) for r in rows[cut[n] : cut[n + 1]]]
        if n == 1:
            lines.insert(len(lines) // 2, "")
        (folder / f"meta-{n:05d}-of-{shards:05d}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def on_spark(spark: SparkSession, src: UrlSource, state: Path) -> tuple[UrlsResult, list[Finding]]:
    from audit.engines.spark.findingtable import read_back
    from audit.engines.spark.urls import audit_urls as spark_audit_urls

    result = spark_audit_urls([src], settings(), state / "state.sqlite", ENGINE)
    assert result.finding_totals is not None, "the stage ran on Spark"
    return result, list(read_back(result.finding_totals))


def named(found: list[Finding]) -> Counter[tuple[str, int | None, str]]:
    return Counter((f.file, f.index, f.code) for f in found)


def same_result(local: UrlsResult, remote: UrlsResult, remote_findings: list[Finding]) -> None:
    assert named(remote_findings) == named(local.findings)
    assert remote.opt_outs == local.opt_outs and remote.opt_outs
    for field in ("status_counts", "urls", "unique_urls", "referenced", "opt_out"):
        assert getattr(remote.totals, field) == getattr(local.totals, field), field


def record_at(file: str, index: int) -> dict[str, object]:
    """The record a finding names: the index-th record (non-blank line) of its shard."""
    if file.endswith(".parquet"):
        import pyarrow.parquet as pq

        return pq.read_table(file).slice(index, 1).to_pylist()[0]
    lines = [line for line in Path(file).read_text().splitlines() if line.strip()]
    return json.loads(lines[index])


#: the paths this test process opened while the flag is up (Python-level opens, as in
#: test_spark_licence_takedown: executors run in their own processes and are not seen)
_OPENED: list[str] = []
_WATCHING: list[bool] = [False]


def _watch_opens(event: str, args: tuple[object, ...]) -> None:
    if _WATCHING[0] and event == "open" and isinstance(args[0], str | os.PathLike):
        _OPENED.append(os.fspath(args[0]))


def test_a_sharded_metadata_sets_urls_on_spark_are_the_local_engines_read_in_executors(
    spark: SparkSession, server: HttpServer, tmp_path: Path
) -> None:
    """Findings name the shard and the record's index in it on both engines; the Spark
    driver opens no shard (the local engine, the control, opens each)."""
    folder = jsonl_set(metadata(server), tmp_path / "meta")
    src = UrlSource("d", str(folder))
    shards = {str(p) for p in folder.iterdir()}
    sys.addaudithook(_watch_opens)  # stays for the process; inert unless the flag is up
    opened, results = {}, {}
    for engine in ("local", "spark"):
        _OPENED.clear()
        _WATCHING[0] = True
        try:
            if engine == "local":
                local = audit_urls([src], settings(), tmp_path / "local.sqlite")
                results[engine] = local, local.findings
            else:
                results[engine] = on_spark(spark, src, tmp_path)
        finally:
            _WATCHING[0] = False
        opened[engine] = shards & set(_OPENED)
    assert opened["local"] == shards, "the hook sees a shard being read"
    assert opened["spark"] == set(), "the Spark driver read no URL"
    (local, _), (remote, found) = results["local"], results["spark"]
    same_result(local, remote, found)
    per_record = [f for f in found if f.index is not None]
    assert {f.file for f in per_record} == shards
    for f in per_record:
        record = record_at(f.file, f.index or 0)
        assert record["id"] == f.record_id and str(record["url"]) in f.message, f
    codes = Counter(f.code for f in per_record)
    assert codes["url.dead"] > 150 and codes["url.opt_out"] > 5 and codes["url.invalid"] == 1
    summary = [f for f in found if f.code == "url.stats"]
    assert [f.file for f in summary] == [str(folder)], "the set's summary names the set"


def test_a_laion_parquet_files_urls_on_spark_are_the_local_engines(
    spark: SparkSession, server: HttpServer, tmp_path: Path
) -> None:
    """LAION's layout (``URL``, ``TEXT``, ``key``): one file, and a folder of two shards."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {"URL": r.get("url"), "TEXT": r.get("caption"), "key": r["id"]} for r in metadata(server)
    ]
    one = tmp_path / "laion.parquet"
    pq.write_table(pa.Table.from_pylist(rows), one, row_group_size=64)
    parts = tmp_path / "parts"
    parts.mkdir()
    for n, half in enumerate((rows[:100], rows[100:])):
        pq.write_table(pa.Table.from_pylist(half), parts / f"part-{n:05d}.parquet")
    for path in (one, parts):
        src = UrlSource("laion", str(path))
        local = audit_urls([src], settings(), tmp_path / f"{path.name}.sqlite")
        state = tmp_path / f"spark-{path.stem}"
        state.mkdir()
        remote, found = on_spark(spark, src, state)
        same_result(local, remote, found)
        per_record = [f for f in found if f.index is not None]
        for f in per_record:
            assert record_at(f.file, f.index or 0)["key"] == f.record_id, f
        files = {Path(f.file).name for f in per_record}
        assert files == (
            {"laion.parquet"} if path == one else {"part-00000.parquet", "part-00001.parquet"}
        )


def test_an_unreadable_shard_of_urls_is_the_local_engines_one_error_on_spark(
    spark: SparkSession, server: HttpServer, tmp_path: Path
) -> None:
    """The first broken shard in set order is the error, with its line, and nothing is
    probed on either engine."""
    folder = jsonl_set(metadata(server), tmp_path / "meta")
    second = folder / "meta-00001-of-00003.jsonl"
    second.write_text(second.read_text().replace('"id": "r150"', '"id": r150', 1))
    third = folder / "meta-00002-of-00003.jsonl"
    third.write_text("{oops\n" + third.read_text())
    src = UrlSource("d", str(folder))
    asked = server.hits.total()
    errors = []
    for engine in ("local", "spark"):
        with pytest.raises(AuditError) as caught:
            if engine == "local":
                audit_urls([src], settings(), tmp_path / "local.sqlite")
            else:
                on_spark(spark, src, tmp_path)
        errors.append((caught.value.message, caught.value.exit_code))
    assert errors[0] == errors[1]
    assert errors[0][1] == 3 and str(second) in errors[0][0]
    assert server.hits.total() == asked, "nothing probed"


def test_the_coco_join_of_a_sharded_chat_on_spark_is_the_local_engines(
    spark: SparkSession, server: HttpServer, tmp_path: Path
) -> None:
    """Each executor reads its chat shard and joins it to the broadcast annotation URLs; the
    driver reads only the first shard's first records (the set's kind, as the licence stage
    guesses it), never another shard."""
    images = [{"id": k, "flickr_url": server.url(f"/img/{k}.jpg")} for k in range(0, URLS, 2)]
    annotations = tmp_path / "instances.json"
    annotations.write_text(json.dumps({"licenses": [], "images": images}))
    turns = [{"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "A cat."}]
    chat = [
        {"id": f"c{i}", "image": f"coco/train2017/{i:012d}.jpg", "conversations": turns}
        for i in range(URLS)
    ]
    folder = jsonl_set(chat, tmp_path / "chat")
    src = UrlSource("instruct", str(folder), coco_annotations=str(annotations))
    local = audit_urls([src], settings(), tmp_path / "local.sqlite")
    sys.addaudithook(_watch_opens)
    _OPENED.clear()
    _WATCHING[0] = True
    try:
        remote, found = on_spark(spark, src, tmp_path)
    finally:
        _WATCHING[0] = False
    first = str(folder / "meta-00000-of-00003.jsonl")
    assert {str(p) for p in folder.iterdir()} & set(_OPENED) <= {first}
    same_result(local, remote, found)
    per_record = [f for f in found if f.index is not None]
    assert len({f.file for f in per_record}) == 3
    for f in per_record:
        assert record_at(f.file, f.index or 0)["id"] == f.record_id, f
