"""Rewrite an image zip without some members: how a takedown removes image bytes from images.zip.

The new zip is streamed to a temp file beside the old one and renamed over it (audit.atomic), so
readers see the old zip or the new one, never a half-written one. Before that the old zip is kept
under another name (a hard link: no copy of gigabytes), so nothing is lost until the takedown is
verified and the old copy purged. Kept members are copied with their names, dates, attributes and
compression method; their bytes are CRC-checked on the way (a damaged member stops the rewrite).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import zipfile
import zlib
from pathlib import Path

from audit.atomic import atomic_binary
from audit.errors import InputError, OutputError

_CHUNK = 1 << 20


def rewrite_without(path: Path, members: set[str], keep_as: Path) -> list[str]:
    """Rewrite the zip at ``path`` without ``members`` (names as stored, top folder included).

    The zip as it was stays at ``keep_as`` (an earlier copy there, from an interrupted rewrite,
    is kept as it is). Returns the member names removed; none found: nothing is written. A failed
    rewrite leaves the zip as it was and no copy of it behind.
    """
    kept = False
    try:
        with zipfile.ZipFile(path) as src:
            infos = src.infolist()
            removed = [i.filename for i in infos if i.filename in members]
            if not removed:
                return []
            kept = _keep(path, keep_as)
            with atomic_binary(path) as out, zipfile.ZipFile(out, "w", allowZip64=True) as dst:
                for info in infos:
                    if info.filename not in members:
                        _copy(src, dst, info)
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError, zlib.error):
        _forget(keep_as, kept)
        raise InputError(
            str(path),
            "cannot rewrite the zip: a member is damaged, encrypted or uses an unsupported "
            "compression method; remove the members with another tool",
        ) from None
    except OSError as exc:
        _forget(keep_as, kept)
        raise OutputError(f"{path}: cannot rewrite the zip: {exc.strerror or exc}") from None
    return removed


def _keep(path: Path, keep_as: Path) -> bool:
    """The old zip under ``keep_as``: a hard link, or a copy where the file system has none.
    True when made here (False: an earlier one is there)."""
    if keep_as.exists():
        return False
    try:
        os.link(path, keep_as)
    except OSError:
        with path.open("rb") as src, atomic_binary(keep_as) as dst:
            shutil.copyfileobj(src, dst, _CHUNK)
    return True


def _forget(keep_as: Path, kept: bool) -> None:
    if kept:
        with contextlib.suppress(OSError):
            keep_as.unlink()


def _copy(src: zipfile.ZipFile, dst: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """One member, streamed (decompressed, CRC-checked, compressed again the same way)."""
    clone = zipfile.ZipInfo(info.filename, info.date_time)
    clone.compress_type = info.compress_type
    clone.external_attr = info.external_attr
    clone.create_system = info.create_system
    clone.comment = info.comment
    if info.is_dir():
        dst.writestr(clone, b"")
        return
    clone.file_size = info.file_size
    with src.open(info) as reader, dst.open(clone, "w") as writer:
        shutil.copyfileobj(reader, writer, _CHUNK)
