"""The progress bar moves while a Spark job runs, not only when it ends; settings scoped to a
stage end with it."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import pytest

from audit.engines.spark.taskprogress import tracked

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
