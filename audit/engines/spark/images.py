"""The image stage on Spark: the same outcomes, findings and counts as the local engine
(:mod:`audit.probes.images`), with the images read by executors from a path they all see.

The distinct image strings are located in executors (each executor process opens the roots once:
a zip's central directory is read once and kept); the places that need their bytes read are
spread by root and read in each zip's member order, through the local engine's
:func:`audit.probes.imagedecode.probe_batch`. The image cache is a Parquet table keyed by a hash
of root and name (:mod:`audit.engines.spark.caches`) holding the SQLite cache's signature and
level, so a re-run reads only what changed. A run's references come from the executors
(:func:`probe_dataset`: each reads its own units of the chat file, a shard or the file, through
the licence stage's reader), so no record passes through the driver. Counts come from the local engine's tally keys and
:func:`audit.probes.imagestats.stats_from`; only counts and the first findings per code reach
the driver.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import pyarrow as pa

from audit import findings as fnd
from audit.config import Config, DatasetConfig, EngineConfig
from audit.engines.spark import caches
from audit.engines.spark import imagesteps as steps
from audit.engines.spark.findingtable import SPARK_SCHEMA, publish, to_batch
from audit.engines.spark.licence_join import descriptors, raised
from audit.engines.spark.session import session
from audit.errors import UsageError
from audit.findings import Code
from audit.licensing.inputs import RecordSource, record_sources
from audit.loaders.imageroots import open_roots
from audit.models import ImageRef
from audit.probes.imagedecode import LEVELS
from audit.probes.images import _NOT_CACHED, DEFAULT_MAX_PIXELS, STATUS_CODES
from audit.probes.imagestats import stats_from, summary
from audit.results import Dimensions, ImagesResult, Spread

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_REFS = pa.schema(
    [
        ("index", pa.int64()),
        ("record_id", pa.string()),
        ("image", pa.string()),
        ("file", pa.string()),
    ]
)


def probe_dataset(
    ds: DatasetConfig,
    config: Config,
    units: Sequence[RecordSource] | None = None,
    *,
    report_paths: bool = False,
    use_cache: bool = True,
    findings_dir: str | Path | None = None,
) -> ImagesResult:
    """:func:`audit.probes.images.probe_dataset` on Spark: each executor reads the image
    references of its own ``units`` of the chat file (default: every shard of a set, else the
    file), so no record passes through the driver."""
    if not ds.chat or not ds.images:
        raise UsageError(f"dataset {ds.name!r} needs both `chat` and `images` for the image probe")
    if units is None:
        kind = None if ds.kind == "auto" else ds.kind
        units, _ = record_sources(config.path(ds.chat), kind, ds.name)
    return _probed(
        functools.partial(_unit_records, units),
        [config.path(root) for root in ds.images],
        config.path(config.state),
        config.engine,
        level=config.images.level,
        dataset=ds.name,
        file=str(ds.chat),
        max_pixels=config.images.max_pixels,
        report_paths=report_paths,
        use_cache=use_cache,
        findings_dir=findings_dir,
    )


def probe_images(
    refs: Sequence[ImageRef],
    roots: Sequence[str | Path],
    state: str | Path,
    engine: EngineConfig,
    *,
    level: str = "header",
    dataset: str = "",
    file: str = "",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    report_paths: bool = True,
    use_cache: bool = True,
    findings_dir: str | Path | None = None,
) -> ImagesResult:
    """:func:`audit.probes.images.probe_images` on Spark; the findings table goes to
    ``findings_dir`` (default ``<state folder>/spark-findings/images``)."""
    return _probed(
        lambda spark, _scratch: _records(spark, refs),
        roots,
        state,
        engine,
        level=level,
        dataset=dataset,
        file=file,
        max_pixels=max_pixels,
        report_paths=report_paths,
        use_cache=use_cache,
        findings_dir=findings_dir,
    )


def _probed(
    records: Callable[[SparkSession, Path], DataFrame],
    roots: Sequence[str | Path],
    state: str | Path,
    engine: EngineConfig,
    *,
    level: str,
    dataset: str,
    file: str,
    max_pixels: int,
    report_paths: bool,
    use_cache: bool,
    findings_dir: str | Path | None,
) -> ImagesResult:
    """The probe of the references ``records`` gives (in a scratch folder of this run)."""
    from audit.output.render.html import EXAMPLES_PER_CODE

    if level not in LEVELS:
        raise UsageError(f"unknown image check level {level!r} (choose from {', '.join(LEVELS)})")
    started = time.perf_counter()
    keys = [r.key for r in open_roots(roots)]  # the local engine's refusals of a bad root
    spark = session(engine)
    reported = set(STATUS_CODES) - (set() if report_paths else {"bad_path"})
    with caches.scratch(state) as scratch:
        stats, found = _probe(
            spark,
            records(spark, scratch),
            keys,
            LEVELS.index(level),
            max_pixels,
            cache=caches.cache_folder(state, "images") if use_cache else None,
            scratch=scratch,
            reported=reported,
            dataset=dataset,
            file=file,
        )
        stats = msgspec.structs.replace(
            stats,
            level=level,
            dataset=dataset,
            file=file,
            seconds=round(time.perf_counter() - started, 3),
        )
        line = fnd.make(Code.STATS_IMAGES, summary(stats), dataset=dataset, file=file)
        found = found.unionByName(spark.createDataFrame(pa.Table.from_batches([to_batch([line])])))
        location = Path(findings_dir or Path(state).parent / "spark-findings" / "images")
        examples, totals = publish(found, location, examples_per_code=EXAMPLES_PER_CODE)
    return msgspec.structs.replace(stats, findings=examples, finding_totals=totals)


def _records(spark: SparkSession, refs: Sequence[ImageRef]) -> DataFrame:
    table = pa.table(
        {
            "index": [r.index for r in refs],
            "record_id": [r.record_id for r in refs],
            "image": [r.image for r in refs],
            "file": [r.file for r in refs],
        },
        schema=_REFS,
    )
    if not refs:
        return spark.createDataFrame([], "index long, record_id string, image string, file string")
    return spark.createDataFrame(table)


def _unit_records(units: Sequence[RecordSource], spark: SparkSession, scratch: Path) -> DataFrame:
    """The units' image references, read in executors (a task per unit) and staged once; a
    unit that cannot be read is raised here, the first in unit order, as the local engine
    raises it."""
    from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

    read = descriptors(spark, units).mapInArrow(
        functools.partial(steps.unit_refs, str(Path.cwd())), steps.UNIT_REFS
    )
    refs = caches.staged(spark, read, scratch / "refs", steps.UNIT_REFS)
    failed = refs.where(F.col("error").isNotNull()).orderBy("unit").limit(1).collect()
    if failed:
        raise raised(failed[0]["error"], failed[0]["code"])
    return refs.drop("unit", "error", "code")


def _probe(
    spark: SparkSession,
    records: DataFrame,
    roots: list[str],
    depth: int,
    max_pixels: int,
    *,
    cache: Path | None,
    scratch: Path,
    reported: set[str],
    dataset: str,
    file: str,
) -> tuple[ImagesResult, DataFrame]:
    """Locate, reuse the cache, read the rest; the counts and the findings frame."""
    from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

    uses = records.groupBy("image").count().withColumnRenamed("count", "n")
    located = caches.staged(
        spark,
        uses.mapInArrow(functools.partial(steps.locate, roots, depth), steps.LOCATED),
        scratch / "located",
        steps.LOCATED,
    )
    places = (
        located.where(F.col("root").isNotNull())
        .groupBy("root", "name")
        .agg(*(F.first(c).alias(c) for c in ("signature", "source", "offset", "status")))
    )
    todo = places.where(F.col("status").isNull()).drop("status")
    table = caches.read(spark, cache, caches.IMAGES) if cache is not None and depth else None
    reused = _reuse(todo, table, depth, max_pixels)
    reading = todo.join(reused.where(F.col("status").isNotNull()), ["root", "name"], "left_anti")
    tasks = 2 * spark.sparkContext.defaultParallelism
    probed = caches.staged(
        spark,
        reading.repartition(tasks, "root")
        .sortWithinPartitions("root", "offset", "name")
        .mapInArrow(functools.partial(steps.probe, depth, max_pixels), steps.PLACED),
        scratch / "probed",
        steps.PLACED,
    )
    count = probed.count()
    if table is not None and cache is not None and count:
        _save(table, probed, depth, cache)
    # every place's outcome (settled without reading, cached, read) and every image's
    settled_outcomes = located.where(F.col("root").isNotNull() & F.col("status").isNotNull())
    outcomes = (
        settled_outcomes.select("root", "name", *_OUTCOME)
        .dropDuplicates(["root", "name"])
        .unionByName(reused.where(F.col("status").isNotNull()).select("root", "name", *_OUTCOME))
        .unionByName(probed.select("root", "name", *_OUTCOME))
    ).persist()
    by_image = (
        located.where(F.col("root").isNull())
        .select("image", "n", *_OUTCOME)
        .unionByName(
            located.where(F.col("root").isNotNull())
            .select("image", "n", "root", "name")
            .join(outcomes, ["root", "name"])
            .drop("root", "name")
        )
    ).persist()
    stats = _stats(by_image, outcomes, roots, unique=uses.count())
    cached = reused.where(F.col("status").isNotNull()).count()
    stats = msgspec.structs.replace(stats, probed=count, cached=cached)
    found = (
        records.join(by_image.where(F.col("status").isin(*reported)).drop("n"), "image")
        .select("index", "record_id", "image", "file", *_OUTCOME)
        .mapInArrow(functools.partial(steps.record_rows, dataset, file), SPARK_SCHEMA)
    )
    return stats, found


_OUTCOME = ["status", "format", "width", "height", "detail"]


def _reuse(todo: DataFrame, table: DataFrame | None, depth: int, max_pixels: int) -> DataFrame:
    """Places whose cached outcome still stands (status set), as :data:`steps.PLACED`."""
    from pyspark.sql import functions as F  # noqa: N812

    if table is None:
        return todo.sparkSession.createDataFrame([], steps.PLACED)
    renamed = table.select(
        "key", *(F.col(c).alias(f"c_{c}") for c in ("signature", "level", *_OUTCOME))
    )
    keyed = todo.withColumn("key", F.sha2(F.concat("root", F.lit("\0"), "name"), 256))
    return (
        keyed.join(renamed, "key", "left")
        .drop("key", "source", "offset")
        .mapInArrow(functools.partial(steps.reuse, depth, max_pixels), steps.PLACED)
    )


def _save(table: DataFrame, probed: DataFrame, depth: int, folder: Path) -> None:
    """The cache's rows not read again, and this run's (not those that may heal by themselves)."""
    from pyspark.sql import functions as F  # noqa: N812

    new = (
        probed.where(~F.col("status").isin(*_NOT_CACHED) & (F.col("signature") != ""))
        .withColumn("key", F.sha2(F.concat("root", F.lit("\0"), "name"), 256))
        .withColumn("level", F.lit(depth))
        .withColumn("probed_at", F.lit(time.time()))
    )
    columns = [c.split()[0] for c in caches.IMAGES.split(", ")]
    kept = table.join(new.select("key"), "key", "left_anti").select(*columns)
    caches.write(kept.unionByName(new.select(*columns)), folder)


def _stats(
    by_image: DataFrame, outcomes: DataFrame, roots: list[str], *, unique: int
) -> ImagesResult:
    """The local engine's counts: tally keys summed, formats and sizes over distinct places."""
    from pyspark.sql import functions as F  # noqa: N812

    summed = (
        by_image.select("image", "n", "status")
        .mapInArrow(steps.tallies, "status string, folder string, n long")
        .groupBy("status", "folder")
        .agg(F.sum("n").alias("n"))
        .collect()
    )
    formats = outcomes.where(F.col("format").isNotNull()).groupBy("format").count().collect()
    sized = outcomes.where(F.col("width").isNotNull() & F.col("height").isNotNull())
    spread = sized.agg(
        F.count("*").alias("n"),
        *(
            agg(F.col(c)).alias(f"{c}_{name}")
            for c in ("width", "height")
            for name, agg in (("min", F.min), ("median", F.median), ("max", F.max))
        ),
    ).first()
    dimensions = None
    if spread is not None and spread["n"]:
        dimensions = Dimensions(
            width=Spread(
                min=spread["width_min"],
                median=float(spread["width_median"]),
                max=spread["width_max"],
            ),
            height=Spread(
                min=spread["height_min"],
                median=float(spread["height_median"]),
                max=spread["height_max"],
            ),
        )
    return stats_from(
        Counter({(r["status"], r["folder"]): int(r["n"]) for r in summed}),
        unique_images=unique,
        formats={r["format"]: int(r["count"]) for r in formats},
        dimensions=dimensions,
        level="",
        roots=roots,
    )
