"""The probe caches on Spark: Parquet tables keyed by a hash of the URL or the image's place.

The local engine keeps its caches in the SQLite state store, which one process writes; executors
cannot share it. Here each cache is a folder of versions: a run reads the version ``CURRENT``
names, probes only the keys that are new or stale (an anti-join), and writes the old rows it did
not replace plus its new ones as a new version folder; then ``CURRENT`` is switched by an atomic
rename, so a run killed part-way leaves the last complete version in force (its half-written
folder is left to the clean-up). The previous version, and any written in the last day, are
kept for a reader still on them; older ones are removed.

The columns are the SQLite caches' (:mod:`audit.store.urls`, :mod:`audit.store.images`), so a
cached result means the same thing on both engines: a URL's probe under a settings fingerprint,
an origin's robots.txt or tdmrep.json, an image's outcome under its signature (size and mtime,
or size and CRC) and level.
"""

from __future__ import annotations

import re
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from audit.atomic import write_atomic

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: A URL's latest probe (audit.store.urls.url_result), keyed by sha256 of the URL.
URLS = (
    "key string, url string, settings string, status string, http_status int, detail string, "
    "final_url string, probed_at double, reservations string, sha256 string, size long"
)
#: An origin's robots.txt / tdmrep.json (audit.store.urls.host_file), keyed by origin + path.
HOST_FILES = "key string, origin string, name string, fetched_at double, found boolean, body string"
#: An image's outcome (audit.store.images.image_probe), keyed by sha256 of root NUL name.
IMAGES = (
    "key string, root string, name string, signature string, level int, status string, "
    "format string, width int, height int, detail string, probed_at double"
)
_ARROW = {
    "string": pa.string(),
    "int": pa.int32(),
    "long": pa.int64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "binary": pa.binary(),
}


def arrow_schema(ddl: str) -> pa.Schema:
    """The Arrow schema of a DDL string: what a task's batches must be, column for column."""
    return pa.schema([(n, _ARROW[t]) for n, t in (f.split() for f in ddl.split(", "))])


CURRENT = "CURRENT"
_PREFIX = "v-"
#: Older versions are removed once this old: a run still reading one (its earlier files'
#: results, not yet published) never loses it.
_KEEP_SECONDS = 86400.0


def cache_folder(state: str | Path, table: str) -> Path:
    """``<state folder>/spark-cache/<table>``: beside the local engine's state store."""
    return Path(state).parent / "spark-cache" / table


def current(folder: Path) -> Path | None:
    """The version folder in force, or None before the first run."""
    try:
        name = (folder / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    version = folder / name
    return version if name.startswith(_PREFIX) and version.is_dir() else None


def read(spark: SparkSession, folder: Path, schema: str) -> DataFrame:
    """The version in force (no rows before the first run)."""
    version = current(folder)
    if version is None:
        return spark.createDataFrame([], schema)
    return spark.read.schema(schema).parquet(literal(version))


def write(frame: DataFrame, folder: Path) -> Path:
    """Write ``frame`` as a new version and put it in force; returns its folder."""
    folder.mkdir(parents=True, exist_ok=True)
    previous = current(folder)
    name = f"{_PREFIX}{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    frame.write.parquet(str(folder / name))
    write_atomic(folder / CURRENT, f"{name}\n".encode())
    keep = {name, previous.name if previous else ""}
    cutoff = time.time() - _KEEP_SECONDS
    for old in folder.glob(f"{_PREFIX}*"):
        if old.name not in keep and old.is_dir() and old.stat().st_mtime < cutoff:
            shutil.rmtree(old, ignore_errors=True)
    return folder / name


@contextmanager
def scratch(state: str | Path) -> Iterator[Path]:
    """A folder for one run's intermediate tables, removed when the run is done (and those a
    killed run left, once a day old)."""
    parent = cache_folder(state, "scratch")
    cutoff = time.time() - _KEEP_SECONDS
    for old in parent.glob("run-*"):
        if old.stat().st_mtime < cutoff:
            shutil.rmtree(old, ignore_errors=True)
    path = parent / f"run-{uuid.uuid4().hex}"
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def staged(spark: SparkSession, frame: DataFrame, folder: Path, schema: str) -> DataFrame:
    """``frame`` computed once into ``folder`` (a :func:`scratch` folder) and read back: a
    probe's results are facts of one moment, never to be recomputed (a re-probe) by an action."""
    frame.write.parquet(str(folder))
    return spark.read.schema(schema).parquet(literal(folder))


_GLOB = re.compile(r"([\[\]{}*?\\])")


def literal(path: Path) -> str:
    """``path`` for Spark's readers, which expand glob patterns: a state folder named
    ``run[1]`` is that folder, not a pattern matching ``run1``."""
    return _GLOB.sub(r"\\\1", str(path))
