"""Loaders: the only code that opens dataset files.

Submodules by input: ``records`` (conversation JSON arrays, JSON Lines, metadata files, kind
detection), ``imageroots`` (image folders and zips, read in place), ``urlsources`` (URL lists from
metadata files, the headerless CC-3M TSV, or a configured column).

This package root holds the one gate every input passes first: :func:`regular_file` refuses
what is not a regular file (a FIFO would block the reader, ``/dev/zero`` never ends) and what is
over its size cap, before anything is opened. It depends on ``audit.errors`` only, so the config
loader uses it too.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from audit.errors import AuditError, InputError

MB = 1 << 20
_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)


class MissingInputError(InputError):
    """The input does not exist (callers may add how to create it)."""


class Input(NamedTuple):
    """One input to check: its path, what it is for the message, its cap and the cap's setting."""

    path: str | Path
    what: str
    max_bytes: int | None = None
    setting: str | None = None  # the [limits] key that raises the cap, named in the message


def regular_file(
    path: str | Path, what: str, max_bytes: int | None = None, setting: str | None = None
) -> Path:
    """``path`` when it is a regular file (symlinks followed) no larger than ``max_bytes``.

    Anything else is one :class:`InputError` naming the file and what it is: only ``os.stat``
    runs here, so a FIFO or a device is refused without being opened.
    """
    p = Path(path)
    try:
        st = p.stat()
    except ValueError:  # a NUL byte: no such path can exist
        raise InputError(repr(str(p)), f"{what} path contains a NUL byte") from None
    except FileNotFoundError:
        raise MissingInputError(str(p), f"{what} not found") from None
    except OSError as exc:
        raise InputError(str(p), f"cannot read {what}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a file")
        target = f" (a symlink to {os.path.realpath(p)})" if p.is_symlink() else ""
        raise InputError(str(p), f"{what} is {kind}{target}, not a regular file")
    if max_bytes is not None and st.st_size > max_bytes:
        raise InputError(str(p), too_large(what, st.st_size, max_bytes, setting))
    return p


def too_large(what: str, size: int, max_bytes: int, setting: str | None) -> str:
    """The size-cap message: how big, the cap, and the setting that raises it."""
    raise_it = f"; raise [limits] {setting} in audit.toml" if setting else ""
    return f"{what} is {size_text(size)}, over the {size_text(max_bytes)} limit{raise_it}"


def size_text(n: int) -> str:
    """Bytes for people: ``12.3 GB``, ``450 MB``, ``900 bytes`` (powers of 1024)."""
    for unit, scale in (("GB", 1 << 30), ("MB", MB), ("KB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"


def input_problems(inputs: Iterable[Input]) -> list[InputError]:
    """What :func:`regular_file` says about each input that fails it."""
    problems = []
    for item in inputs:
        try:
            regular_file(*item)
        except InputError as exc:
            problems.append(exc)
    return problems


def refuse(problems: Sequence[InputError]) -> None:
    """Raise the one problem, or one error listing them all (exit 3 either way); none: return.

    So a run with two bad inputs says so once, before any work, instead of failing on the first.
    """
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise AuditError(
            f"{len(problems)} inputs cannot be read: " + "; ".join(p.message for p in problems)
        )


def check_inputs(inputs: Iterable[Input]) -> None:
    """Every input through :func:`regular_file`; all the problems in one error."""
    refuse(input_problems(inputs))


def read_input(
    path: str | Path, what: str, max_bytes: int | None = None, setting: str | None = None
) -> bytes:
    """The whole file's bytes once :func:`regular_file` passed it; else one InputError (exit 3).

    Opened non-blocking and checked again on the descriptor, so a file swapped for a FIFO after
    the check cannot block the read either.
    """
    p = regular_file(path, what, max_bytes, setting)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise InputError(str(p), f"cannot read {what}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise InputError(str(p), f"{what} changed into something that is not a regular file")
        try:
            data = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
        except OSError as exc:
            raise InputError(str(p), f"cannot read {what}: {exc.strerror or exc}") from None
    if max_bytes is not None and len(data) > max_bytes:
        raise InputError(str(p), too_large(what, len(data), max_bytes, setting))
    return data
