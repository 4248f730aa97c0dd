"""One SparkSession per process, built from ``[engine]`` (master, conf), quiet on the console."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, wait
from contextlib import contextmanager
from functools import partial
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from audit.config import EngineConfig
from audit.engines import require_spark
from audit.engines.spark import classcache
from audit.engines.spark.jvmstderr import without_incubator_warning
from audit.errors import EngineError

_LOG4J = "spark-log4j2.properties"

if TYPE_CHECKING:
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

#: Defaults a user's ``[engine.conf]`` can override: no web UI or console progress bar (the
#: CLI draws its own), Arrow for the batches that cross between the JVM and Python.
DEFAULT_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.shuffle.partitions": "8",
    # the same pandas-3 warning, printed by every Python worker (see session())
    "spark.executorEnv.PYTHONWARNINGS": "ignore::FutureWarning",
    # Spark's SQL Python runner adds this to its workers' environment; Python workers are
    # shared per environment, so with it RDD jobs (warm_workers, a DataFrame made from an
    # RDD) use the same workers as the SQL jobs instead of starting a second daemon and set
    "spark.executorEnv.SPARK_SIMPLIFIED_TRACEBACK": "1",
}


def _driver_conf(master: str | None) -> dict[str, str]:
    """The driver JVM's options when this process starts it: quiet logging, a class-data
    archive (:mod:`classcache`); in local mode,
    where that one JVM is also every executor, a heap for the cached findings and key tables
    (a quarter of the memory, 1-4 GB; Spark's 1 GB default spills them to disk), the client
    compiler only (the JVM just moves Arrow batches and shuffles while Python does the work:
    the server compiler's threads took cores from the Python workers) and a throughput
    collector with two threads (the serial one spent seconds copying the key tables)."""
    options = [f"-Dlog4j.configurationFile={resources.files('audit') / 'data' / _LOG4J}"]
    spec = importlib.util.find_spec("pyspark")
    if spec is not None and spec.origin:
        options += classcache.java_options(Path(spec.origin).parent)
    conf: dict[str, str] = {}
    if master and master.startswith("local"):
        options += ["-XX:TieredStopAtLevel=1", "-XX:+UseParallelGC", "-XX:ParallelGCThreads=2"]
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        conf["spark.driver.memory"] = f"{min(4, max(1, total // 4 // 2**30))}g"
    return conf | {"spark.driver.extraJavaOptions": " ".join(options)}


def session(engine: EngineConfig, warm: Callable[[], None] | None = None) -> SparkSession:
    """The active session, or a new one for ``engine``; executors run this interpreter. The
    executors' Python workers run ``warm`` (:func:`warm_workers`) while the session starts."""
    require_spark()
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise EngineError(
            "the spark engine needs Java 17 or newer: no `java` on PATH and no JAVA_HOME"
        )
    # executors must import audit and its dependencies: the same interpreter as the driver
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    # pyspark 4.3 warns on every start that pandas 3 is "not yet fully supported"; the engine
    # passes Arrow batches and never pandas frames, so the warning only adds a stderr line
    # (local-mode workers inherit this process's environment, cluster executors the conf below)
    warnings.filterwarnings("ignore", category=FutureWarning)
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")
    from pyspark import SparkConf, SparkContext
    from pyspark.sql import SparkSession

    master = engine.master
    if not master and "SPARK_HOME" not in os.environ and "PYSPARK_SUBMIT_ARGS" not in os.environ:
        master = f"local[{os.cpu_count() or 1}]"
    settings = {
        "spark.app.name": "llava-audit",
        **DEFAULT_CONF,
        **_driver_conf(master),
        **engine.conf,
    }
    if master:
        settings["spark.master"] = master
    builder = SparkSession.builder
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        with without_incubator_warning():  # the JVM, if this starts one, prints it at once
            # the context first: its workers can start while the SQL session is set up
            context = SparkContext.getOrCreate(SparkConf().setAll(list(settings.items())))
        if warm is not None:
            warm_workers(context, warm)
        spark = builder.getOrCreate()
    except Exception as exc:  # py4j/JVM start-up failures have no common type
        raise EngineError(
            f"the spark engine could not start ({type(exc).__name__}): check --master and Java"
        ) from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark


class StartingSession:
    """:func:`session` started in a thread, for a caller with work of its own to do first (the
    JVM takes a second or two to start, mostly waiting): :meth:`result` waits for it.

    Used as a context manager: a block that fails waits for the start before its error goes
    out, since until the JVM is up this process's standard error is the JVM's filtered pipe
    (:mod:`jvmstderr`), and a line written there just before the process exits would be lost."""

    def __init__(self, engine: EngineConfig, warm: Callable[[], None] | None = None) -> None:
        self._started: Future[SparkSession] = Future()
        # a daemon: the process may end (its error told) while the JVM still starts
        threading.Thread(
            target=self._start, args=(engine, warm), name="llava-audit-spark-start", daemon=True
        ).start()

    def _start(self, engine: EngineConfig, warm: Callable[[], None] | None) -> None:
        try:
            self._started.set_result(session(engine, warm))
        except BaseException as exc:  # handed to the caller, who raises it
            self._started.set_exception(exc)

    def result(self) -> SparkSession:
        """The session, once started; raises what starting it raised."""
        return self._started.result()

    def __enter__(self) -> StartingSession:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is not None:  # the block's error is told once standard error is whole again
            wait([self._started])


@contextmanager
def scoped_conf(spark: SparkSession, engine: EngineConfig, conf: dict[str, str]) -> Iterator[None]:
    """Runtime SQL ``conf`` for the queries of the block, then the session's own again; a key
    the user set in ``[engine.conf]`` keeps the user's value."""
    previous = {key: spark.conf.get(key, None) for key in conf if key not in engine.conf}
    for key in previous:
        spark.conf.set(key, conf[key])
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def warm_workers(context: SparkContext, warm: Callable[[], None]) -> None:
    """Start the executors' Python workers and run ``warm`` in them (imports their first task
    would make), in a job of its own running while the driver sets up its SQL session and plans
    its first query (about as long as starting a worker and importing polars and pandera, which
    the first job would otherwise wait for). An RDD job needs no SQL session, and Spark reuses
    the workers it starts. A failure here is the real job's to meet and report, so it is not
    raised."""
    slots = context.defaultParallelism
    job = context.parallelize(range(slots), slots).mapPartitions(partial(_warmed, warm))

    def run() -> None:
        with contextlib.suppress(Exception):  # see the docstring
            job.collect()

    threading.Thread(target=run, name="llava-audit-warm-workers", daemon=True).start()


def _warmed(warm: Callable[[], None], rows: Iterable[int]) -> Iterator[int]:
    """Executor side of :func:`warm_workers`."""
    warm()
    yield from rows
