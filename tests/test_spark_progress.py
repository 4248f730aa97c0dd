"""The progress bar moves while a Spark job runs, not only when it ends; settings scoped to a
stage end with it; RDD and SQL jobs share Python workers."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import pytest

from audit.engines.spark.taskprogress import tracked

pytest.importorskip("pyarrow")  # the spark extra's

import pyarrow as pa

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.spark


class Recording:
    def __init__(self) -> None:
        self.steps: list[int] = []

    def start(self, label: str, total: int | None) -> None: ...

    def advance(self, n: int = 1) -> None:
        self.steps.append(n)

    def finish(self) -> None: ...


def slow_partition(rows: Iterable[int]) -> Iterator[int]:
    time.sleep(1.5)  # long enough for the tracker to see tasks finish one by one
    yield from rows


def test_the_bar_advances_as_tasks_finish_and_ends_full(spark: SparkSession) -> None:
    progress = Recording()
    with tracked(spark, progress, 1000, 6):
        spark.sparkContext.parallelize(range(6), 6).mapPartitions(slow_partition).count()
    assert sum(progress.steps) == 1000
    assert len(progress.steps) > 1  # not one jump at the end


def test_the_bar_ends_full_when_the_job_fails(spark: SparkSession) -> None:
    progress = Recording()
    with pytest.raises(ZeroDivisionError), tracked(spark, progress, 10, 2):
        raise ZeroDivisionError
    assert sum(progress.steps) == 10


def test_a_scoped_setting_is_undone_and_a_users_own_is_kept(spark: SparkSession) -> None:
    """The structure stage turns adaptive execution off for its queries only, and not at all
    when ``[engine.conf]`` sets it."""
    from audit.config import EngineConfig
    from audit.engines.spark.session import scoped_conf

    key = "spark.sql.adaptive.enabled"
    before = spark.conf.get(key)
    with scoped_conf(spark, EngineConfig(name="spark"), {key: "false"}):
        assert spark.conf.get(key) == "false"
    assert spark.conf.get(key) == before
    users = EngineConfig(name="spark", conf={key: "true"})
    with scoped_conf(spark, users, {key: "false"}):
        assert spark.conf.get(key) == before


def _parent_of_rdd_worker(rows: Iterable[int]) -> Iterator[int]:
    yield os.getppid()


def _parent_of_sql_worker(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    for _ in batches:
        yield pa.RecordBatch.from_pydict({"parent": [os.getppid()]})


def test_rdd_jobs_use_the_sql_jobs_python_workers(spark: SparkSession) -> None:
    """warm_workers starts Python workers with an RDD job for the SQL jobs after it: Spark
    shares workers between jobs whose worker environments are equal, and its SQL runner adds
    SPARK_SIMPLIFIED_TRACEBACK (DEFAULT_CONF gives RDD jobs the same). If an upgrade changes
    what the runner adds, the warm-up starts a second daemon instead and this fails."""
    by_rdd = spark.sparkContext.parallelize([0], 1).mapPartitions(_parent_of_rdd_worker).collect()
    by_sql = spark.range(1, numPartitions=1).mapInArrow(_parent_of_sql_worker, "parent long")
    assert by_rdd == [row["parent"] for row in by_sql.collect()]
