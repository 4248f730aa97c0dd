"""The URL stage on Spark: the same findings, counts, stand-ins and opt-outs as the local engine,
a re-run that asks the servers nothing, and one server's spellings probed in one task."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import pytest
from httpserver import JPEG, HttpServer, Reply

from audit.config import EngineConfig, UrlConfig
from audit.models import UrlRef
from audit.probes.urls import UrlSource, audit_urls
from audit.results import UrlsResult
from audit.store import Store
from audit.store.urls import opt_out_kinds

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.spark

IMAGE = {"Content-Type": "image/jpeg"}
ENGINE = EngineConfig(name="spark", master="local[2]")


@pytest.fixture
def server() -> Iterator[HttpServer]:
    with HttpServer() as srv:
        srv.route("/robots.txt", Reply(200, {"Content-Type": "text/plain"}, ROBOTS))
        srv.route("/unavailable.png", Reply(200, IMAGE, JPEG))
        for i in range(4):
            srv.route(f"/live/{i}.jpg", Reply(200, IMAGE, JPEG[:-2] + bytes([i]) + JPEG[-2:]))
            srv.route(f"/dead/{i}.jpg", Reply(302, {"Location": "/unavailable.png"}))
        srv.route("/busy.jpg", Reply(429, {"Retry-After": "0"}), Reply(200, IMAGE, JPEG))
        srv.route("/noai.jpg", Reply(200, {**IMAGE, "X-Robots-Tag": "noai"}, JPEG[:-2] + b"x"))
        srv.route("/img/kept.jpg", Reply(200, IMAGE, JPEG[:-2] + b"y" + JPEG[-2:]))
        yield srv


ROBOTS = b"User-agent: GPTBot\nDisallow: /img/\n"


def settings(**changes: object) -> UrlConfig:
    base = UrlConfig(
        allow_networks=["127.0.0.0/8"],
        timeout_seconds=3.0,
        backoff_seconds=0.01,
        workers=8,
        placeholder_min_urls=3,
    )
    return msgspec.structs.replace(base, **changes)


def refs(server: HttpServer) -> list[UrlRef]:
    paths = [
        *(f"/live/{i}.jpg" for i in range(4)),
        *(f"/dead/{i}.jpg" for i in range(4)),
        "/gone.jpg",
        "/busy.jpg",
        "/noai.jpg",
        "/img/kept.jpg",
        "/live/0.jpg",  # two records, one URL
        "/dead/1.jpg",  # two records of a stand-in: both counted under "placeholder"
    ]
    urls = [server.url(p) for p in paths] + ["not a url"]
    return [UrlRef(i, f"r{i}", u) for i, u in enumerate(urls)]


def on_spark(
    spark: SparkSession, server_refs: list[UrlRef], tmp_path: Path, **changes: object
) -> UrlsResult:
    from audit.engines.spark import caches
    from audit.engines.spark.findingtable import publish
    from audit.engines.spark.urlrefs import from_refs
    from audit.engines.spark.urls import probe_file

    state = tmp_path / "state.sqlite"
    records, count = from_refs(spark, server_refs), len(server_refs)
    with caches.scratch(state) as scratch:
        result, frame, _ = probe_file(
            spark, records, count, settings(**changes), state, scratch, dataset="d", file="m"
        )
        examples, totals = publish(frame, tmp_path / "findings", examples_per_code=8)
    return msgspec.structs.replace(result, findings=examples, finding_totals=totals)


def table(spark: SparkSession, result: UrlsResult) -> Counter[tuple[str, int | None, str]]:
    assert result.finding_totals is not None
    rows = spark.read.parquet(result.finding_totals.location).collect()
    return Counter((r["file"], r["index"], r["code"]) for r in rows)


def test_spark_gives_the_local_engines_findings_and_counts(
    spark: SparkSession, server: HttpServer, tmp_path: Path
) -> None:
    from audit.engines.spark.urls import audit_urls as on_spark

    given = refs(server)
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps([{"id": r.record_id, "url": r.url} for r in given]))
    sources = [UrlSource("d", str(meta))]
    with Store(tmp_path / "local.sqlite") as store:
        local = audit_urls(sources, settings(), store)
        local_kinds = opt_out_kinds(store, [r.url for r in given])
    with Store(tmp_path / "state.sqlite") as store:
        remote = on_spark(sources, settings(), tmp_path / "state.sqlite", ENGINE, store=store)
        assert opt_out_kinds(store, [r.url for r in given]) == local_kinds  # for the licences
    assert table(spark, remote) == Counter((f.file, f.index, f.code) for f in local.findings)
    same = ("status_counts", "urls", "unique_urls", "referenced", "opt_out", "worst_domains")
    for field in same:
        assert getattr(remote.totals, field) == getattr(local.totals, field), field
    assert remote.placeholders == local.placeholders and remote.placeholders
    assert remote.opt_outs == local.opt_outs and len(remote.opt_outs) == 2
    assert len(local_kinds) == 2


def test_a_rerun_asks_the_servers_nothing(
    spark: SparkSession, server: HttpServer, tmp_path: Path
) -> None:
    given = refs(server)
    folder = tmp_path / "nightly[1]"  # a folder, not a glob pattern, to Spark's readers too
    folder.mkdir()
    first = on_spark(spark, given, folder)
    asked = server.hits.total()
    again = on_spark(spark, given, folder)
    assert server.hits.total() == asked
    assert (again.totals.probed, again.totals.cached) == (0, first.totals.unique_urls)
    assert again.totals.status_counts == first.totals.status_counts
    assert again.opt_outs == first.opt_outs and again.placeholders == first.placeholders


def test_one_servers_spellings_are_probed_in_one_task(
    spark: SparkSession, server: HttpServer, tmp_path: Path
) -> None:
    """per_host holds across the cluster: the task that has one spelling has them all."""
    from audit.engines.spark import urls as spark_urls
    from audit.engines.spark.urlrefs import from_refs

    server.route("/slow.jpg", Reply(200, IMAGE, JPEG, delay=0.05))
    spellings = ("127.0.0.1", "localhost", "127.1", "2130706433")
    given = [f"http://{h}:{server.port}/slow.jpg?n={i}" for h in spellings for i in range(3)]
    records = from_refs(spark, [UrlRef(i, None, u) for i, u in enumerate(given)])
    state = tmp_path / "state.sqlite"
    probed = spark_urls._probe(spark, records, settings(per_host=1), state, time.time(), tasks=4)
    tasks = (
        probed.where("kind = 'url'")
        .rdd.mapPartitionsWithIndex(lambda i, rows: [(i, row["url"]) for row in rows])
        .collect()
    )
    assert len(tasks) == len(given)
    assert len({task for task, _ in tasks}) == 1
    assert server.max_active <= 1
