"""Shared fixtures: where the real LLaVA records live, one Spark session, skips when absent."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from code_coverage import pytest_sessionfinish  # noqa: F401 - the catalogue coverage check

from audit.config import EngineConfig
from audit.errors import EngineError

# Great Expectations wires its Spark datasource only when pyspark was imported before it (a run
# starts Spark before any stage); a test worker may load GX in a local test before a Spark one.
with contextlib.suppress(ImportError):
    import pyspark.sql  # noqa: F401

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
#: scripts/test sets this when Java is on the machine: there a Spark test that cannot start its
#: session fails instead of skipping, so CI never passes with the Spark engine untested.
REQUIRE_SPARK = "LLAVA_AUDIT_REQUIRE_SPARK"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """`../shared/realdata` beside the project root; tests using it skip when it is absent."""
    if not REALDATA.is_dir():
        pytest.skip("../shared/realdata is not present")
    return REALDATA


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """One ``local[2]`` SparkSession for the whole run (a start costs 5-10 s), stopped at the end.

    Skips, naming what is missing, when the spark extra or Java is not installed; mark the tests
    that use it ``@pytest.mark.spark`` so ``pytest -m spark`` runs them alone.
    """
    from audit.engines.spark.session import session

    # executors import functions defined in test modules by name, as they import audit's
    tests = str(Path(__file__).parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (tests, os.environ.get("PYTHONPATH")) if p
    )
    conf = {}
    if os.environ.get("COVERAGE_PROCESS_CONFIG"):
        # workers are killed by SIGHUP when the session stops: this daemon saves after each task
        conf["spark.python.daemon.module"] = "spark_coverage_daemon"
    try:
        spark_session = session(EngineConfig(name="spark", master="local[2]", conf=conf))
    except EngineError as exc:
        if os.environ.get(REQUIRE_SPARK) == "1":
            raise
        pytest.skip(f"no Spark here: {exc}")
    try:
        yield spark_session
    finally:
        spark_session.stop()
