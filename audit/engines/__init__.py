"""The engine seam: where the per-record work of a stage runs.

``local`` is this machine's process pools (the default, and the reference); ``spark`` runs the
same pure functions in Spark executors, with cross-record checks as Spark aggregations. Both
return the same typed stage results (audit.results), so the report, the gate and JUnit cannot
tell them apart. A stage picks its implementation with :func:`is_spark`; only modules under
``audit/engines/spark/`` import pyspark (tests/test_layering.py pins it).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import msgspec

from audit.config import Config, EngineConfig, EngineName
from audit.errors import EngineError, UsageError

ENGINES: tuple[str, ...] = EngineName.__args__  # type: ignore[attr-defined]


def choose(config: Config, name: str | None = None, master: str | None = None) -> Config:
    """``config`` with ``--engine``/``--master`` from the command line over its ``[engine]``."""
    if name is not None and name not in ENGINES:
        raise UsageError(f"--engine {name!r} is not one of: {', '.join(ENGINES)}")
    if master is not None and (name or config.engine.name) != "spark":
        raise UsageError("--master applies to the spark engine only (add --engine spark)")
    if name is None and master is None:
        return config
    engine = msgspec.structs.replace(
        config.engine,
        name=name or config.engine.name,
        master=master if master is not None else config.engine.master,
    )
    return msgspec.structs.replace(config, engine=engine)


def is_spark(engine: EngineConfig) -> bool:
    """True when this run's per-record work goes to Spark (checked: the extra is installed)."""
    if engine.name != "spark":
        return False
    require_spark()
    return True


def require_spark() -> None:
    """Refuse early, in one line, when the Spark extra is missing."""
    if importlib.util.find_spec("pyspark") is None or importlib.util.find_spec("pyarrow") is None:
        raise EngineError(
            "the spark engine needs the spark extra: pip install 'llava-audit[spark]' "
            "(pyspark 4, pyarrow; Java 17 or newer)"
        )


@contextmanager
def without_pyspark() -> Iterator[None]:
    """Import pandera or Great Expectations as if pyspark (or its pandas and Connect parts) were
    not installed.

    Both look for pyspark at import. pandera then imports ``pyspark.pandas`` (a second or more in
    every structure worker, a stderr warning, ``SPARK_LOCAL_IP`` set), and Great Expectations
    ``pyspark.sql.connect``, whose import calls ``sys.exit(0)`` when ``__main__`` has no file
    (``python -c``, pytest-xdist workers). Neither is needed: pandera runs its polars backend and
    GX its pandas one. The hidden names are restored afterwards, so the Spark engine still imports
    pyspark normally.
    """
    parts = ("pyspark.sql.connect", "pyspark.pandas") if "pyspark" in sys.modules else ("pyspark",)
    hidden = [name for name in parts if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # the import system's "not found"
    try:
        yield
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
