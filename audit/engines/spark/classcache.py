"""A class-data-sharing archive for the driver JVM, so later runs skip most of its start-up.

Starting Spark's JVM loads and verifies some ten thousand classes: about half of the CPU a
short local run spends before its first task. Java 13+ can dump the classes a run loaded into
an archive at exit (``-XX:ArchiveClassesAtExit``) and map them at the next start
(``-XX:SharedArchiveFile``). The first run on a machine writes it under the user's cache
folder, named by the JVM and the Spark jars it was made from; later runs map it. The JVM checks
the archive against its own version and class path and ignores one that does not match.

A dumping JVM writes to a name of its own (``<archive>.<pid>``); a later start moves a
finished one (its run over, untouched for half a minute) into place, and no run dumps while
another's dump is pending, so two first runs at once never share a half-written file. The JVM's
own log lines (archive warnings go to standard output) are turned off, so ``--json`` output
stays clean. An archive is some 150-200 MB; one made from another JVM or Spark is removed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

_SETTLE_SECONDS = 30


def _folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llava-audit" / "spark-classes"


def _name(spark_home: Path) -> str:
    """The archive's name: the java binary and the Spark jars it was made from."""
    home = os.environ.get("JAVA_HOME", "")
    java = Path(home, "bin", "java") if home else Path(shutil.which("java") or "java")
    built = str(java.stat().st_mtime_ns) if java.exists() else ""  # an upgrade in place
    jars = sorted(p.name for p in (spark_home / "jars").glob("*.jar"))
    made_from = [str(java.resolve()), built, str(spark_home), *jars]
    digest = hashlib.sha256("\0".join(made_from).encode())
    return f"spark-{digest.hexdigest()[:16]}.jsa"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _settled(dumped: Path) -> bool:
    """Whether a dump is finished: its run has ended and the JVM (which outlives the Python
    process by the seconds the dump takes) last wrote it half a minute ago."""
    stat = dumped.stat()
    return stat.st_size > 0 and time.time() - stat.st_mtime > _SETTLE_SECONDS


def java_options(spark_home: Path, folder: Path | None = None) -> list[str]:
    """The options for the next driver JVM: map the archive, or dump one at exit; none when
    the cache folder cannot be written (the JVM then simply starts without it)."""
    folder = folder or _folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        archive = folder / _name(spark_home)
        for stale in folder.glob("spark-*.jsa*"):  # made from another JVM or Spark
            if not stale.name.startswith(archive.name) and _settled(stale):
                stale.unlink()
        for dumped in folder.glob(f"{archive.name}.*"):
            pid = dumped.suffix.lstrip(".")
            if pid.isdigit() and not _alive(int(pid)) and _settled(dumped):
                if archive.is_file():
                    dumped.unlink()  # another run's dump came first
                else:
                    dumped.replace(archive)
    except OSError:
        return []
    quiet = "-Xlog:disable"
    if archive.is_file():
        return [quiet, f"-XX:SharedArchiveFile={archive}"]
    if any(folder.glob(f"{archive.name}.*")):
        return [quiet]  # another run's dump is being written or settling: one dump at a time
    # the JVM's pid is not known before it starts: this process's pid names the file
    return [quiet, f"-XX:ArchiveClassesAtExit={archive}.{os.getpid()}"]
