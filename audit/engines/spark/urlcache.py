"""The URL stage's two Parquet caches on Spark (:mod:`audit.engines.spark.caches`): the URL probes
and the origins' host files, read for what is still fresh and merged with a run's new rows.

A merge is an action of its own that nothing else in the file waits for, so :class:`Merges`
runs it in a background thread while the driver goes on (the findings, the next steps); it is
waited for before the next file reads the caches, and before the run ends."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from audit.config import UrlConfig
from audit.engines.spark import caches
from audit.engines.spark import urlsteps as steps
from audit.probes.http import TRANSIENT, UNCACHED, settings_fingerprint

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def url_folder(state: str | Path) -> Path:
    return caches.cache_folder(state, "urls")


def host_folder(state: str | Path) -> Path:
    return caches.cache_folder(state, "host-files")


def fresh_probes(
    spark: SparkSession, settings: UrlConfig, state: str | Path, now: float
) -> DataFrame:
    """The cached probes still fresh under this run's settings (as the local engine's TTLs
    judge them), by key and URL."""
    from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

    cache = caches.read(spark, url_folder(state), caches.URLS)
    cutoff = now - settings.ttl_days * 86400.0
    transient = now - min(settings.transient_ttl_days, settings.ttl_days) * 86400.0
    limit = F.when(F.col("status").isin(*TRANSIENT), transient).otherwise(cutoff)
    usable = cache.where(
        (F.col("settings") == settings_fingerprint(settings)) & (F.col("probed_at") >= limit)
    )
    return usable.select("key", "url", *steps.PROBE_REST)


def fresh_files(
    spark: SparkSession, settings: UrlConfig, state: str | Path, now: float
) -> DataFrame:
    """The cached host files still fresh (``robots_ttl_days``), by origin and path."""
    from pyspark.sql import functions as F  # noqa: N812

    cache = caches.read(spark, host_folder(state), caches.HOST_FILES)
    held = cache.where(F.col("fetched_at") >= now - settings.robots_ttl_days * 86400.0)
    return held.select("origin", F.col("name").alias("path"), "fetched_at", "found", "body")


class Merges:
    """Cache merges running in the background, one folder at a time each."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="spark-cache-merge")
        self._pending: list[Future[Path]] = []

    def submit(self, merge: Callable[[], Path]) -> None:
        self._pending.append(self._pool.submit(merge))

    def wait(self) -> None:
        """Every merge submitted is in force (re-raises a merge's failure)."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown()


def save(
    spark: SparkSession,
    probed: DataFrame,
    settings: UrlConfig,
    state: str | Path,
    merges: Merges,
    *,
    urls: bool,
    files: bool,
) -> None:
    """Merge this run's new probes (``urls``: there are some; a refusal is never cached) and
    fetched host files (``files``) from ``probed`` (rows of :data:`steps.PROBED`) into the
    caches, each as a new version."""
    from pyspark.sql import functions as F  # noqa: N812

    if urls:
        kept = probed.where(
            (F.col("kind") == "url") & F.col("probed") & ~F.col("status").isin(*UNCACHED)
        ).withColumn("settings", F.lit(settings_fingerprint(settings)))
        merges.submit(lambda: _merge(spark, kept, url_folder(state), caches.URLS))
    if files:
        fetched = probed.where(F.col("kind") == "file")
        keyed = fetched.withColumn("key", F.concat("origin", F.lit("\0"), "name"))
        merges.submit(lambda: _merge(spark, keyed, host_folder(state), caches.HOST_FILES))


def _merge(spark: SparkSession, new: DataFrame, folder: Path, schema: str) -> Path:
    """The version in force's rows not replaced by ``new``, and ``new`` (one row per key:
    latest wins), as the new version."""
    columns = [c.split()[0] for c in schema.split(", ")]
    new = new.select(*columns)
    if caches.current(folder) is None:
        return caches.write(new, folder)
    cache = caches.read(spark, folder, schema)
    return caches.write(cache.join(new.select("key"), "key", "left_anti").unionByName(new), folder)
