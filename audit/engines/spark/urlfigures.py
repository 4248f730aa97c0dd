"""What the URL stage on Spark brings back to the driver, in one collect per file: the records'
counts, the rows probed, the opted-out records and the stand-in candidates.

Every Spark action pays scheduling and a round trip to the Python workers whatever its size, so
the aggregates are not asked one by one: each is a small frame whose rows travel as JSON in one
union. The stand-ins are decided on the driver afterwards (:func:`audit.probes.placeholders.detect`
over the candidates), and the counts of the records whose URL turned out a stand-in are moved
from its old status to the new one by the per-URL record counts the same collect brought back.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any, NamedTuple

from audit.engines.spark import urlsteps as steps
from audit.probes.placeholders import detect
from audit.results import Placeholder

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: (status, domain, opted out) -> records: :func:`audit.probes.urls.tally`'s keys
Tallies = Counter[tuple[str, str, bool]]


class Figures(NamedTuple):
    """One file's aggregates."""

    tallies: Tallies
    unique: int  # unique URLs
    probed: int  # of which asked this run (the others were fresh in the cache)
    fetched: int  # host files fetched this run
    #: (shard or None, index, url, encoded opt-outs) of each opted-out record
    opted: list[tuple[str | None, int, str, str]]
    placeholders: list[Placeholder]
    moved: dict[str, tuple[str, str]]  # url -> (status, detail) of the URLs found stand-ins


def figures(probed: DataFrame, records: DataFrame, min_urls: int) -> Figures:
    """``probed`` (rows of :data:`steps.PROBED`) and ``records`` joined, aggregated in one
    collect; stand-ins detected among URLs sharing their bytes or redirect target with at least
    ``min_urls`` URLs (a smaller group is never flagged: the same result as over every URL)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F  # noqa: N812 - Spark's own convention

    urls = probed.where(F.col("kind") == "url")
    # each URL with its records' count: a URL's status and opt-outs are its records' too
    per_url = urls.join(records.groupBy("url").agg(F.count("*").alias("n")), "url")
    out = F.col("opted").isNotNull().alias("out")
    by_bytes = Window.partitionBy("sha256", "size")
    by_target = Window.partitionBy("target")
    candidates = (
        per_url.where(F.col("status") == "ok")
        .withColumn("same_bytes", F.when(F.col("sha256").isNotNull(), F.count("*").over(by_bytes)))
        .withColumn(
            "same_target", F.when(F.col("target").isNotNull(), F.count("*").over(by_target))
        )
        .where((F.col("same_bytes") >= min_urls) | (F.col("same_target") >= min_urls))
        .select(*steps.PROBE_NAMES, "domain", out, "n")
    )
    opted = urls.where(F.col("opted").isNotNull()).select("url", "opted")
    rows = _collect(
        {
            "tally": per_url.groupBy("status", "domain", out).agg(F.sum("n").alias("count")),
            "kind": probed.groupBy("kind", "probed").count(),
            "opted": records.join(opted, "url").select("file", "index", "url", "opted"),
            "candidate": candidates,
        }
    )
    tallies: Tallies = Counter()
    for r in rows["tally"]:
        tallies[(r["status"], r.get("domain", ""), r["out"])] += r["count"]
    kinds = Counter({(r["kind"], r.get("probed")): r["count"] for r in rows["kind"]})
    found = {r["url"]: r for r in rows["candidate"]}
    results = {
        u: steps.probe_of({k: r.get(k) for k in steps.PROBE_NAMES}) for u, r in found.items()
    }
    changed, placeholders = detect(results, min_urls) if results else ({}, [])
    moved = {u: (p.status, p.detail) for u, p in changed.items() if p.status != results[u].status}
    for url, (status, _) in moved.items():  # the records of a stand-in count under its status
        r = found[url]
        tallies[(results[url].status, r.get("domain", ""), r["out"])] -= r["n"]
        tallies[(status, r.get("domain", ""), r["out"])] += r["n"]
    return Figures(
        tallies=+tallies,
        unique=kinds[("url", True)] + kinds[("url", False)],
        probed=kinds[("url", True)],
        fetched=kinds[("file", None)],
        opted=[(r.get("file"), r["index"], r["url"], r["opted"]) for r in rows["opted"]],
        placeholders=placeholders,
        moved=moved,
    )


def joined_records(records: DataFrame, urls: DataFrame) -> DataFrame:
    """Each record with its URL's probe, opt-outs and counts' domain."""
    return records.join(urls.select("url", *steps.PROBE_REST, "opted", "domain"), "url")


def settled(spark: SparkSession, urls: DataFrame, moved: dict[str, tuple[str, str]]) -> DataFrame:
    """``urls`` with the stand-ins' status and detail (a broadcast of the few that moved)."""
    from pyspark.sql import functions as F  # noqa: N812

    if not moved:
        return urls
    table = spark.createDataFrame(
        [(u, s, d) for u, (s, d) in moved.items()],
        "url string, new_status string, new_detail string",
    )
    return (
        urls.join(F.broadcast(table), "url", "left")
        .withColumn("status", F.coalesce("new_status", "status"))
        .withColumn("detail", F.coalesce("new_detail", "detail"))
        .drop("new_status", "new_detail")
    )


def _collect(frames: dict[str, DataFrame]) -> dict[str, list[dict[str, Any]]]:
    """Every frame's rows in one action: each row as JSON beside its frame's name (a field
    that is null is absent)."""
    from functools import reduce

    from pyspark.sql import functions as F  # noqa: N812

    packed = [
        frame.select(F.lit(name).alias("what"), F.to_json(F.struct(*frame.columns)).alias("row"))
        for name, frame in frames.items()
    ]
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in frames}
    for row in reduce(lambda a, b: a.unionByName(b), packed).collect():
        found[row["what"]].append(json.loads(row["row"]))
    return found
