"""Sharded inputs: a folder or glob of JSON Lines or Parquet shards, as Hugging Face datasets
publish them (``data/train-00000-of-00020.parquet``) and Spark writes them.

:func:`expand` turns what the user named into the shards, in one stable order, and refuses
anything that would make the audit hang, read outside the folder or mix two formats, with one
line (exit 3) before any work. Reading a shard is :mod:`audit.loaders.shardread`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from audit.errors import InputError
from audit.loaders import regular_file

Format = Literal["jsonl", "parquet"]
SUFFIXES: tuple[tuple[str, Format], ...] = (
    (".jsonl.gz", "jsonl"),
    (".jsonl", "jsonl"),
    (".parquet", "parquet"),
)
_NAMES = ".jsonl, .jsonl.gz or .parquet"
_MAGIC = frozenset("*?[")


@dataclass(frozen=True)
class ShardInfo:
    """Where a shard sits in its set: the set as the user named it and the shard's ordinal."""

    source: str
    ordinal: int


def shard_format(path: str | Path) -> Format | None:
    """The shard format a file name says (None: not a shard name)."""
    name = Path(path).name.lower()
    return next((fmt for suffix, fmt in SUFFIXES if name.endswith(suffix)), None)


def is_glob(path: str | Path) -> bool:
    """A pattern: ``*`` or ``?`` in a path that does not exist as given (``[...]`` only counts
    beside them, so a real file named ``x[1].json`` stays a file)."""
    text = str(path)
    return ("*" in text or "?" in text) and not os.path.lexists(text)


def is_shard_set(path: str | Path) -> bool:
    """A folder, a glob, or a single Parquet or gzipped JSON Lines file (a set of one shard).

    A plain ``.json`` / ``.jsonl`` file is not: it keeps the JSON file reader (and its findings).
    """
    text = str(path)
    if is_glob(text) or Path(text).is_dir():
        return True
    return text.lower().endswith((".parquet", ".jsonl.gz"))


def set_name(source: str | Path) -> str:
    """The default dataset name of a set: its folder's name (a glob: its base folder's; a single
    shard: its name without the suffix)."""
    base = _glob_base(str(source)) if is_glob(source) else Path(source)
    if not is_glob(source) and shard_format(base) is not None and not base.is_dir():
        return base.name.removesuffix(".gz").rsplit(".", 1)[0]
    return base.resolve().name


def set_base(source: str | Path) -> Path | None:
    """The folder a set's shards are named under (a folder itself, a glob's base folder); None
    for a single shard file. A shard's path relative to it is its name within the set."""
    if is_glob(source):
        return _glob_base(str(source))
    return Path(source) if Path(source).is_dir() else None


def _glob_base(pattern: str) -> Path:
    """The folder a glob searches: its leading components without a wildcard."""
    parts = Path(pattern).parts[:-1]
    plain = []
    for part in parts:
        if any(c in _MAGIC for c in part):
            break
        plain.append(part)
    return Path(*plain) if plain else Path()


def expand(path: str | Path, max_bytes: int | None = None, what: str = "file") -> list[Path]:
    """The set's shards, sorted by their path under the folder (or glob base) as POSIX text;
    ``what`` the path is names it in the messages (``conversation file``, ``URL list``).

    Raises :class:`InputError` (one line, exit 3): a missing path, an empty folder, a glob that
    matches no shard, a member that is not a regular file, a symlink out of the folder, shards of
    two formats, a shard over ``max_bytes`` (``[limits] dataset_mb``).
    """
    text = str(path)
    if is_glob(text):
        base = _glob_base(text)
        relative = Path(*Path(text).parts[len(base.parts) :])
        matches = sorted(base.glob(str(relative)))
        shards = [m for m in matches if shard_format(m) is not None]
        if not shards:
            found = "no file" if not matches else f"no {_NAMES} shard"
            raise InputError(text, f"{what} pattern matches {found}")
        for shard in shards:
            _member(shard, base, text)
    else:
        base = Path(text)
        if not base.is_dir():
            if shard_format(base) is None:
                raise InputError(text, f"{what} is not a folder or a {_NAMES} shard")
            shards = [regular_file(base, "shard", max_bytes, "dataset_mb")]
            _check_magic(shards[0])
            return shards
        shards = _walk(base)
        if not shards:
            raise InputError(text, f"{what} is a directory with no {_NAMES} shards")
    formats = {shard_format(s) for s in shards}
    if len(formats) > 1:
        raise InputError(text, f"{what} mixes jsonl and parquet shards; give one format per set")
    for shard in shards:
        regular_file(shard, "shard", max_bytes, "dataset_mb")
        _check_magic(shard)
    return sorted(shards, key=lambda s: _relative(s, base))


_MAGIC_BYTES = {".parquet": (b"PAR1", "a Parquet file"), ".gz": (b"\x1f\x8b", "gzip data")}


def shard_starts(names: Iterable[str], shards: Iterable[tuple[Path, int]]) -> dict[str, int]:
    """Of the file ``names`` findings give (as given, often relative to the config's folder),
    those naming one of the ``shards`` (a set's shard paths and first positions in it), with its
    first position: a set's findings count from their shard's start, the set's rows from 0."""
    starts = [(path.parts, first) for path, first in shards]
    found: dict[str, int] = {}
    for name in set(names):
        parts = Path(name).parts
        first = next((f for whole, f in starts if parts and whole[-len(parts) :] == parts), None)
        if first is not None:
            found[name] = first
    return found


def _check_magic(path: Path) -> None:
    """A Parquet or gzip shard begins as its format does (an empty or foreign file is refused
    here, before any work, rather than failing in a worker)."""
    magic = _MAGIC_BYTES.get(path.suffix.lower())
    if magic is None:
        return
    try:  # non-blocking: a file swapped for a FIFO after the check cannot block the read
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
        with os.fdopen(fd, "rb") as handle:
            head = handle.read(len(magic[0]))
    except OSError as exc:
        raise InputError(str(path), f"shard cannot be read: {exc.strerror or exc}") from None
    if head != magic[0]:
        raise InputError(str(path), f"shard is not {magic[1]} (its first bytes say otherwise)")


def _relative(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def _walk(root: Path) -> list[Path]:
    """Shard files under ``root`` (hidden entries skipped, symlinked folders not followed)."""
    shards: list[Path] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in dirs:
            if (here / name).is_symlink():
                _inside(here / name, root, str(root))
        for name in sorted(files):
            if name.startswith(".") or shard_format(name) is None:
                continue
            shards.append(_member(here / name, root, str(root)))
    return shards


def _member(path: Path, root: Path, source: str) -> Path:
    """A shard found in a folder or by a glob: not a link out of the folder, a regular file."""
    _inside(path, root, source)
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise InputError(str(path), f"shard cannot be read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise InputError(str(path), "shard is a directory, not a regular file")
    return path


def _inside(path: Path, root: Path, source: str) -> None:
    if not path.is_symlink():
        return
    target = Path(os.path.realpath(path))
    top = Path(os.path.realpath(root))
    if target != top and top not in target.parents:
        raise InputError(str(path), f"is a symlink to {target}, outside {source}")


def input_files(paths: list[Path]) -> list[Path]:
    """The files behind ``paths``: a shard set's shards, a plain file itself (for cache keys:
    a shard added, removed or replaced changes the key). A set that cannot be expanded stays
    as given: the stage reports it."""
    files: list[Path] = []
    for path in paths:
        try:
            files += expand(path) if is_shard_set(path) else [Path(path)]
        except InputError:
            files.append(Path(path))
    return files
