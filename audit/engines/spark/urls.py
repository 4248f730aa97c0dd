"""The URL stage on Spark: the same probes, opt-outs, stand-ins, findings and counts as the local
engine (:mod:`audit.probes.urls`), with the URLs spread over the cluster by server.

Politeness is per server address, so the distinct hosts (far fewer than URLs) are resolved in
executors with the SSRF guard's own resolution and the URLs repartitioned by that address: every
URL of one server (``localhost`` and ``127.1`` alike) lands in one task, where the local engine's
batch probe runs in threads, so ``per_host`` and ``delay_seconds`` hold across the whole cluster.
Each origin's robots.txt and tdmrep.json go to the task of its server, ahead of its URLs.

Only stale or new URLs are probed: the URL and host-file caches are Parquet tables
(:mod:`audit.engines.spark.caches`) anti-joined at the start and merged into a new version at
the end. The cross-URL steps are Spark joins and aggregations around the local engine's pure
functions: opt-outs judged per origin (a cogroup of its URLs and its host files), stand-ins
detected over the only URLs that can be one (those sharing bytes or a redirect target with at
least ``placeholder_min_urls`` others), findings built per record in executors and counted
through the same tally keys. Only counts, the first findings per code, the stand-ins and the
opted-out records reach the driver.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import pyarrow as pa

from audit.config import Config, DatasetConfig, EngineConfig, UrlConfig
from audit.engines.spark import caches
from audit.engines.spark import urlsteps as steps
from audit.engines.spark.findingtable import SPARK_SCHEMA, publish, to_batch
from audit.engines.spark.session import session
from audit.loaders.urlsources import coco_url_refs, load_url_refs
from audit.models import UrlRef
from audit.probes.hostfiles import wanted_files
from audit.probes.http import TRANSIENT, UNCACHED, settings_fingerprint
from audit.probes.placeholders import detect
from audit.probes.urls import UrlSource, combine, sources_for, summary_finding, url_counts
from audit.probes.urls import _check as check_settings
from audit.results import OptOut, Placeholder, UrlsResult
from audit.store import Store
from audit.store.urls import Reservation, save_opt_outs

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_REF_SCHEMA = pa.schema([("index", pa.int64()), ("record_id", pa.string()), ("url", pa.string())])


def audit_urls(
    sources: Sequence[UrlSource],
    settings: UrlConfig,
    state: str | Path,
    engine: EngineConfig,
    *,
    findings_dir: str | Path | None = None,
    store: Store | None = None,
) -> UrlsResult:
    """:func:`audit.probes.urls.audit_urls` on Spark: the findings table goes to
    ``findings_dir`` (default ``<state folder>/spark-findings/urls``); given the run's state
    ``store``, each URL's judged opt-outs are saved there for the licence stage, as locally."""
    from audit.output.render.html import EXAMPLES_PER_CODE

    check_settings(settings)
    spark = session(engine)
    results: list[UrlsResult] = []
    frames: list[DataFrame] = []
    with caches.scratch(state) as scratch:
        for n, src in enumerate(sources):
            refs = (
                coco_url_refs(src.path, src.coco_annotations)
                if src.coco_annotations
                else load_url_refs(src.path, src.column)
            )
            result, found, reserved = probe_file(
                spark, refs, settings, state, scratch / str(n), dataset=src.dataset, file=src.path
            )
            if store is not None:
                _save_opt_outs(spark, store, refs, reserved)
            results.append(result)
            frames.append(found)
        combined = combine(results)
        if not frames:
            return combined
        everything = functools.reduce(lambda a, b: a.unionByName(b), frames)
        location = Path(findings_dir or Path(state).parent / "spark-findings" / "urls")
        examples, totals = publish(everything, location, examples_per_code=EXAMPLES_PER_CODE)
    return msgspec.structs.replace(combined, findings=examples, finding_totals=totals)


def probe_file(
    spark: SparkSession,
    refs: Sequence[UrlRef],
    settings: UrlConfig,
    state: str | Path,
    scratch: Path,
    *,
    dataset: str,
    file: str,
    now: float | None = None,
) -> tuple[UrlsResult, DataFrame, dict[str, tuple[Reservation, ...]]]:
    """One URL file: its result (findings not yet set), the frame of all its findings (read
    from ``scratch``, a :func:`caches.scratch` folder that must outlive the frame) and the
    opted-out URLs with their opt-outs."""
    from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

    started = time.perf_counter()
    now = time.time() if now is None else now
    records = _records(spark, refs)
    unique = records.select("url").distinct().withColumn("key", F.sha2("url", 256))
    unique = unique.join(
        unique.select("url").mapInArrow(steps.origins, "url string, origin string"), "url"
    ).persist()
    fresh, cache = _fresh_probes(spark, unique, settings, state, now)
    todo = unique.join(fresh.select("key", "url"), ["key", "url"], "left_anti")
    held, host_cache, jobs = _host_file_jobs(spark, unique, settings, state, now)
    probed_rows = _probe(spark, todo, jobs, settings)
    probed = caches.staged(spark, probed_rows, scratch, steps.PROBED)
    kinds = {r["kind"]: int(r["count"]) for r in probed.groupBy("kind").count().collect()}
    new = probed.where(F.col("kind") == "url").select(*steps.PROBE_NAMES)
    new = new.withColumn("key", F.sha2("url", 256))
    fetched = probed.where(F.col("kind") == "file").select(
        "origin", "name", "fetched_at", "found", "body"
    )
    count = kinds.get("url", 0)
    if count:
        kept = new.where(~F.col("status").isin(*UNCACHED))
        kept = kept.withColumn("settings", F.lit(settings_fingerprint(settings)))
        caches.write(_merged(cache, kept, caches.URLS), caches.cache_folder(state, "urls"))
    if kinds.get("file"):
        keyed = fetched.withColumn("key", F.concat("origin", F.lit("\0"), "name"))
        caches.write(_merged(host_cache, keyed, caches.HOST_FILES), _host_folder(state))
    probes = fresh.unionByName(new.select(*fresh.columns)).join(
        unique.select("url", "origin"), "url"
    )
    result, found, reserved = _judge_and_count(
        spark,
        records,
        probes,
        held.unionByName(fetched),
        settings,
        dataset=dataset,
        file=file,
        probed=count,
    )
    unique.unpersist()
    seconds = time.perf_counter() - started
    totals = result.totals
    totals = msgspec.structs.replace(
        totals,
        seconds=round(seconds, 3),
        probed_per_second=round(count / seconds, 1) if seconds > 0 and count else None,
    )
    summary = summary_finding(totals, dataset, file)
    found = found.unionByName(spark.createDataFrame(pa.Table.from_batches([to_batch([summary])])))
    return msgspec.structs.replace(result, totals=totals, files=[totals]), found, reserved


def _records(spark: SparkSession, refs: Sequence[UrlRef]) -> DataFrame:
    table = pa.table(
        {
            "index": [r.index for r in refs],
            "record_id": [r.record_id for r in refs],
            "url": [r.url for r in refs],
        },
        schema=_REF_SCHEMA,
    )
    return spark.createDataFrame(table) if refs else spark.createDataFrame([], _ddl(_REF_SCHEMA))


def _ddl(schema: pa.Schema) -> str:
    kinds = {pa.int64(): "long", pa.string(): "string"}
    return ", ".join(f"{f.name} {kinds[f.type]}" for f in schema)


def _fresh_probes(
    spark: SparkSession, unique: DataFrame, settings: UrlConfig, state: str | Path, now: float
) -> tuple[DataFrame, DataFrame]:
    """The cached probes still fresh under this run's settings (as the local engine's TTLs
    judge them), and the whole cache table."""
    from pyspark.sql import functions as F  # noqa: N812

    cache = caches.read(spark, caches.cache_folder(state, "urls"), caches.URLS)
    cutoff = now - settings.ttl_days * 86400.0
    transient = now - min(settings.transient_ttl_days, settings.ttl_days) * 86400.0
    limit = F.when(F.col("status").isin(*TRANSIENT), transient).otherwise(cutoff)
    usable = cache.where(
        (F.col("settings") == settings_fingerprint(settings)) & (F.col("probed_at") >= limit)
    )
    fresh = unique.select("key", "url").join(usable.drop("settings"), ["key", "url"])
    return fresh.select("key", "url", *steps.PROBE_REST), cache


def _host_folder(state: str | Path) -> Path:
    return caches.cache_folder(state, "host-files")


def _host_file_jobs(
    spark: SparkSession, unique: DataFrame, settings: UrlConfig, state: str | Path, now: float
) -> tuple[DataFrame, DataFrame, DataFrame]:
    """The host files still fresh in the cache, the cache table, and the (origin, path) jobs
    that fetch the others: every origin of the file's URLs, each enabled file once."""
    from pyspark.sql import functions as F  # noqa: N812

    cache = caches.read(spark, _host_folder(state), caches.HOST_FILES)
    wanted = wanted_files(settings)
    cutoff = now - settings.robots_ttl_days * 86400.0
    held = cache.where(F.col("fetched_at") >= cutoff).drop("key")
    paths = spark.createDataFrame([(p,) for p in wanted], "path string")
    origins = unique.where(F.col("origin") != "").select("origin").distinct()
    jobs = origins.crossJoin(paths).join(
        held.select("origin", F.col("name").alias("path")), ["origin", "path"], "left_anti"
    )
    if not wanted:
        jobs = jobs.limit(0)
    wanted_held = held.where(F.col("name").isin(*wanted)) if wanted else held.limit(0)
    return wanted_held.join(origins, "origin", "left_semi"), cache, jobs


def _probe(spark: SparkSession, todo: DataFrame, jobs: DataFrame, settings: UrlConfig) -> DataFrame:
    """URL and host-file jobs keyed by server address, one task per group of servers."""
    from pyspark.sql import functions as F  # noqa: N812

    work = todo.select(
        "url", F.lit(None).cast("string").alias("origin"), F.lit(None).cast("string").alias("path")
    ).unionByName(jobs.select(F.concat("origin", "path").alias("url"), "origin", "path"))
    named = work.mapInArrow(
        steps.hosts, "url string, origin string, path string, host string"
    ).persist()
    first = named.groupBy("host").agg(F.first("url").alias("url"))
    servers = first.mapInArrow(
        functools.partial(steps.resolve, settings), "host string, server string"
    ).persist()
    count = servers.select("server").distinct().count()
    tasks = max(1, min(count, 2 * spark.sparkContext.defaultParallelism))
    keyed = named.join(servers, "host")
    return keyed.repartition(tasks, "server").mapInArrow(
        functools.partial(steps.probe_partition, settings), steps.PROBED
    )


def _merged(cache: DataFrame, new: DataFrame, schema: str) -> DataFrame:
    """The cache's rows not replaced by ``new``, and ``new`` (one row per key: latest wins)."""
    columns = [c.split()[0] for c in schema.split(", ")]
    replaced = cache.join(new.select("key"), "key", "left_anti")
    return replaced.select(*columns).unionByName(new.select(*columns))


def _judge_and_count(
    spark: SparkSession,
    records: DataFrame,
    probes: DataFrame,
    files: DataFrame,
    settings: UrlConfig,
    *,
    dataset: str,
    file: str,
    probed: int,
) -> tuple[UrlsResult, DataFrame, dict[str, tuple[Reservation, ...]]]:
    """Opt-outs per origin, stand-ins, then per-record findings and counts."""
    from pyspark.sql import functions as F  # noqa: N812

    probes = probes.persist()
    judged = (
        probes.groupBy("origin")
        .cogroup(files.groupBy("origin"))
        .applyInArrow(
            functools.partial(steps.judge_origin, settings), "url string, reservations string"
        )
        .withColumnRenamed("reservations", "opted")
    )
    probes, placeholders = _placeholders(spark, probes, settings.placeholder_min_urls)
    joined = (
        records.join(probes.drop("origin"), "url")
        .join(judged, "url", "left")
        .select("index", "record_id", "url", *steps.PROBE_REST, "opted")
        .persist()
    )
    found = joined.mapInArrow(functools.partial(steps.record_rows, dataset, file), SPARK_SCHEMA)
    counted = (
        joined.select("url", "status", "opted")
        .mapInArrow(steps.tallies, "status string, domain string, opted boolean")
        .groupBy("status", "domain", "opted")
        .count()
        .collect()
    )
    tallies = Counter({(r["status"], r["domain"], r["opted"]): int(r["count"]) for r in counted})
    unique = probes.count()
    stats = url_counts(tallies, unique=unique, file=file, probed=probed, seconds=0.0)
    opted = joined.where(F.col("opted").isNotNull()).select("index", "url", "opted").collect()
    reserved = {r["url"]: steps.decode_reservations(r["opted"]) for r in opted}
    opt_outs = sorted(
        OptOut(file, r["index"], r["url"], tuple(dict.fromkeys(x.kind for x in reserved[r["url"]])))
        for r in opted
    )
    probes.unpersist()
    result = UrlsResult(totals=stats, files=[stats], opt_outs=opt_outs, placeholders=placeholders)
    return result, found, reserved


def _placeholders(
    spark: SparkSession, probes: DataFrame, min_urls: int
) -> tuple[DataFrame, list[Placeholder]]:
    """Stand-ins by :func:`audit.probes.placeholders.detect`, run over the only URLs that can be
    one: images sharing their bytes or redirect target with at least ``min_urls`` URLs (a group
    below that is never flagged, so the result is the same as over every URL)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F  # noqa: N812

    images = probes.where(F.col("status") == "ok")
    targets = images.select("url", "final_url").mapInArrow(
        steps.targets, "url string, target string"
    )
    by_bytes = Window.partitionBy("sha256", "size")
    by_target = Window.partitionBy("target")
    candidates = (
        images.join(targets, "url")
        .withColumn("same_bytes", F.when(F.col("sha256").isNotNull(), F.count("*").over(by_bytes)))
        .withColumn(
            "same_target", F.when(F.col("target").isNotNull(), F.count("*").over(by_target))
        )
        .where((F.col("same_bytes") >= min_urls) | (F.col("same_target") >= min_urls))
        .select("url", *steps.PROBE_REST)
        .collect()
    )
    if not candidates:
        return probes, []
    results = {r["url"]: steps.probe_of(r.asDict()) for r in candidates}
    changed, found = detect(results, min_urls)
    moved = [(u, p.status, p.detail) for u, p in changed.items() if p.status != results[u].status]
    if not moved:
        return probes, found
    table = spark.createDataFrame(moved, "url string, new_status string, new_detail string")
    updated = (
        probes.join(F.broadcast(table), "url", "left")
        .withColumn("status", F.coalesce("new_status", "status"))
        .withColumn("detail", F.coalesce("new_detail", "detail"))
        .drop("new_status", "new_detail")
    )
    return updated, found


def _save_opt_outs(
    spark: SparkSession,
    store: Store,
    refs: Sequence[UrlRef],
    reserved: dict[str, tuple[Reservation, ...]],
) -> None:
    """This file's judged opt-outs into the state store (:func:`save_opt_outs`): the URLs opted
    out now, and those the store held as opted out that are in the file but are not now."""
    held = [row[0] for row in store.conn.execute("SELECT url FROM url_opt_out")]
    judged = set(reserved)
    if held:
        urls = _records(spark, refs).select("url")
        kept = spark.createDataFrame([(u,) for u in held], "url string")
        judged |= {r["url"] for r in kept.join(urls, "url", "left_semi").distinct().collect()}
    save_opt_outs(store, judged, reserved)


def urls_stage(
    ds: DatasetConfig, config: Config, *, store: Store | None, findings_dir: str | None
) -> UrlsResult:
    """:func:`audit.probes.urls.urls_stage` on Spark."""
    sources = sources_for(config, ds)
    if not sources:
        return UrlsResult()
    return audit_urls(
        sources,
        config.urls,
        config.path(config.state),
        config.engine,
        findings_dir=findings_dir,
        store=store,
    )
