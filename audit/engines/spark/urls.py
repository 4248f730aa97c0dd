"""The URL stage on Spark: the same probes, opt-outs, stand-ins, findings and counts as the local
engine (:mod:`audit.probes.urls`), with the URLs spread over the cluster by server.

Every per-URL step runs in two Python passes over unique URLs, each the local engine's own
functions (:mod:`audit.engines.spark.urlsteps`). The first groups the URLs by origin: it makes
them unique, adds each origin's robots.txt and tdmrep.json jobs and resolves each host once with
the SSRF guard's own resolution. Joined to what the Parquet caches hold fresh
(:mod:`audit.engines.spark.urlcache`), the jobs are then grouped by that server address: every
URL of one server (``localhost`` and ``127.1`` alike) and every URL and host file of one origin
land in one task, where the local engine's batch probe runs in threads, so ``per_host`` and
``delay_seconds`` hold across the whole cluster, and where the origin's opt-outs are judged.
Its output is staged once (a probe is a fact of one moment, never recomputed); then one collect
brings back every aggregate (:mod:`audit.engines.spark.urlfigures`: counts through the local
engine's tally keys, the opted-out records, the stand-in candidates), the caches are merged into
new versions in the background, and each record's findings are built in executors. Only
aggregates, the first findings per code, the stand-ins and the opted-out records reach the
driver, and no reference either: each source's are read in executors, one task per shard
(:mod:`audit.engines.spark.urlrefs`). A Spark action pays a fixed cost (scheduling, Python worker
round trips) whatever its size: a file takes three of them besides writing the findings, after
the two short ones that stage and count its references.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import pyarrow as pa

from audit.config import Config, DatasetConfig, EngineConfig, UrlConfig
from audit.engines.spark import caches, urlcache, urlfigures, urlrefs
from audit.engines.spark import urlsteps as steps
from audit.engines.spark.findingtable import SPARK_SCHEMA, publish, to_batch
from audit.engines.spark.session import session
from audit.engines.spark.urlcache import Merges
from audit.probes.urls import UrlSource, combine, sources_for, summary_finding, url_counts
from audit.probes.urls import _check as check_settings
from audit.results import OptOut, UrlsResult
from audit.store import Store
from audit.store.urls import Reservation, save_opt_outs

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_URLS_PER_TASK = 250_000  # results one probing task holds (its origins' opt-outs are judged)


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
    merges = Merges()
    with caches.scratch(state) as scratch:
        try:
            for n, src in enumerate(sources):
                # read in executors, staged (their count and any unreadable shard first)
                records, urls = urlrefs.source_refs(spark, src, scratch / f"{n}-refs")
                merges.wait()  # a URL of an earlier file is this one's cache hit
                result, found, reserved = probe_file(
                    spark,
                    records,
                    urls,
                    settings,
                    state,
                    scratch / str(n),
                    dataset=src.dataset,
                    file=src.path,
                    merges=merges,
                )
                if store is not None:
                    _save_opt_outs(spark, store, records, reserved)
                results.append(result)
                frames.append(found)
            combined = combine(results)
            if not frames:
                return combined
            everything = functools.reduce(lambda a, b: a.unionByName(b), frames)
            location = Path(findings_dir or Path(state).parent / "spark-findings" / "urls")
            examples, totals = publish(everything, location, examples_per_code=EXAMPLES_PER_CODE)
        finally:
            merges.close()
    return msgspec.structs.replace(combined, findings=examples, finding_totals=totals)


def probe_file(
    spark: SparkSession,
    records: DataFrame,
    urls: int,
    settings: UrlConfig,
    state: str | Path,
    scratch: Path,
    *,
    dataset: str,
    file: str,
    now: float | None = None,
    merges: Merges | None = None,
) -> tuple[UrlsResult, DataFrame, dict[str, tuple[Reservation, ...]]]:
    """One URL file, its ``urls`` references ``records`` (rows of :data:`urlrefs.REF_SCHEMA`):
    its result (findings not yet set), the frame of all its findings (read
    from ``scratch``, a :func:`caches.scratch` folder that must outlive the frame) and the
    opted-out URLs with their opt-outs. The cache merges go to ``merges`` (default: done
    before returning).

    Three actions whatever the file's size, each paying Spark's fixed costs once: the probe
    (every per-URL step in two Python passes, staged), one collect of every aggregate
    (:func:`urlfigures.figures`), and the cache merges; the findings are the caller's to write."""
    started = time.perf_counter()
    now = time.time() if now is None else now
    frame = _probe(spark, records, settings, state, now, _tasks(spark, urls))
    probed = caches.staged(spark, frame, scratch, steps.PROBED)
    fig = urlfigures.figures(probed, records, settings.placeholder_min_urls)
    own = merges is None
    merges = Merges() if merges is None else merges
    try:
        urlcache.save(
            spark, probed, settings, state, merges, urls=fig.probed > 0, files=fig.fetched > 0
        )
        seconds = time.perf_counter() - started
        stats = url_counts(
            fig.tallies, unique=fig.unique, file=file, probed=fig.probed, seconds=seconds
        )
        reserved = {url: steps.decode_reservations(text) for _, _, url, text in fig.opted}
        opt_outs = sorted(  # a shard set's records name their shard
            OptOut(shard or file, index, url, tuple(dict.fromkeys(x.kind for x in reserved[url])))
            for shard, index, url, _ in fig.opted
        )
        settled = urlfigures.settled(spark, probed.where("kind = 'url'"), fig.moved)
        found = (
            urlfigures.joined_records(records, settled)
            .select("index", "record_id", "url", "file", *steps.PROBE_REST, "opted")
            .mapInArrow(functools.partial(steps.record_rows, dataset, file), SPARK_SCHEMA)
        )
        summary = spark.createDataFrame(
            pa.Table.from_batches([to_batch([summary_finding(stats, dataset, file)])])
        )
    finally:
        if own:
            merges.close()
    result = UrlsResult(
        totals=stats, files=[stats], opt_outs=opt_outs, placeholders=fig.placeholders
    )
    return result, found.unionByName(summary), reserved


def _tasks(spark: SparkSession, urls: int) -> int:
    """Tasks per pass: one per core, so that every server is probed at once (a second wave would
    leave half of them idle meanwhile), and more for a large file so that no task holds more
    than :data:`_URLS_PER_TASK` results."""
    return max(spark.sparkContext.defaultParallelism, -(-urls // _URLS_PER_TASK), 1)


def _probe(
    spark: SparkSession,
    records: DataFrame,
    settings: UrlConfig,
    state: str | Path,
    now: float,
    tasks: int,
) -> DataFrame:
    """Every unique URL's probe and opt-outs, and the host files fetched (:data:`steps.PROBED`):
    the URLs grouped by origin to be made unique and resolved (:func:`steps.prepare`), joined to
    the caches' fresh rows, then grouped by server address to be probed or passed through
    (:func:`steps.probe_partition`), so one server's URLs are all in one task."""
    from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

    prepared = (
        records.select("url", "home")
        .repartition(tasks, "home")
        .mapInArrow(functools.partial(steps.prepare, settings), steps.PREPARED)
    )
    # one stream (prepared used twice would run it twice): a file job's null key and a URL's
    # null path match no cache row
    work = (
        prepared.withColumn("key", F.when(F.col("path").isNull(), F.sha2("url", 256)))
        .join(urlcache.fresh_probes(spark, settings, state, now), ["key", "url"], "left")
        .join(urlcache.fresh_files(spark, settings, state, now), ["origin", "path"], "left")
    )
    return work.repartition(tasks, "server").mapInArrow(
        functools.partial(steps.probe_partition, settings), steps.PROBED
    )


def _save_opt_outs(
    spark: SparkSession,
    store: Store,
    records: DataFrame,
    reserved: dict[str, tuple[Reservation, ...]],
) -> None:
    """This file's judged opt-outs into the state store (:func:`save_opt_outs`): the URLs opted
    out now, and those the store held as opted out that are in the file but are not now."""
    held = [row[0] for row in store.conn.execute("SELECT url FROM url_opt_out")]
    judged = set(reserved)
    if held:
        kept = spark.createDataFrame([(u,) for u in held], "url string")
        judged |= {
            r["url"]
            for r in kept.join(records.select("url"), "url", "left_semi").distinct().collect()
        }
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
