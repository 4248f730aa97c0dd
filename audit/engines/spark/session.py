"""One SparkSession per process, built from ``[engine]`` (master, conf), quiet on the console."""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from typing import TYPE_CHECKING

from audit.config import EngineConfig
from audit.engines import require_spark
from audit.errors import EngineError

if TYPE_CHECKING:
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
}


def session(engine: EngineConfig) -> SparkSession:
    """The active session, or a new one for ``engine``; executors run this interpreter."""
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
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("llava-audit")
    if engine.master:
        builder = builder.master(engine.master)
    elif "SPARK_HOME" not in os.environ and "PYSPARK_SUBMIT_ARGS" not in os.environ:
        builder = builder.master(f"local[{os.cpu_count() or 1}]")
    for key, value in {**DEFAULT_CONF, **engine.conf}.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # py4j/JVM start-up failures have no common type
        raise EngineError(
            f"the spark engine could not start ({type(exc).__name__}): check --master and Java"
        ) from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark
