"""The driver JVM's class-data archive: dumped by a first run, mapped by the next ones, never
a half-written file, and no archive at all (not an error) when the cache folder is unusable."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from audit.engines.spark import classcache


def _spark_home(tmp_path: Path) -> Path:
    home = tmp_path / "pyspark"
    (home / "jars").mkdir(parents=True)
    (home / "jars" / "spark-core.jar").write_bytes(b"")
    return home


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _option(options: list[str], name: str) -> str | None:
    return next((o.split("=", 1)[1] for o in options if o.startswith(f"-XX:{name}=")), None)


def test_a_first_run_dumps_to_a_name_of_its_own_and_silences_the_jvm_log(tmp_path: Path) -> None:
    options = classcache.java_options(_spark_home(tmp_path), tmp_path / "cache")
    dump = _option(options, "ArchiveClassesAtExit")
    assert dump is not None and dump.endswith(f".jsa.{os.getpid()}")
    assert "-Xlog:disable" in options  # archive warnings would go to standard output
    assert _option(options, "SharedArchiveFile") is None


def test_a_finished_dump_is_moved_into_place_and_mapped(tmp_path: Path) -> None:
    home, cache = _spark_home(tmp_path), tmp_path / "cache"
    dump = Path(_option(classcache.java_options(home, cache), "ArchiveClassesAtExit") or "")
    finished = dump.with_suffix(f".{_dead_pid()}")
    finished.write_bytes(b"classes")
    old = time.time() - 600
    os.utime(finished, (old, old))
    archive = _option(classcache.java_options(home, cache), "SharedArchiveFile")
    assert archive is not None and Path(archive).read_bytes() == b"classes"
    assert not finished.exists()


def test_a_dump_still_being_written_is_left_alone(tmp_path: Path) -> None:
    home, cache = _spark_home(tmp_path), tmp_path / "cache"
    dump = Path(_option(classcache.java_options(home, cache), "ArchiveClassesAtExit") or "")
    running = dump.with_suffix(f".{os.getpid()}")  # its run is alive
    running.write_bytes(b"half")
    recent = dump.with_suffix(f".{_dead_pid()}")  # its JVM may still be writing
    recent.write_bytes(b"half")
    options = classcache.java_options(home, cache)
    assert _option(options, "SharedArchiveFile") is None
    assert _option(options, "ArchiveClassesAtExit") is None  # one dump at a time
    assert running.exists() and recent.exists()


def test_other_spark_jars_need_another_archive(tmp_path: Path) -> None:
    home, cache = _spark_home(tmp_path), tmp_path / "cache"
    first = _option(classcache.java_options(home, cache), "ArchiveClassesAtExit")
    (home / "jars" / "spark-sql.jar").write_bytes(b"")
    assert _option(classcache.java_options(home, cache), "ArchiveClassesAtExit") != first


def test_an_unusable_cache_folder_means_no_archive(tmp_path: Path) -> None:
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the folder should be")
    assert classcache.java_options(_spark_home(tmp_path), blocked) == []


def test_an_archive_of_other_jars_is_removed_once_settled(tmp_path: Path) -> None:
    home, cache = _spark_home(tmp_path), tmp_path / "cache"
    classcache.java_options(home, cache)
    stale = cache / "spark-0123456789abcdef.jsa"
    stale.write_bytes(b"old")
    old = time.time() - 600
    os.utime(stale, (old, old))
    classcache.java_options(home, cache)
    assert not stale.exists()
