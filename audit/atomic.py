"""Atomic file writing: the one way the tool replaces a file it produces.

Readers (a browser on ``reports/``, a CI job reading ``--json`` output, a script reading the
findings) see the old file or the new one, never a mix: bytes go to a temp file beside the target,
are fsynced, and a rename swaps them in. A write that fails (a full disk) removes its temp file and
leaves the target as it was. Only a regular file (or nothing) is replaced: renaming over a folder,
a FIFO or a device would break whatever else uses it, so such a target is refused up front.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from audit.errors import OutputError

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


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

    A failed write (a full disk) raises its OSError, removes the temp file and leaves ``path`` as
    it was; a target that is not a regular file is an :class:`OutputError`.
    """
    target = check_target(path)
    tmp = _temp_name(target)
    try:
        write(tmp, data)
        tmp.replace(target)
    except Exception:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_binary(path: str | Path) -> Iterator[IO[bytes]]:
    """Stream bytes into ``path`` (a rewritten zip): it appears whole when the block ends cleanly,
    and an exception in the block leaves ``path`` as it was, like :func:`write_atomic`."""
    target = check_target(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(target)
    try:
        with tmp.open("xb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_open(path: str | Path) -> Iterator[IO[str]]:
    """Stream text into ``path`` (UTF-8, ``\\n``): it appears whole when the block ends cleanly.

    For outputs too big to build in memory (the attribution export); an exception in the block
    removes the temp file and leaves ``path`` as it was, like :func:`write_atomic`.
    """
    with atomic_binary(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="\n", write_through=True)
        try:
            yield text
        finally:
            text.detach()  # the binary stream is flushed, synced and closed by atomic_binary


def write_output(path: str | Path, data: bytes, what: str) -> None:
    """:func:`write_atomic` for a file the user named: a failure is one line naming the file."""
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write the {what}: {exc.strerror or exc}") from None


def check_target(path: str | Path) -> Path:
    """``path`` when a file may be written there: nothing yet, or a regular file (links followed)."""
    target = Path(path)
    try:
        mode = target.stat().st_mode
    except ValueError:  # a NUL byte: no such path can exist
        raise OutputError(f"{str(target)!r}: an output path cannot contain a NUL byte") from None
    except OSError:
        return target  # missing (the usual case) or unreachable: the write says why
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a file")
        raise OutputError(f"{target}: is {kind}, not a regular file; write the output elsewhere")
    return target


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (the directory entry is on disk too)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_name(target: Path) -> Path:
    """Hidden, beside the target (the rename stays on one file system), unique per writer."""
    return target.with_name(f".{target.name}.{os.getpid()}-{os.urandom(3).hex()}.tmp")
