"""The CLI's progress bar during a Spark job: advanced as the job's tasks finish.

A Spark action blocks the driver until its job ends, so without this the bar sat at 0% and
jumped to 100%. A thread polls Spark's status tracker (public API: the job group's jobs, their
stages' finished task counts) and moves the bar by each task's share of the work.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from audit.models import Progress

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_POLL_SECONDS = 0.5


@contextmanager
def tracked(spark: SparkSession, progress: Progress, work: int, tasks: int) -> Iterator[None]:
    """Advance ``progress`` by ``work`` over the ``tasks`` of the jobs started in the block;
    whatever is left is added when the block ends."""
    context = spark.sparkContext
    group = f"llava-audit-{uuid.uuid4().hex}"
    context.setJobGroup(group, "llava-audit", interruptOnCancel=False)
    stop = threading.Event()
    shown = 0

    def finished() -> int:
        tracker = context.statusTracker()
        done = 0
        for job_id in tracker.getJobIdsForGroup(group):
            job = tracker.getJobInfo(job_id)
            for stage_id in job.stageIds if job else ():
                stage = tracker.getStageInfo(stage_id)
                done += stage.numCompletedTasks if stage else 0
        return min(done, tasks)

    def poll() -> None:
        nonlocal shown
        while not stop.wait(_POLL_SECONDS):
            due = work * finished() // max(tasks, 1)
            if due > shown:
                progress.advance(due - shown)
                shown = due

    watcher = threading.Thread(target=poll, name="llava-audit-spark-progress", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
        context.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
        if work > shown:
            progress.advance(work - shown)
