"""Image roots: the folders and zip files that hold a dataset's images, read in place.

LLaVA ships images both ways: folders under ``--image_folder`` (mix665k's ``playground/data``) and
``images.zip`` (595K CC-3M images, 558K LCS images), indexed from its central directory
(:mod:`audit.loaders.zipindex`). Members are read by offset into memory and never extracted, so a
hostile member name cannot write anywhere. Record paths that escape the root (``..``, absolute) are
refused, as LLaVA's trainer would otherwise read outside ``--image_folder``; so are symlinks that
lead out of a folder root, and entries that are not regular files (a FIFO would block a reader, a
device never ends) are never opened.
"""

from __future__ import annotations

import errno
import os
import posixpath
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from audit.errors import InputError
from audit.loaders.zipindex import Member, ZipFormatError, read_index

#: How a worker reads an image: ("file", path) or ("zip", zip path, member name, header offset,
#: compressed size, method, size, crc, zip size:mtime). Plain tuples: they pickle cheaply.
Source = tuple[object, ...]

_LOCAL = struct.Struct("<4sHHHHHIIIHH")
#: Relative paths with no empty, "." or ".." segment, no drive letter, no NUL: already normalized.
_PLAIN = re.compile(r"(?!\.\.?(?:/|$))[^/\\:\x00]+(?:/(?!\.\.?(?:/|$))[^/\\:\x00]+)*")
_DRIVE = re.compile(r"[A-Za-z]:[/\\]")
_ENCRYPTED_FLAG = 0x1
_ENCRYPTED = "zip member is encrypted"
#: Opening a zip root (which may be a symlink the user gave) never waits on a FIFO's writer; opening
#: an image file (already resolved inside its root) also never follows a last-moment symlink.
_ZIP_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_OPEN_FLAGS = _ZIP_FLAGS | getattr(os, "O_NOFOLLOW", 0)
_OUT_BY_LINK = "is a symlink that leads outside the image root; not opened"
_OUT_BY_FOLDER = "has a folder on its path that leads outside the image root; not opened"
_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class UnsafePathError(ValueError):
    """A record's image path is empty, absolute or climbs out of the root."""


class UnfollowablePathError(UnsafePathError):
    """A path only the file system shows to be unsafe: a NUL byte, or a symlink out of the root.

    The structure check reads only the text of the path, so it cannot report these; the image probe
    always does.
    """


class DamagedMemberError(OSError):
    """A zip member's bytes are damaged (CRC, inflate or header failure): the image is corrupt."""


#: Every reason :func:`read_source` gives for a damaged member: fixed wording, never file content.
DAMAGE_REASONS = (
    "zip member's local header is missing (damaged zip)",
    "zip member runs past the end of the file (truncated zip)",
    "zip member does not inflate (damaged zip)",
    "zip member cannot be decompressed (damaged zip or unsupported method)",
    "zip member fails its CRC check (damaged zip)",
)


@dataclass(slots=True)  # not frozen: a frozen __init__ is 2x slower and 600K are built per run
class Location:
    """Where a record's image was found, and the identity a probe result is cached under."""

    root: str  # the root's path: the cache namespace
    name: str  # path inside the root (relative path or zip member name)
    size: int
    signature: str  # "size:mtime_ns" for files, "size:crc32" for zip members ("" = unknown)
    source: Source
    problem: str = ""  # why it cannot be read at all (stat failed, encrypted member)


def normalize(image: str) -> str:
    """The relative path LLaVA's trainer would open, or :class:`UnsafePathError` if it escapes the root."""
    if not image.strip():
        raise UnsafePathError("empty image path")
    if "\x00" in image:
        raise UnfollowablePathError("contains a NUL byte (no file system path can)")
    if _PLAIN.fullmatch(image):  # the common case, decided without normpath
        return image
    if image.startswith(("/", "\\")) or _DRIVE.match(image):
        raise UnsafePathError(f"absolute image path {image!r}")
    norm = posixpath.normpath(image)
    if norm == ".." or norm.startswith("../") or norm == ".":
        raise UnsafePathError(f"image path {image!r} leaves the image root")
    return norm


class DirRoot:
    """A folder of images: membership is one ``lstat`` per lookup (263K/s, no index needed).

    Whether a folder on the way leads out of the root (a symlink to elsewhere) is decided once per
    folder; a symlinked file is resolved and checked. What leads out is never stat'ed or opened.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.key = str(path)
        real = os.path.realpath(self.key)
        self._real = real
        self._prefix = real if real.endswith(os.sep) else real + os.sep
        self._folders: dict[str, bool] = {"": True}  # folder below the root -> stays inside

    def _inside(self, resolved: str) -> bool:
        return resolved == self._real or resolved.startswith(self._prefix)

    def locate(self, name: str) -> Location | None:
        folder = name.rpartition("/")[0]
        inside = self._folders.get(folder)
        if inside is None:
            joined = os.path.join(self.key, folder)  # noqa: PTH118
            inside = self._folders[folder] = self._inside(os.path.realpath(joined))
        if not inside:
            raise UnfollowablePathError(_OUT_BY_FOLDER)
        full = os.path.join(self.key, name)  # noqa: PTH118 - str paths: 2x faster than Path here
        try:
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                full = os.path.realpath(full)
                if not self._inside(full):
                    raise UnfollowablePathError(_OUT_BY_LINK)
                st = os.stat(full)  # noqa: PTH116
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:  # e.g. a folder on the way without permission, a symlink loop
            return Location(self.key, name, -1, "", ("file", full), exc.strerror or "cannot stat")
        if stat.S_ISREG(st.st_mode):
            return Location(
                self.key, name, st.st_size, f"{st.st_size}:{st.st_mtime_ns}", ("file", full)
            )
        if stat.S_ISDIR(st.st_mode):
            return None
        problem = f"{_kind(st.st_mode)}, not a regular file; not opened"
        return Location(self.key, name, -1, "", ("file", full), problem)


def _kind(mode: int) -> str:
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


class ZipRoot:
    """A zip of images indexed from its central directory; a single top folder is optional."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.key = str(path)
        self.members, self.top, self.stamp = _zip_index(path)

    def __len__(self) -> int:
        return len(self.members)

    def __contains__(self, name: str) -> bool:
        return self._find(name) is not None

    def _find(self, name: str) -> tuple[str, Member] | None:
        """Members are keyed below the top folder; a record may name it or not."""
        member = self.members.get(name)
        if member is not None:
            return name, member
        if self.top and name.startswith(self.top):
            inner = name[len(self.top) :]
            member = self.members.get(inner)
            if member is not None:
                return inner, member
        return None

    def locate(self, name: str) -> Location | None:
        member = self.members.get(name)  # _find inlined: called once per distinct image
        member_name = name
        if member is None:
            found = self._find(name)
            if found is None:
                return None
            member_name, member = found
        offset, csize, size, crc, method, flags = member
        key = self.key
        source: Source = (
            "zip",
            key,
            self.top + member_name,
            offset,
            csize,
            method,
            size,
            crc,
            self.stamp,
        )
        if flags & _ENCRYPTED_FLAG:
            return Location(key, member_name, size, f"{size}:{crc:08x}", source, _ENCRYPTED)
        return Location(key, member_name, size, f"{size}:{crc:08x}", source)


Root = DirRoot | ZipRoot
_ZIP_CACHE: dict[tuple[str, int, int], tuple[dict[str, Member], str]] = {}
_OPEN_ZIPS: dict[str, tuple[object, int]] = {}  # zip path -> (size and mtime stamp, open fd)


def open_roots(paths: Sequence[str | Path]) -> list[Root]:
    """Open each folder or zip once; a root that is neither is an input error (exit code 3)."""
    roots: list[Root] = []
    for p in paths:
        path = Path(p).expanduser()
        try:
            mode = path.stat().st_mode
        except (FileNotFoundError, NotADirectoryError):
            raise InputError(
                str(path), "image root not found (expected a folder or a zip file)"
            ) from None
        except OSError as exc:
            raise InputError(str(path), f"cannot read image root: {exc.strerror}") from None
        if stat.S_ISDIR(mode):
            roots.append(DirRoot(path))
        elif stat.S_ISREG(mode):
            roots.append(ZipRoot(path))
        else:
            raise InputError(str(path), f"image root is {_kind(mode)}, not a folder or a zip file")
    return roots


def locate(roots: Sequence[Root], image: str) -> Location | None:
    """The first root that has the record's image, as LLaVA users list roots in priority order.

    A root where the path leads out through a symlink is passed over, so the folder the link
    points to can be listed as a root of its own; only when no root has the image is that an error.
    """
    name = image if _PLAIN.fullmatch(image) and not image.isspace() else normalize(image)
    refused: UnfollowablePathError | None = None
    for root in roots:
        try:
            found = root.locate(name)
        except UnfollowablePathError as exc:
            refused = refused or exc
            continue
        if found is not None:
            return found
    if refused is not None:
        raise refused
    return None


def locator(roots: Sequence[Root]) -> Callable[[str], Location | None]:
    """:func:`locate` bound to ``roots``; with one root (the usual case) a call level shorter."""
    if len(roots) != 1:
        return partial(locate, roots)
    find, plain = roots[0].locate, _PLAIN.fullmatch

    def locate_in_root(image: str) -> Location | None:
        return find(image if plain(image) and not image.isspace() else normalize(image))

    return locate_in_root


def _zip_index(path: Path) -> tuple[dict[str, Member], str, str]:
    """Member table of a zip, memoised per path, size and mtime (a rewritten zip is re-read)."""
    try:
        fd = os.open(path, _ZIP_FLAGS)
    except OSError as exc:
        raise InputError(str(path), f"cannot read zip: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # swapped since open_roots looked
            raise InputError(str(path), f"image root is {_kind(st.st_mode)}, not a zip file")
        key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
        if key not in _ZIP_CACHE:
            _ZIP_CACHE[key] = read_index(partial(os.pread, fd), st.st_size)
        return (*_ZIP_CACHE[key], f"{st.st_size}:{st.st_mtime_ns}")
    except OSError as exc:
        raise InputError(str(path), f"cannot read zip: {exc.strerror}") from None
    except ZipFormatError as exc:
        raise InputError(str(path), f"not a readable zip file: {exc}") from None
    finally:
        os.close(fd)


def read_source(source: Source) -> bytes:
    """The bytes of one image, from a file or a zip member (decompressed and CRC-checked in memory).

    Raises ``OSError`` when the bytes cannot be had; the message says why (CRC, method, encryption).
    """
    if source[0] == "file":
        return _read_file(str(source[1]))
    _, zip_path, name, offset, csize, method, size, crc, stamp = source
    assert isinstance(zip_path, str) and isinstance(offset, int) and isinstance(csize, int)
    assert isinstance(size, int) and isinstance(crc, int)
    fd = _zip_fd(zip_path, stamp)
    header = os.pread(fd, _LOCAL.size, offset)
    if len(header) < _LOCAL.size or header[:4] != b"PK\x03\x04":
        raise DamagedMemberError(DAMAGE_REASONS[0])
    nlen, elen = _LOCAL.unpack(header)[9:]
    data = os.pread(fd, csize, offset + _LOCAL.size + nlen + elen)
    if len(data) != csize:
        raise DamagedMemberError(DAMAGE_REASONS[1])
    if method == zipfile.ZIP_DEFLATED:
        try:
            data = zlib.decompressobj(-15).decompress(data, size + 1)
        except zlib.error:
            raise DamagedMemberError(DAMAGE_REASONS[2]) from None
    elif method != zipfile.ZIP_STORED:
        try:  # rare methods (bzip2, lzma): the slow, general path
            with zipfile.ZipFile(zip_path) as zf:
                data = zf.read(str(name))
        except (zipfile.BadZipFile, NotImplementedError, EOFError, ValueError):
            raise DamagedMemberError(DAMAGE_REASONS[3]) from None
    if len(data) != size or zlib.crc32(data) != crc:
        raise DamagedMemberError(DAMAGE_REASONS[4])
    return data


def _zip_fd(zip_path: str, stamp: object) -> int:
    """One open descriptor per zip and process (pread needs no seek state); reopened if rewritten."""
    held = _OPEN_ZIPS.get(zip_path)
    if held is not None and held[0] == stamp:
        return held[1]
    if held is not None:
        os.close(held[1])
    fd = os.open(zip_path, _ZIP_FLAGS)
    _OPEN_ZIPS[zip_path] = (stamp, fd)
    return fd


def _read_file(path: str) -> bytes:
    """A regular file's bytes; anything else (swapped in since it was located) is never read."""
    fd = os.open(path, _OPEN_FLAGS)
    with os.fdopen(fd, "rb") as fh:  # closes fd
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, f"{_kind(st.st_mode)}, not a regular file")
        return fh.read(st.st_size)
