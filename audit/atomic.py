"""Atomic file writing: the one way the tool replaces a file it produces.

Readers (a browser on ``reports/``, a CI job reading ``--json`` output, a script tailing the
findings) see the old file or the new one, never a mix: bytes go to a temp file beside the target,
are fsynced, and a rename swaps them in. A write that fails (a full disk) removes its temp file
and leaves the target as it was.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path


def write_file(path: Path, data: bytes) -> None:
    """Write and fsync one file (its bytes are on disk before any rename that publishes it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


#: How a file's bytes reach the disk; tests pass one that fails like a full disk.
Writer = Callable[[Path, bytes], None]


def write_atomic(path: str | Path, data: bytes, *, write: Writer = write_file) -> None:
    """Replace ``path`` by rename, so readers see the old or the new file, never a mix.

    A failed write (a full disk) removes its temp file and leaves ``path`` as it was.
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(tmp, data)
        tmp.replace(target)
    except Exception:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (the directory entry is on disk too)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
