"""The driver JVM's standard error without the warning Spark's launcher always causes.

Spark's launcher starts every driver JVM with ``--add-modules=jdk.incubator.vector`` (its
``JavaModuleOptions``; no setting turns it off), and the JVM then prints "WARNING: Using
incubator modules: jdk.incubator.vector" on standard error before any of its code runs (Java's
module system; no option silences it). Nothing else of this engine writes there unasked, so the
JVM is started with standard error a pipe, which a thread copies to the real one for as long as
the JVM and its Python workers (which inherit it) live, leaving out that one line.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

#: the JVM's line (``jdk.internal.module.ModuleBootstrap``); tests/test_spark_quiet.py fails
#: loudly, with the line shown, if a Java upgrade words it differently
INCUBATOR_WARNING = b"WARNING: Using incubator modules: "


@contextlib.contextmanager
def without_incubator_warning() -> Iterator[None]:
    """Run the body (the JVM's start) with standard error (fd 2) a filtered pipe; this
    process's own standard error is back as it was when the body ends."""
    sys.stderr.flush()
    try:
        read, write = os.pipe()
        real = os.dup(2)
    except OSError:  # no descriptors left: start the JVM as it is
        yield
        return
    os.dup2(write, 2)
    os.close(write)
    threading.Thread(
        target=_copy, args=(read, real), name="llava-audit-jvm-stderr", daemon=True
    ).start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(real, 2)


def _copy(read: int, real: int) -> None:
    """Every line but the warning, until the last writer (the JVM) closes the pipe."""
    with open(read, "rb", closefd=True) as lines:
        for line in lines:
            if line.startswith(INCUBATOR_WARNING):
                continue
            with contextlib.suppress(OSError):  # the real stderr went away: nothing to tell
                _write_all(real, line)
    os.close(real)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]
